"""Follower instances (`follow NAME`) on the simulator: they take their leader's
state in the same call, never elect, refresh at follow_refresh, and count
the adverts of another master as a follow mismatch."""

from hivrrp._engine import FAULT_INTERFACE, FAULT_TRACKER

from hivrrp.tools.sim import MILLISECOND, SECOND, Simulation

FOLLOWERS = ("F1", "F2", "F3")


def mdi_v2(priority):
    return 3 * SECOND + (256 - priority) * SECOND // 256


def pair(*, refresh=10.0, leader_priority=(200, 100), third=None, follower_priority=None):
    """r1 and r2, each with leader L (VRID 1) and followers F1..F3 (VRIDs 2-4) on one LAN.
    `third`: r3 with an ordinary instance on F1's VRID at that priority (a peer that does
    not follow)."""
    sim = Simulation()
    sim.segment("lan")
    for k, (name, priority) in enumerate(zip(("r1", "r2"), leader_priority)):
        r = sim.router(name)
        r.attach("lan", ifindex=1, ipv4=f"192.0.2.{k + 1}")
        r.instance("L", ifindex=1, vrid=1, priority=priority, addresses=["192.0.2.100"])
        for n, f in enumerate(FOLLOWERS):
            r.instance(f, ifindex=1, vrid=2 + n, priority=follower_priority or priority,
                       addresses=[f"192.0.2.{101 + n}"], follow="L", follow_refresh=refresh)
    if third is not None:
        r = sim.router("r3")
        r.attach("lan", ifindex=1, ipv4="192.0.2.3")
        r.instance("F1", ifindex=1, vrid=2, priority=third, addresses=["192.0.2.101"])
    sim.start()
    return sim


def states(sim, router, names=("L", *FOLLOWERS)):
    return tuple(sim.state(router, n) for n in names)


def moves(sim, router, since=0):
    """(time, instance, old, new, reason) of the router's transitions."""
    return [(e.time, e.instance, e.old, e.new, e.reason)
            for e in sim.transitions(router=router, since=since)]


def test_followers_take_their_leaders_election_in_the_same_instant():
    sim = pair()
    sim.run_for(30 * SECOND)
    assert states(sim, "r1") == ("MASTER",) * 4
    assert states(sim, "r2") == ("BACKUP",) * 4
    at = mdi_v2(200)
    assert [m for m in moves(sim, "r1") if m[3] == "MASTER"] == [
        (at, "L", "BACKUP", "MASTER", "master_down"),
        *[(at, f, "BACKUP", "MASTER", "leader") for f in FOLLOWERS]]
    # r2's followers heard no advert of theirs for 30 s (r1's followers only
    # refresh) and never moved: they have no master-down timer at all.
    assert [m for m in moves(sim, "r2") if m[2] != "INIT"] == []
    for f in FOLLOWERS:
        i = sim.routers["r2"].index_of(f)
        assert sim.engine("r2").timer(i) is None
        counters = sim.engine("r1").counters(sim.routers["r1"].index_of(f))
        assert counters["leader_transitions"] == 1
        assert counters["priority_zero_sent"] == 0


def test_a_crashed_masters_followers_move_to_the_peer_with_its_leader():
    sim = pair()
    sim.run_for(10 * SECOND)
    crash = sim.now
    sim.crash("r1")
    sim.run_for(10 * SECOND)
    assert states(sim, "r2") == ("MASTER",) * 4
    [took] = [m[0] for m in moves(sim, "r2", since=crash) if m[1] == "L"]
    assert [m for m in moves(sim, "r2", since=crash)] == [
        (took, "L", "BACKUP", "MASTER", "master_down"),
        *[(took, f, "BACKUP", "MASTER", "leader") for f in FOLLOWERS]]
    assert took - crash <= mdi_v2(100)
    # r1 comes back with the higher priority and preempts: all four go back together.
    sim.restart("r1")
    back = sim.now
    sim.run_for(10 * SECOND)
    assert states(sim, "r1") == ("MASTER",) * 4 and states(sim, "r2") == ("BACKUP",) * 4
    [released] = [m[0] for m in moves(sim, "r2", since=back) if m[1] == "L"]
    assert [m for m in moves(sim, "r2", since=back)] == [
        (released, "L", "MASTER", "BACKUP", "higher_priority"),
        *[(released, f, "MASTER", "BACKUP", "leader") for f in FOLLOWERS]]


def test_a_faulty_leader_takes_its_followers_to_backup_and_the_peer_takes_all_over():
    sim = pair()
    sim.run_for(10 * SECOND)
    fault = sim.now
    sim.set_fault("r1", "L", FAULT_INTERFACE, True)
    assert states(sim, "r1") == ("FAULT", "BACKUP", "BACKUP", "BACKUP")
    assert moves(sim, "r1", since=fault) == [
        (fault, "L", "MASTER", "FAULT", "fault"),
        *[(fault, f, "MASTER", "BACKUP", "leader") for f in FOLLOWERS]]
    r1 = sim.engine("r1")
    assert r1.counters(0)["priority_zero_sent"] == 1
    assert [r1.counters(k)["priority_zero_sent"] for k in (1, 2, 3)] == [0, 0, 0]
    # r2's leader heard priority 0: it takes over after Skew_Time, its followers with it.
    sim.run_for(SECOND)
    assert states(sim, "r2") == ("MASTER",) * 4
    [took] = [m[0] for m in moves(sim, "r2", since=fault) if m[1] == "L"]
    assert took == fault + (256 - 100) * SECOND // 256
    # The leader recovers as BACKUP (its followers stay BACKUP), then preempts.
    sim.set_fault("r1", "L", FAULT_INTERFACE, False)
    assert states(sim, "r1") == ("BACKUP",) * 4
    sim.run_for(10 * SECOND)
    assert states(sim, "r1") == ("MASTER",) * 4 and states(sim, "r2") == ("BACKUP",) * 4


def test_a_followers_own_fault_holds_it_alone_and_clearing_takes_the_leaders_state():
    sim = pair()
    sim.run_for(10 * SECOND)
    sim.set_fault("r1", "F2", FAULT_TRACKER, True)
    assert states(sim, "r1") == ("MASTER", "MASTER", "FAULT", "MASTER")
    # Its peer does not take F2 over: it follows its own leader, which is BACKUP.
    sim.run_for(10 * SECOND)
    assert states(sim, "r2") == ("BACKUP",) * 4
    cleared = sim.now
    sim.set_fault("r1", "F2", FAULT_TRACKER, False)
    assert moves(sim, "r1", since=cleared) == [(cleared, "F2", "FAULT", "MASTER",
                                                "fault_cleared")]
    # Faulty while its leader moves: it stays FAULT, and clears to the leader's state then.
    sim.set_fault("r1", "F2", FAULT_TRACKER, True)
    sim.set_fault("r1", "L", FAULT_INTERFACE, True)
    assert states(sim, "r1") == ("FAULT", "BACKUP", "FAULT", "BACKUP")
    sim.set_fault("r1", "F2", FAULT_TRACKER, False)
    assert states(sim, "r1") == ("FAULT", "BACKUP", "BACKUP", "BACKUP")
    sim.set_fault("r1", "L", FAULT_INTERFACE, False)
    sim.run_for(10 * SECOND)
    assert states(sim, "r1") == ("MASTER",) * 4


def test_a_master_follower_counts_another_master_as_a_mismatch_and_stays():
    # r3 runs F1's VRID as an ordinary instance at priority 250: it hears nobody
    # advertise that VRID every second (r1's F1 only refreshes), so it becomes
    # master too; r1's F1 counts each of its adverts and keeps its leader's word.
    sim = pair(third=250)
    sim.run_for(20 * SECOND)
    assert sim.state("r1", "F1") == "MASTER" and sim.state("r3", "F1") == "MASTER"
    r1 = sim.engine("r1")
    f1 = sim.routers["r1"].index_of("F1")
    counters = r1.counters(f1)
    # r3 is master from its Master_Down_Interval on and advertises every
    # second, and answers each refresh of r1's F1 (a lower priority) at once;
    # r1's F1 counts every one that came while it was master.
    r3_master = mdi_v2(250)
    periodic = [r3_master + k * SECOND for k in range(20) if r3_master + k * SECOND <= sim.now]
    refreshes = counters["adverts_sent"]
    assert refreshes == 2
    assert counters["adverts_received"] == len(periodic) + refreshes
    early = len([t for t in periodic if t < mdi_v2(200)])
    assert early == 1
    assert counters["follow_mismatch"] == counters["adverts_received"] - early
    assert counters["became_master"] == 1 and counters["released_master"] == 0
    records, _ = r1.take_drops(everything=True)
    mine = [(r[0], r[2], r[3], r[5], r[6]) for r in records if r[2] == "follow_mismatch"]
    # One record per sender (the log's one line), r3's priority beside ours.
    assert mine == [(f1, "follow_mismatch", bytes([192, 0, 2, 3]), 250, 200)]
    # r2's F1 is BACKUP: it hears r3 and says nothing; it notes the master for status.
    r2 = sim.engine("r2")
    i2 = sim.routers["r2"].index_of("F1")
    assert r2.counters(i2)["follow_mismatch"] == 0
    assert r2.master_address(i2) == "192.0.2.3"
    assert sim.state("r2", "F1") == "BACKUP"


def test_a_master_follower_refreshes_once_per_period_with_its_priority_spread_apart():
    sim = pair(refresh=10.0, follower_priority=150)
    start = mdi_v2(200)
    sim.run_until(start + 100 * SECOND)
    r1 = sim.engine("r1")
    refreshes = {}
    for f in FOLLOWERS:
        times = [e.time for e in sim.events
                 if e.router == "r1" and e.instance == f and e.reason == "follow_refresh"]
        refreshes[f] = times
        # Nothing at the takeover itself; the first within the period, then every 10 s.
        assert start < times[0] < start + 10 * SECOND
        assert [b - a for a, b in zip(times, times[1:])] == [10 * SECOND] * (len(times) - 1)
        assert len(times) == 10
        assert r1.counters(sim.routers["r1"].index_of(f))["adverts_sent"] == 10
    firsts = sorted(times[0] for times in refreshes.values())
    assert firsts[1] - firsts[0] > 100 * MILLISECOND and firsts[2] - firsts[1] > 100 * MILLISECOND
    # r2's followers received each refresh, at the followers' own priority.
    r2 = sim.engine("r2")
    i2 = sim.routers["r2"].index_of("F1")
    assert r2.counters(i2)["adverts_received"] == 10
    assert r2.master_address(i2) == "192.0.2.1"


def test_follow_refresh_0_sends_nothing_at_all():
    sim = pair(refresh=0)
    sim.run_for(60 * SECOND)
    r1 = sim.engine("r1")
    assert states(sim, "r1") == ("MASTER",) * 4
    assert [r1.counters(k)["adverts_sent"] for k in (1, 2, 3)] == [0, 0, 0]
    assert [r1.timer(k) for k in (1, 2, 3)] == [None, None, None]


def test_a_clean_shutdown_stops_the_followers_with_their_leader_without_priority_0():
    sim = pair()
    sim.run_for(10 * SECOND)
    stop = sim.now
    sim.shutdown("r1")
    assert moves(sim, "r1", since=stop) == [
        (stop, "L", "MASTER", "INIT", "stop"),
        *[(stop, f, "MASTER", "INIT", "stop") for f in FOLLOWERS]]
    r1 = sim.engine("r1")
    assert [r1.counters(k)["priority_zero_sent"] for k in range(4)] == [1, 0, 0, 0]
    sim.run_for(SECOND)
    assert states(sim, "r2") == ("MASTER",) * 4
    [took] = [m[0] for m in moves(sim, "r2", since=stop) if m[1] == "L"]
    assert took == stop + (256 - 100) * SECOND // 256


def test_an_owner_leader_makes_its_followers_masters_at_start():
    sim = pair(leader_priority=(255, 100))
    assert states(sim, "r1") == ("MASTER",) * 4
    assert [m for m in moves(sim, "r1")] == [
        (0, "L", "INIT", "MASTER", "owner"),
        *[(0, f, "INIT", "MASTER", "leader") for f in FOLLOWERS]]
