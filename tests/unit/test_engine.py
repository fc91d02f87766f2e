"""Engine details the reference model does not cover: packet checks and their
counters (keepalived's stats file), FAULT, interfaces, unicast demux, owners."""

import re
from pathlib import Path

import pytest
from hivrrp._engine import COUNTERS, EVENT_REASONS, FAULT_TRACKER, STATES, Engine
from hivrrp._wire import RxBatch, encode, ipv4_packet
from scapy.layers.inet import IP
from scapy.layers.vrrp import VRRP

from helpers.engines import OWN, PEER, SECOND, VIPS, engine_with


def feed(engine, *datagrams, ifindex=2, now=SECOND):
    batch = RxBatch(8)
    for data in datagrams:
        batch.add_ipv4(data, ifindex=ifindex)
    return engine.receive(batch, now)


def v2(priority=200, *, src=PEER, vrid=51, interval=1, addresses=VIPS, auth_type=1,
       auth=b"1234", ttl=255):
    message = encode(version=2, vrid=vrid, priority=priority, interval=interval,
                     addresses=addresses, auth_type=auth_type, auth_data=auth)
    return ipv4_packet(message, src, "224.0.0.18", ttl=ttl)


def nonzero(counters):
    return {k: v for k, v in counters.items() if v}


def test_valid_advert_is_counted_and_resets_the_down_timer():
    engine = engine_with()
    assert feed(engine, v2()) == 1
    assert nonzero(engine.counters(0)) == {"adverts_received": 1}
    assert engine.timer(0) == SECOND + engine.master_down_interval_us(0)


@pytest.mark.parametrize("packet, counter", [
    (v2(auth=b"4321"), "auth_failure"),
    (v2(auth_type=0, auth=b""), "auth_type_mismatch"),
    (v2(auth_type=7), "auth_invalid_type"),
    (v2(interval=2), "advert_interval_errors"),
    (v2(addresses=["192.0.2.26"]), "address_list_errors"),
    (v2(addresses=["192.0.2.26", "192.0.2.99"]), "address_list_errors"),
    (v2(ttl=64), "ip_ttl_errors"),
    (bytes(IP(src=PEER, dst="224.0.0.18", ttl=255) / VRRP(vrid=51, type=2, addrlist=VIPS)),
     "invalid_type_received"),
    (bytes(IP(src=PEER, dst="224.0.0.18", ttl=255) / VRRP(vrid=51, ipcount=3, addrlist=VIPS)),
     "packet_length_errors"),
])
def test_rejected_adverts_are_counted_per_instance_and_change_nothing(packet, counter):
    engine = engine_with()
    before = engine.timer(0)
    feed(engine, packet)
    assert nonzero(engine.counters(0)) == {counter: 1}
    assert engine.timer(0) == before and engine.state(0) == "BACKUP"


def test_address_order_does_not_matter():
    engine = engine_with()
    feed(engine, v2(addresses=list(reversed(VIPS))))
    assert engine.counters(0)["adverts_received"] == 1


def test_errors_that_cannot_be_tied_to_an_instance_are_global():
    engine = engine_with()
    broken = bytearray(v2())
    broken[-1] ^= 1
    feed(engine, bytes(broken), v2(vrid=52), v2(src=OWN), v2(), ifindex=2)
    feed(engine, v2(), ifindex=3)  # right VRID, other interface
    message = encode(version=3, vrid=51, priority=200, interval=100, addresses=VIPS,
                     src=PEER, dst="224.0.0.18")
    feed(engine, ipv4_packet(message, PEER, "224.0.0.18"))
    glob = engine.global_counters()
    assert glob["drops"]["checksum"] == 1
    assert glob["unknown_vrid"] == 2
    assert glob["own_adverts"] == 1
    assert glob["version_mismatch"] == 1
    assert nonzero(engine.counters(0)) == {"adverts_received": 1}


def test_v3_checksum_readings_are_counted():
    engine = engine_with(version=3, auth_type=0, auth_data=b"")
    for pseudo in (True, False, False):
        message = encode(version=3, vrid=51, priority=200, interval=100, addresses=VIPS,
                         src=PEER, dst="224.0.0.18", pseudo_header=pseudo)
        feed(engine, ipv4_packet(message, PEER, "224.0.0.18"))
    counters = engine.counters(0)
    assert counters["checksum_pseudo_header_received"] == 1
    assert counters["checksum_no_pseudo_header_received"] == 2
    assert counters["adverts_received"] == 3


def test_interface_down_faults_and_releases_the_master():
    engine = engine_with(priority=255)  # owner: master at once
    assert engine.state(0) == "MASTER"
    engine.clear_tx()
    engine.set_interface(9, False, SECOND)  # another interface: no effect
    assert engine.state(0) == "MASTER"
    engine.set_interface(2, False, SECOND)
    assert engine.state(0) == "FAULT" and engine.timer(0) is None
    [(_, _, _, _, _, message)] = engine.tx_packets()
    assert message[2] == 0  # priority 0: backups take over after Skew_Time
    assert engine.counters(0)["priority_zero_sent"] == 1
    assert engine.counters(0)["released_master"] == 1
    feed(engine, v2())  # FAULT ignores adverts
    assert engine.counters(0)["adverts_received"] == 0
    engine.set_interface(2, True, 2 * SECOND)
    assert engine.state(0) == "MASTER"
    assert [e[3] for e in engine.take_events()] == ["fault", "owner"]


def test_fault_reasons_are_a_set():
    engine = engine_with()
    engine.set_fault(0, FAULT_TRACKER, True, 0)
    engine.set_interface(2, False, 0)
    engine.set_fault(0, FAULT_TRACKER, False, 0)
    assert engine.state(0) == "FAULT"  # the interface is still down
    engine.set_interface(2, True, 0)
    assert engine.state(0) == "BACKUP"


def test_stop_and_start():
    engine = engine_with(priority=255)
    engine.stop(0, 5 * SECOND)
    assert engine.state(0) == "INIT" and engine.timer(0) is None
    engine.start(0, 6 * SECOND)
    assert engine.state(0) == "MASTER"
    assert [(e[1], e[2], e[3]) for e in engine.take_events()] == [
        ("MASTER", "INIT", "stop"), ("INIT", "MASTER", "owner")]


def test_owner_priority_ignores_tracking():
    engine = engine_with(priority=255)
    engine.set_priority_delta(0, -100, SECOND)
    assert engine.effective_priority(0) == 255
    other = engine_with(priority=250)
    other.set_priority_delta(0, 50, SECOND)
    assert other.effective_priority(0) == 254  # only an owner is 255
    other.set_priority_delta(0, -1000, SECOND)
    assert other.effective_priority(0) == 1


def test_unicast_instances_sharing_a_vrid_are_told_apart_by_peer():
    engine = Engine(4, now=0)
    for peer in ("10.0.0.2", "10.0.0.3"):
        engine.add_instance(vrid=7, ifindex=1, src="10.0.0.1", version=3, peers=[peer],
                            addresses=[f"203.0.113.{peer[-1]}"])
    engine.start_all(0)
    for peer in ("10.0.0.2", "10.0.0.3", "10.0.0.9"):
        message = encode(version=3, vrid=7, priority=200, interval=100, src=peer,
                         dst="10.0.0.1", addresses=[f"203.0.113.{peer[-1]}"])
        feed(engine, ipv4_packet(message, peer, "10.0.0.1"), ifindex=1)
    assert engine.counters(0)["adverts_received"] == 1
    assert engine.counters(1)["adverts_received"] == 1
    # An unknown sender for a unicast VRID: keepalived's address list error.
    assert engine.counters(1)["address_list_errors"] + \
        engine.counters(0)["address_list_errors"] == 1


def test_unicast_master_sends_one_advert_per_peer():
    engine = Engine(1, now=0)
    engine.add_instance(vrid=7, ifindex=1, src="10.0.0.1", version=3, priority=255,
                        peers=["10.0.0.2", "10.0.0.3"], addresses=["203.0.113.7"])
    engine.start(0, 0)
    sent = engine.tx_packets()
    assert [p[4] for p in sent] == ["10.0.0.2", "10.0.0.3"]
    assert sent[0][5] != sent[1][5]  # the checksum covers each destination
    assert engine.counters(0)["adverts_sent"] == 1


@pytest.mark.parametrize("config, message", [
    (dict(vrid=0), "vrid"), (dict(priority=0), "priority"), (dict(version=2, family=6,
                                                                  src="fe80::1"), "VRRPv2"),
    (dict(interval_cs=150), "whole seconds"), (dict(version=3, interval_cs=5000), "4095"),
    (dict(auth_type=2), "PASS"), (dict(src="fe80::1"), "IPv4"),
    (dict(peers=["not-an-ip"]), "peer"), (dict(preempt_delay=2000), "preempt_delay"),
])
def test_add_instance_rejects_what_would_corrupt_the_engine(config, message):
    engine = Engine(2)
    settings = {"vrid": 1, "ifindex": 1, "src": "192.0.2.1", **config}
    with pytest.raises(ValueError, match=message):
        engine.add_instance(**settings)
    assert engine.count == 0


def test_engine_capacity_is_enforced():
    engine = Engine(1)
    engine.add_instance(vrid=1, ifindex=1, src="192.0.2.1")
    with pytest.raises(ValueError, match="full"):
        engine.add_instance(vrid=2, ifindex=1, src="192.0.2.1")
    with pytest.raises(IndexError):
        engine.state(1)


def test_labels_are_stable():
    # These strings become metric labels and notify arguments.
    assert STATES == ("INIT", "BACKUP", "MASTER", "FAULT")
    assert "master_down" in EVENT_REASONS and "higher_priority" in EVENT_REASONS
    assert COUNTERS[0] == "adverts_received" and len(set(COUNTERS)) == len(COUNTERS)


HOT_PATH = {
    "_wire.pxd": ["vrrp_decode", "advert_refresh", "csum_partial", "decode_all"],
    "_wheel.pxd": ["schedule_c", "cancel_c", "expire_c", "next_deadline_c"],
    "_engine.pxd": ["receive_c", "expire_c", "rx_one", "lookup", "backup_rx", "master_rx",
                    "fire", "send", "become_master", "become_backup", "lead", "follower_rx",
                    "leave"],
}


@pytest.mark.parametrize("pxd, functions", HOT_PATH.items())
def test_hot_path_is_nogil(pxd, functions):
    # nogil is checked by the Cython compiler: such a function cannot create a
    # Python object or call Python code. Removing it from a hot-path function
    # must be a deliberate, reviewed change.
    root = Path(__file__).resolve().parents[2] / "ext" / "hivrrp"
    text = (root / pxd).read_text()
    for name in functions:
        [line] = re.findall(rf"^\s*cdef [^#]*\b{name}\(.*$", text, re.MULTILINE)
        assert re.search(r"\)( noexcept)? nogil$", line.strip()), f"{pxd}: {line.strip()}"
