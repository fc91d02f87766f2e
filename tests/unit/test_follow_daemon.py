"""Follower instances in the daemon, without root: a leader's move is one
precomputed unit on the way to netlink, the followers' own events (log,
notify) come after the trip was handed over, a partial move and a follower's
own event keep their order, reloads add and remove followers without flaps,
and a reload that removes a leader still followed is refused."""

import asyncio

from hivrrp._engine import FAULT_INTERFACE, FAULT_TRACKER

import hivrrp.daemon.wiring as wiring
from helpers.fakedaemon import reload, settle, started
from helpers.follow import fire, run
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.daemon.driver import now_us
from hivrrp.kernel.addrbatch import Encoded

FOLLOWERS = 40


def text(followers=FOLLOWERS, *, follow=True, names=None, leader=True):
    out = instance_text("L", 1, ["192.0.2.200/24"], priority=200) if leader else ""
    for k in (names if names is not None else range(followers)):
        out += instance_text(f"F{k}", 2 + k, [f"192.0.2.{10 + k}/24"], priority=200,
                             extra="    follow L\n" if follow else "")
    return out


def record(d, monkeypatch):
    """What happened, in order: ("trip", changes) as netlink got them, ("notify", name, state)."""
    order = []
    apply = d.netlink.apply

    async def recorded(changes, drop=(), undrop=(), progress=None):
        order.append(("trip", list(changes)))
        return await apply(changes, drop, undrop, progress)

    d.netlink.apply = recorded
    d.vips.apply_vips = recorded
    real = d.notifications.event

    def event(name, old, new, reason, priority):
        if old != new:
            order.append(("notify", name, new, reason))
        return real(name, old, new, reason, priority)

    monkeypatch.setattr(d.notifications, "event", event)
    # As with a notify script or FIFO: the followers' events are handed over.
    d.notifications.followers_silent = False
    return order


def present(d):
    """The VIPs the fake kernel holds now: the last word on each address."""
    held = {}
    for change in d.netlink.applied:
        held[change.address] = change.add
    return {address for address, up in held.items() if up}


def test_a_leaders_election_is_one_unit_to_netlink_and_the_followers_reports_come_after(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, text(), LINKS, ADDRESSES, monkeypatch)
        assert set(d.plan.states().values()) == {"BACKUP"}
        order = record(d, monkeypatch)
        calls = []
        real_transition = wiring.reactor.transition
        monkeypatch.setattr(wiring.reactor, "transition",
                            lambda inst, *a: calls.append(inst.name) or real_transition(inst, *a))
        fire(d, "L")
        # Python saw one event and made one transition before the trip: the leader's.
        assert calls == ["L"]
        await settle(d)
        assert set(d.plan.states().values()) == {"MASTER"}
        trips = [entry[1] for entry in order if entry[0] == "trip"]
        [first] = trips
        assert [c.address for c in first if not isinstance(c, Encoded)] == ["192.0.2.200"]
        [unit] = [c for c in first if isinstance(c, Encoded)]
        assert unit.add and [c.address for c in unit.changes] == [
            f"192.0.2.{10 + k}" for k in range(FOLLOWERS)]
        # The followers' notifications, after the trip was handed over, each once.
        trip_at = order.index(("trip", first))
        notified = [entry for entry in order if entry[0] == "notify"]
        assert notified[0] == ("notify", "L", "MASTER", "master_down")
        assert [e[1:] for e in notified[1:]] == [(f"F{k}", "MASTER", "leader")
                                               for k in range(FOLLOWERS)]
        assert all(order.index(e) > trip_at for e in notified[1:])
        assert present(d) == {"192.0.2.200", *(f"192.0.2.{10 + k}" for k in range(FOLLOWERS))}
        # One burst for all of them: a frame per VIP.
        await asyncio.sleep(0.05)
        assert len(d.frames) >= FOLLOWERS + 1
        d.driver.close()
    run(scenario())


def test_followers_nobody_listens_to_are_not_handed_over_one_by_one(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, text(), LINKS, ADDRESSES, monkeypatch)
        assert d.notifications.followers_silent
        order = record(d, monkeypatch)
        d.notifications.followers_silent = True
        fire(d, "L")
        await settle(d)
        assert set(d.plan.states().values()) == {"MASTER"}
        assert [e[1:] for e in order if e[0] == "notify"] == [("L", "MASTER", "master_down")]
        assert d.plan.engine.deferred_pending == 0 and not d.follow_spans
        d.driver.close()
    run(scenario())
    # A notify script on one follower (or a FIFO) and they are.
    script = tmp_path / "notify.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    with_script = text().replace("    follow L\n", f"    follow L\n    notify {script}\n", 1)

    async def listened():
        d = await started(tmp_path, with_script, LINKS, ADDRESSES, monkeypatch)
        assert not d.notifications.followers_silent
        d.driver.close()
    run(listened())


def test_a_faulty_leader_releases_its_followers_as_one_unit(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, text(), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        order = record(d, monkeypatch)
        engine = d.plan.engine
        engine.set_fault(d.plan.index["L"], FAULT_INTERFACE, True, now_us(d.loop))
        d.driver.after_engine_work()
        await settle(d)
        assert d.plan.states()["L"] == "FAULT"
        assert {s for n, s in d.plan.states().items() if n != "L"} == {"BACKUP"}
        [trip] = [entry[1] for entry in order if entry[0] == "trip"]
        [unit] = [c for c in trip if isinstance(c, Encoded)]
        assert not unit.add and len(unit) == FOLLOWERS
        assert present(d) == set()
        assert "followers" not in str(d.garp.pending)      # the group's bursts are void
        d.driver.close()
    run(scenario())


def test_a_partial_move_goes_follower_by_follower_and_leaves_the_faulty_one_out(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, text(), LINKS, ADDRESSES, monkeypatch)
        engine = d.plan.engine
        engine.set_fault(d.plan.index["F3"], FAULT_TRACKER, True, now_us(d.loop))
        d.driver.after_engine_work()
        order = record(d, monkeypatch)
        fire(d, "L")
        await settle(d)
        assert d.plan.states()["F3"] == "FAULT"
        trips = [entry[1] for entry in order if entry[0] == "trip"]
        assert not any(isinstance(c, Encoded) for trip in trips for c in trip)
        assert present(d) == {"192.0.2.200", *(f"192.0.2.{10 + k}" for k in range(FOLLOWERS)
                                               if k != 3)}
        d.driver.close()
    run(scenario())


def test_a_followers_own_event_after_its_leaders_keeps_its_order(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, text(), LINKS, ADDRESSES, monkeypatch)
        order = record(d, monkeypatch)
        engine = d.plan.engine
        i = d.plan.index["L"]
        due = engine.timer(i)
        engine.expire(due)                                      # all MASTER
        engine.set_fault(d.plan.index["F7"], FAULT_TRACKER, True, due)   # F7 leaves again
        d.driver.after_engine_work()                            # one batch of both
        await settle(d)
        f7 = [entry[2:] for entry in order if entry[0] == "notify" and entry[1] == "F7"]
        assert f7 == [("MASTER", "leader"), ("FAULT", "fault")]
        assert "192.0.2.17" not in present(d)
        assert len(present(d)) == FOLLOWERS          # the leader's and 39 followers'
        d.driver.close()
    run(scenario())


def test_reloads_add_and_remove_followers_without_moving_the_others(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, text(10), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        held = present(d)
        order = record(d, monkeypatch)
        # Five more followers: they come up MASTER with their leader, the others stay put.
        await reload(d, text(15))
        assert set(d.plan.states().values()) == {"MASTER"}
        moved = [e[1:] for e in order if e[0] == "notify"]
        assert moved == [(f"F{k}", "MASTER", "leader") for k in range(10, 15)]
        adds = [c.address for trip in (e[1] for e in order if e[0] == "trip") for c in trip]
        assert adds == [f"192.0.2.{10 + k}" for k in range(10, 15)]
        assert present(d) == held | {f"192.0.2.{10 + k}" for k in range(10, 15)}
        # Five of them go: their VIPs go, nobody else moves.
        order.clear()
        await reload(d, text(names=[k for k in range(15) if k not in (2, 4, 6, 8, 12)]))
        assert set(d.plan.states().values()) == {"MASTER"}
        assert [e for e in order if e[0] == "notify"] == []
        gone = {c.address for trip in (e[1] for e in order if e[0] == "trip") for c in trip
                if not c.add}
        assert gone == {f"192.0.2.{10 + k}" for k in (2, 4, 6, 8, 12)}
        d.driver.close()
    run(scenario())


def test_followers_whose_follow_is_removed_keep_their_state_and_then_elect(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, text(4), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        order = record(d, monkeypatch)
        await reload(d, text(4, follow=False))
        assert set(d.plan.states().values()) == {"MASTER"}
        assert [e for e in order if e[0] in ("notify", "trip")] == []
        engine = d.plan.engine
        # Independent masters now: each advertises on its own timer.
        assert all(engine.timer(d.plan.index[f"F{k}"]) is not None for k in range(4))
        assert engine.leader(d.plan.index["F0"]) is None
        d.driver.close()
    run(scenario())


def test_a_reload_that_removes_a_leader_still_followed_is_refused(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, text(4), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        before = d.plan
        await reload(d, text(4, leader=False))
        assert d.plan is before and d.lifecycle.reloads["rejected"] == 1
        assert set(d.plan.states().values()) == {"MASTER"}
        d.driver.close()
    run(scenario())


def test_a_shutdown_releases_the_followers_with_their_leader(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, text(), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        order = record(d, monkeypatch)
        await d._release()
        await asyncio.sleep(0.01)
        assert set(d.plan.states().values()) == {"INIT"}
        trips = [entry[1] for entry in order if entry[0] == "trip"]
        assert [type(c).__name__ for trip in trips for c in trip].count("Encoded") == 1
        assert present(d) == set()
        notified = [e[1:] for e in order if e[0] == "notify"]
        assert notified[0] == ("L", "INIT", "stop")
        assert sorted(notified[1:]) == sorted((f"F{k}", "INIT", "stop")
                                              for k in range(FOLLOWERS))
        d.driver.close()
    run(scenario())


def test_operators_see_the_leader_the_mismatches_and_the_leaders_moves(tmp_path, monkeypatch):
    from hivrrp.daemon.droplog import Drop, describe
    from hivrrp.ops.control import rows_of, snapshot
    from hivrrp.ops.metrics import InstanceLabels, Snapshot, render_instances

    async def scenario():
        d = await started(tmp_path, text(2), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        rows = {r["instance"]: r for r in rows_of(snapshot(d))}
        assert rows["F1"]["leader"] == "L" and "leader" not in rows["L"]
        body = b"".join(render_instances(d.plan, InstanceLabels(), 0.0,
                                         Snapshot.of(d.plan.engine))).decode()
        assert 'vrid="3",family="ipv4",version="2",vips="192.0.2.11",leader="L"' in body
        assert 'hivrrp_leader_transitions_total{vrrp_instance="F1",interface="eth0",vrid="3",' \
               'family="ipv4"} 1' in body
        assert 'hivrrp_follow_mismatch_total{vrrp_instance="F1",' in body
        d.driver.close()
    run(scenario())
    line = describe(Drop("F1", "follow_mismatch", bytes([192, 0, 2, 9]), (250, 200), None, 2, 3),
                    str)
    assert line == ("(F1) master by its leader, heard an advert for VRID 3 from 192.0.2.9 "
                    "(priority 250, ours 200): another router is master of it too; kept (a "
                    "follower obeys its leader only: does that router run hivrrp with the same "
                    "`follow`?)")
