"""The Cython engine against the reference model, on random event sequences."""

import ipaddress

from hivrrp._engine import Engine
from hivrrp._wire import RxBatch, encode, ipv4_packet
from hypothesis import given
from hypothesis import strategies as st

from helpers.vrrp_model import SECOND, ModelInstance

VIPS = ["192.0.2.26", "192.0.2.27"]
OWN = "192.0.2.100"
# Peers on both sides of our address, for both tie-break outcomes.
PEERS = ["192.0.2.5", "192.0.2.100", "192.0.2.200", "203.0.113.9", "10.1.2.3"]


def as_int(address):
    return int(ipaddress.IPv4Address(address))


configs = st.fixed_dictionaries({
    "version": st.sampled_from([2, 3]),
    "priority": st.one_of(st.integers(1, 254), st.sampled_from([100, 100, 255])),
    "interval_cs": st.sampled_from([1, 10, 100, 200]),
    "preempt": st.booleans(),
    "preempt_delay": st.sampled_from([0, 0, 2, 5]),
    "down_timer_adverts": st.sampled_from([3, 3, 1, 5]),
    "lower_prio_no_advert": st.booleans(),
})

advance = st.tuples(st.just("advance"),
                    st.one_of(st.integers(0, 50_000), st.integers(0, 4 * SECOND)))
# Priorities cluster around the instance's own, where the decisions are.
receive = st.tuples(st.just("rx"),
                    st.one_of(st.integers(0, 255), st.sampled_from([0, 99, 100, 101, 254, 255])),
                    st.sampled_from(PEERS), st.sampled_from([1, 10, 50, 100, 200]))
# Adverts and time dominate; admin and tracking inputs are rarer, as in life.
events = st.lists(st.one_of(
    advance, advance, advance, advance, receive, receive, receive, receive, receive,
    st.tuples(st.just("delta"), st.integers(-300, 300)),
    # Recoveries outnumber failures so that runs spend their time in BACKUP/MASTER.
    st.sampled_from([("fault", True), ("fault", False), ("fault", False), ("fault", False),
                     ("stop",), ("start",), ("start",), ("start",)]),
), min_size=20, max_size=120)


@given(config=configs, script=events)
def test_engine_agrees_with_reference_model(config, script):
    if config["version"] == 2:
        config["interval_cs"] = max(100, config["interval_cs"] // 100 * 100)
    engine = Engine(1, now=0)
    engine.add_instance(vrid=7, ifindex=3, src=OWN, addresses=VIPS, **config)
    model = ModelInstance(
        version=config["version"], priority=config["priority"],
        interval_us=config["interval_cs"] * 10_000, src=as_int(OWN), preempt=config["preempt"],
        preempt_delay_us=config["preempt_delay"] * SECOND,
        down_adverts=config["down_timer_adverts"],
        lower_prio_no_advert=config["lower_prio_no_advert"])
    now = 0
    for step in [("start",), *script]:
        kind = step[0]
        if kind == "advance":
            now += step[1]
            expected = model.advance(now)
            engine.expire(now)
        elif kind == "rx":
            _, priority, peer, interval_cs = step
            if config["version"] == 2:
                interval_field, interval_us = max(1, interval_cs // 100), max(1, interval_cs // 100) * SECOND
            else:
                interval_field, interval_us = interval_cs, interval_cs * 10_000
            message = encode(version=config["version"], vrid=7, priority=priority,
                             interval=interval_field, addresses=VIPS, src=peer,
                             dst="224.0.0.18")
            batch = RxBatch(1)
            batch.add_ipv4(ipv4_packet(message, peer, "224.0.0.18"), ifindex=3)
            expected = model.receive(now, priority=priority, src=as_int(peer),
                                     interval_us=interval_us)
            engine.receive(batch, now)
        elif kind == "delta":
            expected = model.set_delta(now, step[1])
            engine.set_priority_delta(0, step[1], now)
        elif kind == "fault":
            expected = model.fault(now, step[1])
            engine.set_fault(0, 2, step[1], now)
        elif kind == "stop":
            expected = model.stop(now)
            engine.stop(0, now)
        else:
            expected = model.start(now)
            engine.start(0, now)
        sent = [packet[5][2] for packet in engine.tx_packets()]  # priority byte
        engine.clear_tx()
        context = (step, now)
        assert sent == expected, context
        assert engine.state(0) == model.state, context
        assert engine.timer(0) == model.timer, context
        assert engine.effective_priority(0) == model.effective, context
        if model.state == "BACKUP":
            assert engine.master_down_interval_us(0) == model.master_down(), context
