"""A follower group's gratuitous ARPs (announce_policy's group chain): tied to the
running plan and to the followers' states, and only for addresses in place."""

import asyncio

from hivrrp._engine import FAULT_INTERFACE, FAULT_TRACKER

from helpers.fakedaemon import reload, settle, started
from helpers.follow import GARP_REFRESH, VIPS, announced, fire, group_text, run
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.daemon.driver import now_us
from hivrrp.kernel.announce_policy import FOLLOWERS


def test_a_reload_that_changes_a_followers_vip_refreshes_the_new_vip_not_the_old(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        assert set(d.plan.states().values()) == {"MASTER"}
        assert (FOLLOWERS, "L") in d.garp.pending            # the group's refresh chain
        # F0's VIP moves from .10 to .110; everything stays MASTER.
        await reload(d, group_text({**VIPS, "F0": "192.0.2.110"}))
        assert set(d.plan.states().values()) == {"MASTER"}
        d.frames.clear()
        await asyncio.sleep(0.2)                             # about 5 refresh rounds
        sent = announced(d)
        # 192.0.2.10 is no longer ours (the reload removed it): a GARP for it
        # points the LAN's caches at us for an address we do not answer.
        assert "192.0.2.10" not in sent
        assert "192.0.2.110" in sent
        d.driver.close()
    run(scenario())


def test_followers_leaving_master_one_by_one_end_their_groups_refresh_chain(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        engine = d.plan.engine
        fire(d, "L")
        await settle(d)
        assert (FOLLOWERS, "L") in d.garp.pending
        # F1 faults on its own; then the leader faults: it moves F0 and F2
        # only, so they take the per-follower path (StopAnnouncing by name).
        engine.set_fault(d.plan.index["F1"], FAULT_TRACKER, True, now_us(d.loop))
        d.driver.after_engine_work()
        await settle(d)
        engine.set_fault(d.plan.index["L"], FAULT_INTERFACE, True, now_us(d.loop))
        d.driver.after_engine_work()
        await settle(d)
        assert d.plan.states() == {"L": "FAULT", "F0": "BACKUP", "F1": "FAULT",
                                   "F2": "BACKUP"}
        # Nobody of the group is master: nothing of its announcements may stay.
        assert (FOLLOWERS, "L") not in d.garp.pending
        # It does harm once they are masters again the same way: F0's VIP is
        # then refreshed by its own chain and by the group's, twice a round.
        engine.set_fault(d.plan.index["L"], FAULT_INTERFACE, False, now_us(d.loop))
        d.driver.after_engine_work()
        fire(d, "L")
        await settle(d)
        assert d.plan.states()["F0"] == "MASTER"
        d.frames.clear()
        await asyncio.sleep(0.2)
        f0 = sum(1 for frame in d.frames if frame[-4:] == bytes([192, 0, 2, 10]))
        l_ = sum(1 for frame in d.frames if frame[-4:] == bytes([192, 0, 2, 200]))
        assert f0 <= l_ + 1
        d.driver.close()
    run(scenario())


def test_a_group_that_left_master_before_its_trip_ended_gets_no_refresh_chain(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        engine = d.plan.engine
        fire(d, "L")                                   # the group's unit and Announce queued
        engine.set_fault(d.plan.index["L"], FAULT_INTERFACE, True, now_us(d.loop))
        d.driver.after_engine_work()                   # ... and its release, same trip
        await settle(d)
        assert set(d.plan.states().values()) == {"FAULT", "BACKUP"}
        assert "L" not in d.garp.pending               # the leader's own: checked, none
        assert (FOLLOWERS, "L") not in d.garp.pending  # the group's: runs for ever
        d.driver.close()
    run(scenario())


def test_a_reload_that_removes_a_group_ends_its_refresh_chain(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        assert (FOLLOWERS, "L") in d.garp.pending
        await reload(d, GARP_REFRESH + instance_text("OTHER", 99, ["192.0.2.99/24"]))
        assert list(d.plan.names) == ["OTHER"]
        assert (FOLLOWERS, "L") not in d.garp.pending
        d.driver.close()
    run(scenario())


def test_a_follower_added_while_its_groups_trip_runs_is_announced_after_its_vip(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS, head=""), LINKS, ADDRESSES, monkeypatch)
        net = d.netlink
        gate = asyncio.Event()
        real_apply = net.apply

        async def slow_first_trip(changes, drop=(), undrop=(), progress=None):
            if not gate.is_set():
                await gate.wait()                      # the takeover's trip, in flight
            return await real_apply(changes, drop, undrop, progress)

        d.vips.apply_vips = slow_first_trip
        sent_while = []                                # (address, its VIP in place then)

        class Recorder:
            def sendto(self, frame, where):
                address = ".".join(str(b) for b in frame[-4:])
                held = {c.address: c.add for c in net.applied}
                sent_while.append((address, held.get(address, False)))

            def close(self):
                pass

        d.garp.announcer.packet_socket = Recorder()
        fire(d, "L")                                   # the group's unit goes out
        await asyncio.sleep(0.01)
        # Meanwhile a reload adds F3: it comes up MASTER with its leader.
        await reload_nowait(d, group_text({**VIPS, "F3": "192.0.2.13"}, head=""))
        assert d.plan.states()["F3"] == "MASTER"
        gate.set()
        await settle(d)
        await asyncio.sleep(0.05)
        f3 = [held for address, held in sent_while if address == "192.0.2.13"]
        assert f3 and all(f3)                          # never before its VIP is there
        d.driver.close()
    run(scenario())


async def reload_nowait(d, text: str) -> None:
    """reload() without waiting for the VIP queue (its trip is held)."""
    from helpers.conf import write
    write(d.directory, "keepalived.conf", text)
    d.lifecycle.request_reload()
    for _ in range(400):
        await asyncio.sleep(0.005)
        if d.lifecycle.task is None:
            return
    raise AssertionError("the reload did not finish")


def count(d, address: str) -> int:
    """Gratuitous ARPs sent for `address`."""
    target = bytes(int(b) for b in address.split("."))
    return sum(1 for frame in d.frames if frame[-4:] == target)


def test_a_reload_in_flight_announces_neither_the_going_nor_the_coming_vip(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        gate = asyncio.Event()
        real_apply = d.vips.apply_vips

        async def held(changes, drop=(), undrop=(), progress=None):
            await gate.wait()                  # the reload's trip, in flight
            return await real_apply(changes, drop, undrop, progress=progress)

        d.vips.apply_vips = held
        await reload_nowait(d, group_text({**VIPS, "F0": "192.0.2.110"}))
        d.frames.clear()
        await asyncio.sleep(0.15)              # refresh rounds while it is held
        held_sent = announced(d)
        assert "192.0.2.11" in held_sent       # the chain goes on for the others
        # .110 is not there yet; .10 is on its way out.
        assert not {"192.0.2.110", "192.0.2.10"} & held_sent
        gate.set()
        await settle(d)
        d.frames.clear()
        await asyncio.sleep(0.15)
        assert "192.0.2.110" in announced(d) and "192.0.2.10" not in announced(d)
        # (The trip went: a wrapper that broke it would leave .110 out and
        # pass the assertions above on the announcements alone.)
        assert "192.0.2.110" in {c.address for c in d.netlink.applied if c.add}
        d.driver.close()
    run(scenario())


def test_a_reload_that_changes_the_refresh_repeat_is_the_groups_next_round(
        tmp_path, monkeypatch):
    twice = GARP_REFRESH.replace("vrrp_garp_master_refresh_repeat 1",
                                 "vrrp_garp_master_refresh_repeat 2")

    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        await reload(d, group_text(VIPS, head=twice))
        d.frames.clear()
        await asyncio.sleep(0.2)
        # The leader's own chain reads the new setting: so does its group's.
        assert count(d, "192.0.2.200") >= 6
        assert abs(count(d, "192.0.2.10") - count(d, "192.0.2.200")) <= 2
        d.driver.close()
    run(scenario())


def test_a_follower_master_again_on_its_own_is_refreshed_once_a_round(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        engine = d.plan.engine
        fire(d, "L")
        await settle(d)
        # F1 faults on its own and recovers while its leader stays master: its
        # own announcements (became master: fault_cleared) take it over.
        for fault in (True, False):
            engine.set_fault(d.plan.index["F1"], FAULT_TRACKER, fault, now_us(d.loop))
            d.driver.after_engine_work()
            await settle(d)
        assert set(d.plan.states().values()) == {"MASTER"}
        assert "F1" in d.garp.pending and (FOLLOWERS, "L") in d.garp.pending
        d.frames.clear()
        await asyncio.sleep(0.2)
        # Once a round, as the leader's VIP and the other followers': not by
        # its own chain and its group's both.
        assert count(d, "192.0.2.11") <= count(d, "192.0.2.200") + 1
        assert count(d, "192.0.2.10") >= 3
        d.driver.close()
    run(scenario())


def test_a_reload_during_the_groups_trip_leaves_its_followers_their_first_burst(
        tmp_path, monkeypatch):
    slow = GARP_REFRESH.replace("vrrp_garp_master_refresh 0.04", "vrrp_garp_master_refresh 1")

    async def scenario():
        d = await started(tmp_path, group_text(VIPS, head=slow), LINKS, ADDRESSES, monkeypatch)
        gate = asyncio.Event()
        real_apply = d.vips.apply_vips

        async def held(changes, drop=(), undrop=(), progress=None):
            await gate.wait()                  # the takeover's trip, in flight
            return await real_apply(changes, drop, undrop, progress=progress)

        d.vips.apply_vips = held
        fire(d, "L")
        await asyncio.sleep(0.01)
        # A reload that keeps every master (their refresh chains carried over)
        # while the followers' VIPs are on their way.
        await reload_nowait(d, group_text(VIPS, head=slow) + "\n")
        gate.set()
        await settle(d)
        await asyncio.sleep(0.05)              # well before a refresh round (1 s)
        # The group's burst announced them once their VIPs were in place ...
        assert set(VIPS.values()) <= {c.address for c in d.netlink.applied if c.add}
        assert set(VIPS.values()) <= announced(d)
        # ... and its chain is theirs: no follower keeps one of its own beside.
        assert not set(VIPS) & set(d.garp.pending)
        assert (FOLLOWERS, "L") in d.garp.pending
        d.driver.close()
    run(scenario())
