"""The engine's Python-side API for trackers, sync groups, set-priority,
metrics and reloads: force(), base priority vs tracker delta, getters, bulk
arrays, and what snapshot()/restore() carry across a reload."""

import pytest
from scapy.layers.vrrp import VRRP, VRRPv3

from hivrrp._engine import (
    COUNTERS, EVENT_REASONS, FAULT_ADMIN, FAULT_CONFIG, FAULT_INTERFACE, FAULT_NO_SOURCE,
    FAULT_REASONS, FAULT_SYNC_GROUP, FAULT_TRACKER, STATES, Engine, fault_reasons,
)
from hivrrp._wire import RxBatch, encode, ipv4_packet
from hivrrp.sim import SECOND, Simulation

VIPS = ["192.0.2.26"]
OWN, PEER = "192.0.2.10", "192.0.2.20"


def skew(priority, interval=SECOND):
    return (256 - priority) * interval // 256


def mdi(priority, interval=SECOND):
    return 3 * interval + skew(priority, interval)


def configure(engine, **config):
    settings = {"vrid": 51, "ifindex": 2, "src": OWN, "priority": 100, "addresses": VIPS,
                **config}
    return engine.add_instance(**settings)


def started(now=0, **config):
    """One instance, started at `now`, outputs drained."""
    engine = Engine(2, now=0)
    configure(engine, **config)
    engine.start(0, now)
    engine.take_events()
    engine.clear_tx()
    return engine


def as_master(priority=200, **config):
    """A non-owner that became master by the master-down timer; returns (engine, now)."""
    engine = started(priority=priority, **config)
    now = engine.timer(0)
    engine.expire(now)
    assert engine.state(0) == "MASTER"
    engine.take_events()
    engine.clear_tx()
    return engine, now


def feed(engine, priority, now, *, src=PEER, version=2, interval=1):
    message = encode(version=version, vrid=51, priority=priority, interval=interval,
                     addresses=VIPS, src=src, dst="224.0.0.18")
    batch = RxBatch(1)
    batch.add_ipv4(ipv4_packet(message, src, "224.0.0.18"), ifindex=2)
    return engine.receive(batch, now)


def sent_priorities(engine):
    """Priorities of the queued adverts, as a dissector reads them off the wire."""
    out = []
    for _, _, _, _, _, message in engine.tx_packets():
        layer = VRRP(message) if message[0] >> 4 == 2 else VRRPv3(message)
        out.append(layer.priority)
    engine.clear_tx()
    return out


def events(engine):
    return [(old, new, reason) for _, old, new, reason, _ in engine.take_events()]


# ------------------------------------------------------------ fault reasons

def test_fault_bits_keep_their_values_and_labels():
    assert (FAULT_INTERFACE, FAULT_TRACKER, FAULT_NO_SOURCE, FAULT_CONFIG, FAULT_SYNC_GROUP,
            FAULT_ADMIN) == (1, 2, 4, 8, 16, 32)
    assert list(FAULT_REASONS.values()) == ["interface", "tracker", "no_source", "config",
                                            "sync_group", "admin"]
    assert fault_reasons(FAULT_ADMIN | FAULT_TRACKER) == ["tracker", "admin"]
    assert fault_reasons(0) == []


@pytest.mark.parametrize("flag", [0, 64, FAULT_ADMIN | 128])
def test_set_fault_rejects_unknown_bits(flag):
    engine = started()
    with pytest.raises(ValueError, match="FAULT reason"):
        engine.set_fault(0, flag, True, 0)
    assert engine.state(0) == "BACKUP"


