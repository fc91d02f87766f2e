"""One engine with one started instance, for the engine's unit tests."""

from __future__ import annotations

from hivrrp._engine import Engine

SECOND = 1_000_000
VIPS = ["192.0.2.26", "192.0.2.27"]
OWN, PEER = "192.0.2.10", "192.0.2.20"


def engine_with(**config) -> Engine:
    """VRID 51 on ifindex 2 from OWN, priority 100, VIPS, PASS "1234" unless
    `config` says otherwise; started at time 0, its start events taken."""
    engine = Engine(4, now=0)
    settings = {"vrid": 51, "ifindex": 2, "src": OWN, "priority": 100, "addresses": VIPS,
                "auth_type": 1, "auth_data": b"1234", **config}
    engine.add_instance(**settings)
    engine.start(0, 0)
    engine.take_events()
    return engine


def master_on(ifindex: int, **spec) -> Engine:
    """One priority-255 IPv4 multicast instance, MASTER with an advert queued."""
    engine = Engine(1)
    engine.start(engine.add_instance(**{"vrid": 1, "ifindex": ifindex, "src": "192.0.2.1",
                                        "priority": 255, "version": 3, **spec}), 0)
    assert engine.tx_count == 1
    return engine
