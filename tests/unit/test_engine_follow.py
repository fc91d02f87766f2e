"""The engine's follower API: follow() and what it refuses, the deferred
events a leader's move makes, force(), owners, and what a reload carries
when `follow` is added or removed."""

import pytest
from hivrrp._engine import FAULT_INTERFACE, FAULT_SYNC_GROUP, Engine
from hivrrp._wire import RxBatch, encode, ipv4_packet

from hivrrp.tools.sim import SECOND

OWN, PEER = "192.0.2.10", "192.0.2.20"


def mdi(priority, interval=SECOND):
    return 3 * interval + (256 - priority) * interval // 256


def group(followers=3, *, priority=200, leader_priority=None, refresh=60.0, engine=None,
          follow=True):
    """Leader 0 (VRID 1) and followers 1.. (VRIDs 2..), not started."""
    engine = engine or Engine(followers + 1, now=0)
    for k in range(followers + 1):
        engine.add_instance(vrid=1 + k, ifindex=2, src=OWN,
                            priority=leader_priority if k == 0 and leader_priority else priority,
                            addresses=[f"192.0.2.{100 + k}"])
    if follow:
        for k in range(1, followers + 1):
            engine.follow(k, 0, refresh)
    return engine


def master_group(followers=3, **kw):
    engine = group(followers, **kw)
    engine.start_all(0)
    now = engine.timer(0)
    engine.expire(now)
    assert engine.states() == ["MASTER"] * (followers + 1)
    return engine, now


def feed(engine, vrid, priority, now, src=PEER):
    message = encode(version=2, vrid=vrid, priority=priority, interval=1,
                     addresses=[f"192.0.2.{99 + vrid}"], src=src, dst="224.0.0.18")
    batch = RxBatch(1)
    batch.add_ipv4(ipv4_packet(message, src, "224.0.0.18"), ifindex=2)
    return engine.receive(batch, now)


def test_follow_refuses_what_it_could_not_run():
    engine = group(2, follow=False, engine=Engine(4, now=0))
    engine.add_instance(vrid=9, ifindex=2, src=OWN, addresses=["192.0.2.9"])
    with pytest.raises(ValueError, match="cannot follow itself"):
        engine.follow(1, 1)
    engine.follow(1, 0)
    assert (engine.leader(1), engine.leader(0), engine.followers(0)) == (0, None, [1])
    with pytest.raises(ValueError, match="no chains"):
        engine.follow(2, 1)            # 1 follows: it cannot lead
    with pytest.raises(ValueError, match="no chains"):
        engine.follow(0, 2)            # 0 leads: it cannot follow
    with pytest.raises(ValueError, match="no chains"):
        engine.follow(1, 2)            # 1 follows one leader already
    with pytest.raises(ValueError, match="refresh"):
        engine.follow(2, 0, -1)
    with pytest.raises(ValueError, match="cannot be in a sync group"):
        engine.set_sync_member(1, True)
    engine.set_sync_member(2, True)
    with pytest.raises(ValueError, match="sync group"):
        engine.follow(2, 0)
    engine.start(3, 0)
    with pytest.raises(ValueError, match="before start"):
        engine.follow(3, 0)
    assert engine.followers(0) == [1] and engine.follower_count(0) == 1


def test_a_leaders_move_holds_its_followers_events_back_in_order_when_asked():
    engine = group(3)
    engine.start_all(0)
    engine.take_events()
    now = engine.timer(0)
    engine.expire(now)
    events = engine.take_events(defer_followers=True)
    assert events == [(0, "BACKUP", "MASTER", "master_down", now, 3)]
    assert engine.deferred_pending == 3
    assert engine.take_deferred() == [(k, "BACKUP", "MASTER", "leader", now) for k in (1, 2, 3)]
    assert engine.deferred_pending == 0 and engine.take_deferred() == ()
    # A follower's own event after its leader's stays in the main list, after it.
    engine.set_fault(0, FAULT_INTERFACE, True, now + 1)
    engine.set_fault(2, FAULT_INTERFACE, True, now + 2)
    events = engine.take_events(causes=True, defer_followers=True)
    assert [e[:4] + (e[-1],) for e in events] == [
        (0, "MASTER", "FAULT", "fault", 3), (2, "BACKUP", "FAULT", "fault", 0)]
    assert [e[:4] for e in engine.take_deferred(causes=True)] == [
        (k, "MASTER", "BACKUP", "leader") for k in (1, 2, 3)]
    # Without defer_followers, everything, as before.
    engine.set_fault(0, FAULT_INTERFACE, False, now + 3)
    assert [e[:4] for e in engine.take_events()] == [(0, "FAULT", "BACKUP", "fault_cleared")]


def test_a_master_follower_sends_nothing_when_it_moves_and_no_priority_0_when_it_leaves():
    engine = group(3)
    engine.start_all(0)
    engine.clear_tx()
    now = engine.timer(0)
    engine.expire(now)
    assert [t[0] for t in engine.tx_packets()] == [0]       # the leader's advert only
    engine.clear_tx()
    engine.set_fault(0, FAULT_INTERFACE, True, now + 1)
    assert [t[0] for t in engine.tx_packets()] == [0]       # the leader's priority 0 only
    assert [engine.counters(k)["released_master"] for k in range(4)] == [1, 1, 1, 1]


def test_a_follower_is_never_forced_nor_an_owner():
    engine, now = master_group(2)
    assert engine.force(1, "BACKUP", now, "admin") is False
    assert engine.state(1) == "MASTER"
    assert engine.force(1, "MASTER", now, "admin") is True       # already there
    assert engine.force(1, "FAULT", now, "admin") is True
    assert engine.state(1) == "FAULT"
    engine.set_fault(1, 32, False, now)                          # FAULT_ADMIN
    assert engine.state(1) == "MASTER"
    engine.set_fault(0, FAULT_INTERFACE, True, now)
    assert engine.states() == ["FAULT", "BACKUP", "BACKUP"]
    # Priority 255 (set at runtime) does not make a backup follower take over.
    engine.take_events()
    engine.set_base_priority(1, 255, now)
    assert engine.state(1) == "BACKUP"
    assert engine.take_events() == [(1, "BACKUP", "BACKUP", "priority", now)]


def test_adverts_for_a_backup_follower_are_counted_and_never_obeyed():
    engine = group(1, priority=100)
    engine.start_all(0)
    for t in range(1, 20):
        engine.expire(t * SECOND)
        feed(engine, 2, 50, t * SECOND)           # a lower-priority master of F's VRID
    assert engine.states() == ["MASTER", "MASTER"]  # the leader went master (no one on VRID 1)
    engine.set_fault(0, FAULT_INTERFACE, True, 20 * SECOND)
    for t in range(21, 40):
        engine.expire(t * SECOND)
        feed(engine, 2, 50, t * SECOND)
    assert engine.state(1) == "BACKUP" and engine.timer(1) is None
    counters = engine.counters(1)
    assert counters["adverts_received"] == 38
    assert counters["follow_mismatch"] == len(range(4, 20))   # heard while master
    assert engine.master_address(1) == PEER


def carry(old, new, pairs, now):
    from array import array
    new.carry(old, array("i", [n for n, _ in pairs]), array("i", [o for _, o in pairs]), now)


def test_a_reload_that_removes_follow_keeps_the_state_and_elects_from_then_on():
    old, now = master_group(2)
    backup = group(2, priority=100)
    backup.start_all(0)
    assert backup.states() == ["BACKUP"] * 3
    later = now + 30 * SECOND
    # The masters' side: followers become independent masters, advertising at once.
    new = group(2, follow=False)
    carry(old, new, [(0, 0), (1, 1), (2, 2)], later)
    assert new.states() == ["MASTER"] * 3 and new.take_events() == ()
    assert new.timer(1) == later and new.timer(2) == later
    new.expire(later)
    assert {1, 2} <= {t[0] for t in new.tx_packets()}
    # The backups' side: independent backups waiting one Master_Down_Interval.
    new_backup = group(2, priority=100, follow=False)
    carry(backup, new_backup, [(0, 0), (1, 1), (2, 2)], later)
    assert new_backup.states() == ["BACKUP"] * 3 and new_backup.take_events() == ()
    assert new_backup.timer(1) == later + mdi(100)


def test_a_reload_that_adds_follow_aligns_the_new_followers_with_their_leader():
    # Independent instances: the leader is BACKUP, one of the others MASTER.
    old = group(2, follow=False)
    old.start_all(0)
    now = old.timer(1)
    old.expire(now)                    # all three fire at once: 1 and 2 go master ...
    old.force(0, "BACKUP", now, "admin")
    assert old.states() == ["BACKUP", "MASTER", "MASTER"]
    new = group(2)
    carry(old, new, [(0, 0), (1, 1), (2, 2)], now + 1)
    assert new.states() == ["BACKUP"] * 3
    assert [e[:4] for e in new.take_events()] == [
        (1, "MASTER", "BACKUP", "leader"), (2, "MASTER", "BACKUP", "leader")]
    assert new.timer(1) is None


def test_a_followers_refresh_deadline_survives_a_reload():
    old, now = master_group(1, refresh=10.0)
    deadline = old.timer(1)
    assert now < deadline < now + 10 * SECOND
    new = group(1, refresh=10.0)
    carry(old, new, [(0, 0), (1, 1)], now + SECOND)
    assert new.state(1) == "MASTER" and new.timer(1) == deadline
    # A shorter period brings it forward, never later than one period from now.
    shorter = group(1, refresh=1.0)
    carry(old, shorter, [(0, 0), (1, 1)], now + SECOND)
    assert shorter.timer(1) == on_grid(min(deadline, now + 2 * SECOND))


REFRESH_SLOT = SECOND // 4


def on_grid(t):
    return -(-t // REFRESH_SLOT) * REFRESH_SLOT


def test_refreshes_spread_over_the_period_on_a_coarse_grid_so_the_loop_wakes_a_few_times():
    followers, period = 2000, 60
    engine = Engine(followers + 1, now=0)
    for k in range(followers + 1):      # 200 VRIDs a link
        engine.add_instance(vrid=1 + k % 200, ifindex=2 + k // 200, src=OWN, priority=200,
                            addresses=[f"10.{k // 200}.{k % 200}.1"])
    for k in range(1, followers + 1):
        engine.follow(k, 0, float(period))
    engine.start_all(0)
    now = engine.timer(0)
    engine.expire(now)
    assert engine.states() == ["MASTER"] * (followers + 1)
    first = [engine.timer(k) for k in range(1, followers + 1)]
    assert all(t % REFRESH_SLOT == 0 and now < t <= now + period * SECOND + REFRESH_SLOT
               for t in first)
    # Spread (no burst of 2,000 at once), yet at most one wake-up per slot:
    # 2,000 own microseconds were 2,000 wake-ups a period.
    slots = period * SECOND // REFRESH_SLOT
    assert slots // 2 < len(set(first)) <= slots + 1
    engine.take_events()
    wakeups, refreshed, t = 0, set(), now
    while len(refreshed) < followers and t <= now + period * SECOND + REFRESH_SLOT:
        t = engine.wakeup()
        engine.expire(t)
        these = {e[0] for e in engine.take_events() if e[3] == "follow_refresh"}
        wakeups += bool(these)        # the leader's own adverts wake it too
        refreshed |= these
    assert len(refreshed) == followers and wakeups == len(set(first))
    # The next refresh of each: whole periods on (60 s is on the grid), so
    # the followers of a slot stay together period after period.
    assert all(engine.timer(k) > d and (engine.timer(k) - d) % (period * SECOND) == 0
               for k, d in enumerate(first, 1))


def test_a_leader_in_a_sync_group_moves_its_followers_when_forced():
    engine, now = master_group(2)
    engine.set_sync_member(0, True)
    engine.take_events()
    assert engine.force(0, "FAULT", now, "sync_group")
    assert engine.states() == ["FAULT", "BACKUP", "BACKUP"]
    assert [e[3] for e in engine.take_events()] == ["sync_group", "leader", "leader"]
    engine.set_fault(0, FAULT_SYNC_GROUP, False, now)
    assert engine.states() == ["BACKUP"] * 3


def test_a_stopping_leader_marks_its_master_followers_and_stops_the_others_after():
    engine, now = master_group(3)
    engine.set_fault(2, FAULT_INTERFACE, True, now)
    engine.take_events()
    engine.stop_all(now + 1)
    events = engine.take_events(defer_followers=True)
    # The marked run is one kind of move (every follower in it went MASTER -> INIT).
    assert [e[:4] + (e[-1],) for e in events] == [
        (0, "MASTER", "INIT", "stop", 2), (2, "FAULT", "INIT", "stop", 0)]
    assert [e[:4] for e in engine.take_deferred(limit=1)] == [(1, "MASTER", "INIT", "stop")]
    assert engine.deferred_pending == 1
    assert [e[:4] for e in engine.take_deferred()] == [(3, "MASTER", "INIT", "stop")]


def test_stop_all_stops_leaders_first_so_their_followers_go_with_them():
    # Followers configured before their leader: stop_all still moves them as a group.
    engine = Engine(3, now=0)
    for k in range(3):
        engine.add_instance(vrid=1 + k, ifindex=2, src=OWN, priority=200,
                            addresses=[f"192.0.2.{100 + k}"])
    engine.follow(0, 2)
    engine.follow(1, 2)
    engine.start_all(0)
    engine.expire(engine.timer(2))
    assert engine.states() == ["MASTER"] * 3
    engine.take_events()
    engine.stop_all(10 * SECOND)
    assert engine.take_events(defer_followers=True) == [
        (2, "MASTER", "INIT", "stop", 10 * SECOND, 2)]


def test_a_refresh_period_off_the_grid_keeps_its_cadence():
    engine, now = master_group(1, refresh=1.1)
    engine.take_events()
    refreshes, t = 0, now
    for _ in range(10000):                 # bounded: the leader wakes every second
        t = engine.wakeup()
        if t is None or t > now + 110 * SECOND:
            break
        engine.expire(t)
        refreshes += sum(1 for e in engine.take_events() if e[3] == "follow_refresh")
    # 110 s at 1.1 s: 100 refreshes (each on the grid, at most 250 ms late).
    assert refreshes >= 99, f"{refreshes} refreshes in 110 s at follow_refresh 1.1"


def test_a_reload_carries_a_followers_refresh_as_it_was_due_not_as_slotted():
    old, now = master_group(1, refresh=1.1)
    t = old.timer(1)
    old.expire(t)                           # a refresh: the next is due off the grid
    new = group(1, refresh=1.1)
    carry(old, new, [(0, 0), (1, 1)], t + 1)
    # Both engines refresh in the same slots from then on (carried as the
    # slot, the new one ran up to 250 ms behind for good).
    slots = {"old": [], "new": []}
    for name, engine in (("old", old), ("new", new)):
        for _ in range(8):
            slot = engine.timer(1)
            slots[name].append(slot)
            engine.expire(slot)
    assert slots["new"] == slots["old"]
