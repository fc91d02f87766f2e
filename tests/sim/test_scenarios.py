"""Multi-router scenarios on the simulator, with times computed from the RFC formulas."""

import pytest

from hivrrp.tools.sim import MILLISECOND, SECOND, Simulation

VIP = ["192.0.2.26"]


def skew_v2(priority):
    return (256 - priority) * SECOND // 256


def skew_v3(priority, master_interval):
    return (256 - priority) * master_interval // 256


def mdi_v2(priority, interval=SECOND):
    return 3 * interval + skew_v2(priority)


def mdi_v3(priority, master_interval):
    return 3 * master_interval + skew_v3(priority, master_interval)


def lan(routers, *, vrid=51, version=2, interval_cs=100, family=4, **common):
    """One segment, one instance VI_1 per router: routers = {name: (address, priority, extra)}."""
    sim = Simulation()
    sim.segment("lan")
    for name, (address, priority, extra) in routers.items():
        r = sim.router(name)
        r.attach("lan", ifindex=1, **({"ipv4": address} if family == 4 else {"ipv6": address}))
        config = {"vrid": vrid, "version": version, "family": family,
                  "interval_cs": interval_cs, "priority": priority,
                  "addresses": VIP if family == 4 else ["fe80::1:26", "fd00::26"],
                  **common, **extra}
        r.instance("VI_1", ifindex=1, **config)
    return sim


def changes(sim, since=0):
    return [(e.time, e.router, e.old, e.new, e.reason)
            for e in sim.transitions(since=since) if e.old != "INIT"]


def test_two_routers_elect_the_higher_priority_at_its_master_down_interval():
    sim = lan({"r1": ("192.0.2.1", 200, {}), "r2": ("192.0.2.2", 100, {})})
    sim.start()
    sim.run_until(30 * SECOND)
    assert changes(sim) == [(mdi_v2(200), "r1", "BACKUP", "MASTER", "master_down")]
    assert sim.masters("VI_1") == ["r1"]
    # r2 heard every advert: its deadline is one MDI after the latest one.
    last_advert = mdi_v2(200) + 26 * SECOND
    assert sim.engine("r2").timer(0) == last_advert + mdi_v2(100)
    counters = sim.engine("r2").counters(0)
    assert counters["adverts_received"] == 27 and counters["became_master"] == 0


def test_three_routers_elect_one_and_the_others_never_move():
    sim = lan({"r1": ("192.0.2.1", 100, {}), "r2": ("192.0.2.2", 250, {}),
               "r3": ("192.0.2.3", 150, {})})
    sim.start()
    sim.run_until(20 * SECOND)
    assert changes(sim) == [(mdi_v2(250), "r2", "BACKUP", "MASTER", "master_down")]
    assert sim.masters("VI_1") == ["r2"]


def test_master_crash_backup_takes_over_after_master_down_interval():
    sim = lan({"r1": ("192.0.2.1", 200, {}), "r2": ("192.0.2.2", 100, {}),
               "r3": ("192.0.2.3", 50, {})})
    sim.start()
    sim.run_until(10 * SECOND)
    sim.crash("r1")
    sim.run_until(30 * SECOND)
    last_advert = mdi_v2(200) + 6 * SECOND  # 9.21875 s, the last before the crash at 10 s
    assert changes(sim, since=10 * SECOND) == [
        (last_advert + mdi_v2(100), "r2", "BACKUP", "MASTER", "master_down")]
    assert sim.masters("VI_1") == ["r2"]


def test_priority_zero_release_takeover_after_skew_time():
    sim = lan({"r1": ("192.0.2.1", 200, {}), "r2": ("192.0.2.2", 100, {}),
               "r3": ("192.0.2.3", 50, {})})
    sim.start()
    sim.run_until(10 * SECOND)
    sim.shutdown("r1")
    sim.run_until(20 * SECOND)
    assert changes(sim, since=10 * SECOND) == [
        (10 * SECOND, "r1", "MASTER", "INIT", "stop"),
        (10 * SECOND + skew_v2(100), "r2", "BACKUP", "MASTER", "released"),
    ]
    assert sim.engine("r1").counters(0)["priority_zero_sent"] == 1
    assert sim.engine("r2").counters(0)["priority_zero_received"] == 1


def boot_late(sim, late, at):
    """Start everyone at 0, keep `late` off the wire, boot it fresh at `at`."""
    sim.start()
    sim.crash(late)
    sim.run_until(at)
    sim.restart(late)


def test_preemption_higher_priority_router_takes_over():
    sim = lan({"r1": ("192.0.2.1", 200, {}), "r2": ("192.0.2.2", 100, {})})
    boot_late(sim, "r1", 20 * SECOND)
    sim.run_until(40 * SECOND)
    # r1 ignores r2's lower-priority adverts, so its first MDI runs out.
    takeover = 20 * SECOND + mdi_v2(200)
    assert changes(sim, since=20 * SECOND) == [
        (takeover, "r1", "BACKUP", "MASTER", "preempt"),
        (takeover, "r2", "MASTER", "BACKUP", "higher_priority"),
    ]
    assert sim.masters("VI_1") == ["r1"]


def test_nopreempt_keeps_the_current_master():
    sim = lan({"r1": ("192.0.2.1", 200, {"preempt": False}), "r2": ("192.0.2.2", 100, {})})
    boot_late(sim, "r1", 20 * SECOND)
    sim.run_until(60 * SECOND)
    assert changes(sim, since=20 * SECOND) == []
    assert sim.masters("VI_1") == ["r2"]
    # ... until the master goes away.
    sim.crash("r2")
    sim.run_until(70 * SECOND)
    assert sim.masters("VI_1") == ["r1"]


def test_preempt_delay_defers_the_takeover():
    sim = lan({"r1": ("192.0.2.1", 200, {"preempt_delay": 5.0}), "r2": ("192.0.2.2", 100, {})})
    boot_late(sim, "r1", 20 * SECOND)
    sim.run_until(40 * SECOND)
    # r2 became master at mdi_v2(100) = 3.609375 s: adverts at x.609375 s.
    first_heard = 20 * SECOND + mdi_v2(100) % SECOND
    preempt_at = first_heard + 5 * SECOND
    last_accepted = preempt_at - SECOND  # adverts are accepted while now < preempt_at
    takeover = last_accepted + mdi_v2(200)
    assert changes(sim, since=20 * SECOND) == [
        (takeover, "r1", "BACKUP", "MASTER", "preempt"),
        (takeover, "r2", "MASTER", "BACKUP", "higher_priority"),
    ]
    assert takeover > 20 * SECOND + mdi_v2(200) + 4 * SECOND


@pytest.mark.parametrize("low, high", [("192.0.2.1", "192.0.2.2"), ("10.0.0.1", "203.0.113.1")])
def test_equal_priority_tie_break_on_primary_address(low, high):
    # 203.x is above 10.x only as an unsigned number: a signed compare gets it wrong.
    sim = lan({"low": (low, 100, {}), "high": (high, 100, {})})
    sim.start()
    sim.run_until(10 * SECOND)
    # Both time out together; the one with the lower address steps down on
    # hearing the other's first advert, in the same instant.
    assert sorted(changes(sim)) == sorted([
        (mdi_v2(100), "high", "BACKUP", "MASTER", "master_down"),
        (mdi_v2(100), "low", "BACKUP", "MASTER", "master_down"),
        (mdi_v2(100), "low", "MASTER", "BACKUP", "higher_priority"),
    ])
    assert sim.masters("VI_1") == ["high"]


def test_v2_skew_does_not_scale_with_the_interval():
    # RFC 3768: Skew_Time = (256 - Priority) / 256 seconds, whatever the interval.
    sim = lan({"r1": ("192.0.2.1", 100, {})}, interval_cs=200)
    sim.start()
    sim.run_until(10 * SECOND)
    assert changes(sim) == [(3 * 2 * SECOND + skew_v2(100), "r1", "BACKUP", "MASTER",
                             "master_down")]


def test_v3_timing_and_learned_master_interval():
    # r2 is configured for 1 s but learns r1's 0.5 s from its adverts.
    sim = lan({"r1": ("192.0.2.1", 200, {"interval_cs": 50}), "r2": ("192.0.2.2", 100, {})},
              version=3, interval_cs=100)
    sim.start()
    sim.run_until(10 * SECOND)
    r1_master = mdi_v3(200, 500 * MILLISECOND)
    assert changes(sim) == [(r1_master, "r1", "BACKUP", "MASTER", "master_down")]
    assert sim.engine("r2").master_adver_int_us(0) == 500 * MILLISECOND
    sim.crash("r1")
    sim.run_until(20 * SECOND)
    last_advert = r1_master + ((10 * SECOND - r1_master) // (500 * MILLISECOND)) * 500 * MILLISECOND
    assert changes(sim, since=10 * SECOND) == [
        (last_advert + mdi_v3(100, 500 * MILLISECOND), "r2", "BACKUP", "MASTER", "master_down")]


def test_v3_ten_millisecond_adverts_keep_submillisecond_skew():
    # At 1 cs, skew is a few hundred microseconds: rounding it to centiseconds
    # (FRR) would make every backup fire at once.
    sim = lan({"a": ("192.0.2.1", 100, {}), "b": ("192.0.2.2", 150, {}),
               "c": ("192.0.2.3", 200, {})}, version=3, interval_cs=1)
    sim.start()
    sim.run_until(SECOND)
    assert [(t, r) for t, r, *_ in changes(sim)] == [(mdi_v3(200, 10 * MILLISECOND), "c")]
    assert mdi_v3(200, 10 * MILLISECOND) == 30_000 + 2187
    # a (100) and b (150) are 1.953 ms apart: distinct deadlines, in order.
    assert sim.engine("a").master_down_interval_us(0) - sim.engine("b").master_down_interval_us(0) \
        == skew_v3(100, 10_000) - skew_v3(150, 10_000) == 6093 - 4140


def test_ipv6_v3_pair():
    sim = lan({"r1": ("fe80::1", 200, {}), "r2": ("fe80::2", 100, {})}, version=3, family=6)
    sim.start()
    sim.run_until(5 * SECOND)
    assert changes(sim) == [(mdi_v3(200, SECOND), "r1", "BACKUP", "MASTER", "master_down")]
    assert sim.engine("r2").counters(0)["adverts_received"] > 0


def test_partition_makes_two_masters_and_healing_leaves_the_right_one():
    sim = lan({"r1": ("192.0.2.1", 200, {}), "r2": ("192.0.2.2", 100, {})})
    sim.start()
    sim.run_until(10 * SECOND)
    sim.partition("r1", "r2")
    sim.run_until(30 * SECOND)
    assert sorted(sim.masters("VI_1")) == ["r1", "r2"]
    heal = 30 * SECOND + 123 * MILLISECOND
    sim.run_until(heal)
    sim.heal("r1", "r2")
    first_advert_after_heal = min(sim.engine("r1").timer(0), sim.engine("r2").timer(0))
    sim.run_until(60 * SECOND)
    assert changes(sim, since=heal) == [
        (first_advert_after_heal, "r2", "MASTER", "BACKUP", "higher_priority")]
    assert sim.masters("VI_1") == ["r1"]


def test_unicast_peers():
    sim = Simulation()
    sim.segment("lan")
    addresses = {"r1": "10.0.0.1", "r2": "10.0.0.2", "r3": "10.0.0.3"}
    for name, priority in (("r1", 200), ("r2", 100), ("r3", 50)):
        r = sim.router(name)
        r.attach("lan", ifindex=1, ipv4=addresses[name])
        r.instance("VI_1", ifindex=1, vrid=54, version=3, priority=priority, addresses=VIP,
                   peers=[a for n, a in addresses.items() if n != name])
    sim.start()
    sim.run_until(10 * SECOND)
    assert sim.masters("VI_1") == ["r1"]
    # One advert per peer, each checksummed for its own destination.
    tx = sim.engine("r1").counters(0)["adverts_sent"]
    assert sim.engine("r2").counters(0)["adverts_received"] == tx
    assert sim.engine("r3").counters(0)["adverts_received"] == tx
    sim.crash("r1")
    sim.run_until(20 * SECOND)
    assert sim.masters("VI_1") == ["r2"]


def test_loss_and_delay_do_not_cause_flaps_at_normal_rates():
    sim = Simulation(seed=7)
    sim.segment("lan", delay=0.002, loss=0.2)
    for name, address, priority in (("r1", "192.0.2.1", 200), ("r2", "192.0.2.2", 100)):
        r = sim.router(name)
        r.attach("lan", ifindex=1, ipv4=address)
        r.instance("VI_1", ifindex=1, vrid=51, priority=priority, addresses=VIP)
    sim.start()
    sim.run_until(120 * SECOND)
    # 20 % loss: three adverts in a row lost (0.8 %) over ~116 adverts may
    # happen; a flap must then heal back to r1.
    assert sim.masters("VI_1") == ["r1"]
    assert sim.lan.lost > 0


def test_priority_delta_input_moves_mastership():
    sim = lan({"r1": ("192.0.2.1", 200, {}), "r2": ("192.0.2.2", 150, {})})
    sim.start()
    sim.run_until(10 * SECOND)
    sim.set_priority_delta("r1", "VI_1", -100)  # a tracker failed: 200 -> 100
    assert sim.engine("r1").effective_priority(0) == 100
    sim.run_until(20 * SECOND)
    assert sim.masters("VI_1") == ["r2"]
    [change] = [c for c in changes(sim, since=10 * SECOND) if c[1] == "r2"]
    assert change[4] == "preempt"
