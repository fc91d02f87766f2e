"""Dropped adverts in the log: keepalived's words, the sender, once, then a count."""

import logging
from types import SimpleNamespace

import pytest
from hivrrp._engine import Engine
from hivrrp._wire import RxBatch, encode, ipv4_packet
from scapy.layers.inet import IP
from scapy.layers.vrrp import VRRP

from hivrrp.daemon.droplog import LOG_EACH_UP_TO, SUMMARY_PERIOD, DropLog

SUMMARY_PERIOD_SECONDS = int(SUMMARY_PERIOD)

SECOND = 1_000_000
VIPS = ["192.0.2.26", "192.0.2.27"]
OWN, PEER = "192.0.2.10", "192.0.2.20"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plan_of(count=1, names=None, **config):
    engine = Engine(count, now=0)
    for i in range(count):
        engine.add_instance(**{"vrid": 1 + i, "ifindex": 2, "src": OWN, "priority": 100,
                               "addresses": VIPS, "auth_type": 1, "auth_data": b"1234",
                               **config})
    engine.start_all(0)
    engine.take_events()
    return SimpleNamespace(engine=engine, names=names or [f"VI_{i + 1}" for i in range(count)])


def feed(plan, *datagrams, ifindex=2):
    batch = RxBatch(max(1, len(datagrams)))
    for data in datagrams:
        batch.add_ipv4(data, ifindex=ifindex)
    plan.engine.receive(batch, SECOND)


def v2(priority=200, *, src=PEER, vrid=1, interval=1, addresses=VIPS, auth=b"1234", ttl=255):
    message = encode(version=2, vrid=vrid, priority=priority, interval=interval,
                     addresses=addresses, auth_type=1, auth_data=auth)
    return ipv4_packet(message, src, "224.0.0.18", ttl=ttl)


@pytest.fixture
def logged(caplog):
    caplog.set_level(logging.DEBUG, logger="hivrrp")

    def lines(level=logging.INFO):
        out = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= level]
        caplog.clear()
        return out
    return lines


def droplog(plan, clock=None):
    interfaces = {2: SimpleNamespace(name="eth1"), 7: SimpleNamespace(name="eth7")}
    return DropLog(lambda: plan, lambda: interfaces, clock or Clock())


@pytest.mark.parametrize("packet, line", [
    (v2(auth=b"4321"), "(VI_1) received an invalid passwd from 192.0.2.20!"),
    (v2(addresses=["192.0.2.26"]),
     "(VI_1) received an unexpected ip number count 1 from 192.0.2.20, expected 2!"),
    (v2(addresses=["192.0.2.26", "192.0.2.99"]),
     "(VI_1) ip address associated with VRID 1 not present in advert from 192.0.2.20: "
     "192.0.2.27"),
    (v2(interval=3), "(VI_1) advertisement interval mismatch with 192.0.2.20 mine=1 sec "
                     "rcv'd=3 sec"),
    (v2(ttl=64), "(VI_1) invalid TTL/HL from 192.0.2.20. Received 64 and expect 255"),
    (ipv4_packet(encode(version=3, vrid=1, priority=200, interval=100, addresses=VIPS,
                        src=PEER, dst="224.0.0.18"), PEER, "224.0.0.18"),
     "(VI_1) wrong VRRP version from 192.0.2.20. Received 3 and expect 2"),
    (bytes(IP(src=PEER, dst="224.0.0.18", ttl=255) / VRRP(vrid=1, type=2, addrlist=VIPS,
                                                          authtype=1, auth1=0x31323334)),
     "(VI_1) Invalid packet type from 192.0.2.20. 2 and expect 1"),
    (bytes(IP(src=PEER, dst="224.0.0.18", ttl=255) / VRRP(vrid=1, ipcount=3, addrlist=VIPS)),
     "(VI_1) vrrp packet from 192.0.2.20 too short, length 24 and expect 28"),
])
def test_a_drop_is_logged_in_keepalived_words_with_the_sender(logged, packet, line):
    plan = plan_of()
    feed(plan, packet)
    droplog(plan).take(plan)
    assert logged() == [("WARNING", line)]


def test_an_owner_ignoring_adverts_says_so_once_then_counts(logged):
    # keepalived 2.3.3's words; a master heard by the owner of its addresses
    # sends a second a line, which must not become a line a second.
    plan, clock = plan_of(priority=255, owner_ignore_adverts=True), Clock()
    drops = droplog(plan, clock)
    for second in range(SUMMARY_PERIOD_SECONDS + 1):
        feed(plan, v2(255))
        drops.take(plan, everything=True)
        drops.summarise()
        clock.now += 1
    line = "(VI_1) Dropping packet(s) from 192.0.2.20 since we are address owner"
    assert logged() == [("WARNING", line),
                        ("WARNING", f"{line} ({SUMMARY_PERIOD_SECONDS} more in the last "
                                    f"{SUMMARY_PERIOD_SECONDS} s)")]


def test_a_drop_of_no_instance_names_the_interface(logged):
    plan = plan_of()
    feed(plan, v2(vrid=52), ifindex=7)
    feed(plan, v2(vrid=52), ifindex=9)
    droplog(plan).take(plan)
    assert sorted(logged()) == [
        ("INFO", "eth7: advert from 192.0.2.20 for VRID 52, which no instance has here"),
        ("INFO", "interface 9: advert from 192.0.2.20 for VRID 52, which no instance has here")]


def test_unknown_vrids_repeat_only_at_debug_level(logged):
    # Another VRRP group on the LAN is no fault of ours: said once at INFO,
    # not every minute for as long as it runs.
    plan, clock = plan_of(), Clock()
    drops = droplog(plan, clock)
    feed(plan, v2(vrid=52), ifindex=7)
    drops.take(plan)
    feed(plan, v2(vrid=52), ifindex=7)
    drops.take(plan, everything=True)
    clock.now += SUMMARY_PERIOD
    drops.summarise()
    assert logged(logging.DEBUG) == [
        ("INFO", "eth7: advert from 192.0.2.20 for VRID 52, which no instance has here"),
        ("DEBUG", "eth7: advert from 192.0.2.20 for VRID 52, which no instance has here "
                  "(1 more in the last 60 s)")]


def test_repeats_are_one_line_then_a_count_at_most_every_period(logged):
    plan, clock = plan_of(), Clock()
    drops = droplog(plan, clock)
    for second in range(130):
        feed(plan, v2(auth=b"4321"))
        drops.take(plan, everything=second % 10 == 0)
        if second % 10 == 0:
            drops.summarise()
        clock.now += 1
    # One a second: the line at 0 s, then the drops of 1..60 s and 61..120 s.
    assert logged() == [
        ("WARNING", "(VI_1) received an invalid passwd from 192.0.2.20!"),
        ("WARNING", "(VI_1) received an invalid passwd from 192.0.2.20! "
                    "(60 more in the last 60 s)"),
        ("WARNING", "(VI_1) received an invalid passwd from 192.0.2.20! "
                    "(60 more in the last 60 s)")]


def test_a_new_sender_is_logged_at_once(logged):
    plan = plan_of()
    drops = droplog(plan)
    feed(plan, v2(auth=b"4321"))
    drops.take(plan)
    feed(plan, v2(auth=b"4321"), v2(auth=b"4321", src="192.0.2.21"))
    drops.take(plan)
    assert [line for _, line in logged()] == [
        "(VI_1) received an invalid passwd from 192.0.2.20!",
        "(VI_1) received an invalid passwd from 192.0.2.21!"]


def test_a_peer_wrong_for_many_instances_is_one_line_per_reason(logged):
    n = LOG_EACH_UP_TO + 68
    plan = plan_of(n)
    drops = droplog(plan)
    feed(plan, *[v2(vrid=1 + i, auth=b"4321") for i in range(n)])
    drops.take(plan)
    lines = logged(logging.DEBUG)
    [(level, line)] = [(level, line) for level, line in lines if level != "DEBUG"]
    assert level == "WARNING"
    assert line.startswith("(VI_1) received an invalid passwd from 192.0.2.20!; and 99 more "
                           "of this kind (auth_failure): VI_2, VI_3, ")
    assert line.endswith(" and 91 more (each at debug level)")
    debug = [line for level, line in lines if level == "DEBUG"]
    assert len(debug) == n and debug[-1] == f"(VI_{n}) received an invalid passwd from 192.0.2.20!"
    feed(plan, *[v2(vrid=1 + i, auth=b"4321") for i in range(n)])
    drops.take(plan, everything=True)
    assert logged(logging.DEBUG) == []          # known: nothing is said twice


def test_a_reload_takes_the_records_by_name_and_does_not_repeat_them(logged):
    clock = Clock()
    old = plan_of(2, names=["VI_A", "VI_B"])
    drops = droplog(old, clock)
    feed(old, v2(vrid=2, auth=b"4321"))
    drops.take(old)
    feed(old, v2(vrid=2, auth=b"4321"))
    drops.take(old, everything=True)            # the engine is about to go
    # The new engine numbers VI_B 0: its drops are still VI_B's, and known.
    new = plan_of(1, names=["VI_B"], vrid=2)
    drops.plan = lambda: new
    feed(new, v2(vrid=2, auth=b"4321"))
    drops.take(new)
    clock.now += SUMMARY_PERIOD
    drops.summarise()
    assert [line for _, line in logged()] == [
        "(VI_B) received an invalid passwd from 192.0.2.20!",
        "(VI_B) received an invalid passwd from 192.0.2.20! (2 more in the last 60 s)"]


def test_drops_without_room_for_a_record_are_reported(logged):
    plan, clock = plan_of(), Clock()       # room for 1 + 64 kinds
    drops = droplog(plan, clock)
    feed(plan, *[v2(src=f"10.0.0.{n}", auth=b"4321") for n in range(1, 101)])
    drops.take(plan)
    lines = [line for _, line in logged()]
    assert len(lines) == 2
    assert lines[0].startswith("(VI_1) received an invalid passwd from 10.0.0.1!; and 64 more")
    assert lines[1].startswith("35 dropped adverts not itemised in the log")
    feed(plan, v2(src="10.0.0.100", auth=b"4321"))
    drops.take(plan)
    drops.take(plan, everything=True)
    clock.now += SUMMARY_PERIOD
    drops.summarise()
    assert [line for _, line in logged()] == [
        "1 more dropped advert not itemised in the log in the last 60 s"]


def test_a_reload_logs_the_retired_engines_drops_under_their_names(tmp_path, monkeypatch,
                                                                   logged):
    # The reload renumbers VI_B from 1 to 0: what its old engine recorded must
    # be taken before the swap, by the old names, or it is lost or misnamed.
    import asyncio

    from helpers.fakedaemon import reload, started
    from helpers.plans import ADDRESSES, LINKS, instance_text

    vi_b = instance_text("VI_B", 52, ["192.0.2.52/24"])
    text = instance_text("VI_A", 51, ["192.0.2.51/24"]) + vi_b

    async def scenario():
        d = await started(tmp_path, text, LINKS, ADDRESSES, monkeypatch)
        d.droplog.close()          # no periodic take: only the reload's
        assert d.plan.index["VI_B"] == 1
        message = encode(version=2, vrid=52, priority=200, interval=1,
                         addresses=["192.0.2.52", "192.0.2.53"])
        batch = RxBatch(1)
        batch.add_ipv4(ipv4_packet(message, "192.0.2.9", "224.0.0.18"), ifindex=2)
        d.plan.engine.receive(batch, 0)
        logged()
        await reload(d, vi_b)
        assert d.plan.index["VI_B"] == 0
        assert ("WARNING", "(VI_B) received an unexpected ip number count 2 from 192.0.2.9, "
                           "expected 1!") in logged()
        await d.shutdown()

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_the_drops_of_the_last_moments_are_logged_at_close(logged):
    """A new kind just before SIGTERM, and repeats not summarised yet, were
    lost with the timer."""
    plan, clock = plan_of(), Clock()
    drops = droplog(plan, clock)
    feed(plan, v2(auth=b"4321"))
    drops.take(plan)
    logged()
    clock.now += 3
    feed(plan, v2(auth=b"4321"), v2(auth=b"4321"), v2(ttl=64))     # after the last poll
    drops.close(plan)
    assert logged() == [
        ("WARNING", "(VI_1) invalid TTL/HL from 192.0.2.20. Received 64 and expect 255"),
        ("WARNING", "(VI_1) received an invalid passwd from 192.0.2.20! "
                    "(2 more in the last 3 s)")]


def test_one_instance_with_many_senders_is_named_once(logged):
    plan = plan_of(1)
    drops = droplog(plan)
    feed(plan, *[v2(auth=b"4321", src=f"192.0.2.{100 + k}") for k in range(LOG_EACH_UP_TO + 5)])
    drops.take(plan)
    [(level, line)] = [(lv, ln) for lv, ln in logged(logging.DEBUG) if lv != "DEBUG"]
    assert line.endswith(f"; and {LOG_EACH_UP_TO + 4} more of this kind (auth_failure): VI_1 "
                         "(each at debug level)"), line
