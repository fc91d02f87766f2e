"""Progressive announcements (VIP trips that report progress, the announcer
that holds repeats back during a trip) against reloads and later trips: no
frame for an address before it is in the kernel, and none missed once it is."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from pathlib import Path

import pytest

from helpers.conf import write
from helpers.fakedaemon import FakeSocket, settle, started
from helpers.follow import GARP_REFRESH, VIPS, announced, fire, group_text, run
from helpers.plans import ADDRESSES, LINKS, instance_text, owner_plan
from hivrrp.kernel import announce
from hivrrp.kernel.announce import Announcer

ONE_BURST = """
global_defs {
    vrrp_garp_master_delay 0
    vrrp_garp_master_repeat 1
}
"""


async def reload_nowait(d, text: str) -> None:
    """A reload without waiting for the VIP queue (its trip is held)."""
    write(d.directory, "keepalived.conf", text)
    d.lifecycle.request_reload()
    for _ in range(400):
        await asyncio.sleep(0.005)
        if d.lifecycle.task is None:
            return


def step_by_step(d, gate: asyncio.Event):
    """apply_vips as the netlink thread does it, one item a send: each item
    is in the kernel (d.netlink.applied) before progress() says so; the
    first trip waits for `gate`."""
    net = d.netlink

    async def apply(changes, drop=(), undrop=(), **kw):
        if not gate.is_set():
            await gate.wait()
        progress = kw.get("progress")
        for k, change in enumerate(changes):
            net.applied.extend(change.changes if hasattr(change, "changes") else [change])
            if progress is not None:
                progress(k + 1)
            await asyncio.sleep(0)
        return []

    return apply


def leader_and_followers(vips: dict[str, str]) -> str:
    """Leader L (192.0.2.200, priority 100: its master-down comes after
    OTHER's) and a follower per entry of `vips`."""
    out = instance_text("L", 1, ["192.0.2.200/24"], priority=100)
    for k, (name, vip) in enumerate(vips.items()):
        out += instance_text(name, 2 + k, [f"{vip}/24"], priority=200, extra="    follow L\n")
    return out


OTHER = instance_text("OTHER", 99, ["192.0.2.99/24"], priority=250)


def test_a_takeover_queued_behind_a_reload_announces_the_follower_the_reload_added(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, ONE_BURST + leader_and_followers(VIPS) + OTHER, LINKS,
                          ADDRESSES, monkeypatch)
        gate = asyncio.Event()
        d.vips.apply_vips = step_by_step(d, gate)
        fire(d, "OTHER")                  # a trip under the old plan, in flight
        await asyncio.sleep(0.01)
        # A reload adds F3 to L's group; then L and its four followers take over.
        await reload_nowait(d, ONE_BURST + leader_and_followers(
            {**VIPS, "F3": "192.0.2.13"}) + OTHER)
        assert d.plan.states()["L"] == "BACKUP" and "F3" in d.plan.index
        fire(d, "L")
        gate.set()
        await settle(d)
        await asyncio.sleep(0.05)
        assert set(d.plan.states().values()) == {"MASTER"}
        assert "192.0.2.13" in {c.address for c in d.netlink.applied}
        # vrrp_garp_master_delay 0, no refresh: the first burst is the only one.
        assert "192.0.2.13" in announced(d), sorted(announced(d))
        d.driver.close()
    run(scenario())


def test_a_vip_a_reload_adds_to_a_queued_master_is_not_announced_before_it_is_in(
        tmp_path, monkeypatch):
    def conf(s_vips):
        return (ONE_BURST + instance_text("Z", 9, ["192.0.2.90/24"], priority=250)
                + instance_text("S", 1, s_vips, priority=100))

    async def scenario():
        d = await started(tmp_path, conf(["192.0.2.50/24"]), LINKS, ADDRESSES, monkeypatch)
        net = d.netlink
        gate = asyncio.Event()
        d.vips.apply_vips = step_by_step(d, gate)
        sent_while = []                    # (address, its VIP in the kernel then)

        class Recorder:
            def sendto(self, frame, where):
                address = ".".join(str(b) for b in frame[-4:])
                now = {c.address: c.add for c in net.applied}
                sent_while.append((address, now.get(address, False)))

            def close(self):
                pass

        d.garp.announcer.packet_socket = Recorder()
        fire(d, "Z")                       # a trip in flight
        await asyncio.sleep(0.01)
        fire(d, "S")                       # S's takeover waits behind it ...
        assert d.plan.states()["S"] == "MASTER"
        # ... when a reload gives S a second VIP (queued after S's Announce).
        await reload_nowait(d, conf(["192.0.2.50/24", "192.0.2.51/24"]))
        gate.set()
        await settle(d)
        await asyncio.sleep(0.05)
        assert {a for a, _held in sent_while} >= {"192.0.2.50", "192.0.2.51"}
        assert all(held for _a, held in sent_while), sent_while
        d.driver.close()
    run(scenario())


def test_repeats_are_held_during_a_later_trip_too(tmp_path, monkeypatch):
    monkeypatch.setattr(announce, "HOLD_MAX", 0.05)
    plan = owner_plan(tmp_path, [("A", 51), ("B", 52)])
    plan.engine.start_all(0)
    by_index = {link.index: link for link in LINKS.values()}

    async def scenario():
        busy = [True]
        frames: list[bytes] = []
        announcer = Announcer(lambda: plan, lambda: by_index, hold=lambda: busy[0])
        announcer.packet_socket = announcer.icmp6_socket = FakeSocket(frames)
        loop = asyncio.get_running_loop()
        # A trip: a refresh (one frame, vrrp_min_garp or refresh_repeat 1)
        # goes out during it, and the queue is empty before the trip ends.
        announcer.announce(loop, "A", 2, bytes(6), [(4, bytes([192, 0, 2, 51]))], repeat=1)
        await asyncio.sleep(0.01)
        assert len(frames) == 1 and not len(announcer.queue)
        busy[0] = False                    # the trip ends; nothing to drain
        await asyncio.sleep(0.1)           # longer than HOLD_MAX
        busy[0] = True                     # a takeover's trip
        announcer.announce(loop, "B", 2, bytes(6), [(4, bytes([192, 0, 2, 52]))], repeat=3)
        await asyncio.sleep(0.01)          # well within HOLD_MAX of this trip
        # B's first frame goes; its repeats wait for the trip (or HOLD_MAX).
        assert len(frames) == 2, f"{len(frames) - 1} frames of B during its trip"
        announcer.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))


@pytest.mark.parametrize("module, name", [
    ("test_follow_announce",
     "test_a_reload_during_the_groups_trip_leaves_its_followers_their_first_burst"),
    ("test_sendpath_links", "test_a_start_that_removes_leftover_vips_still_sends_frames"),
])
def test_the_tests_wrapping_apply_vips_apply_their_vips(module, name, tmp_path, monkeypatch,
                                                        caplog):
    spec = importlib.util.spec_from_file_location(module, Path(__file__).with_name(module + ".py"))
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    test = getattr(loaded, name)
    with caplog.at_level(logging.ERROR, logger="hivrrp"):
        test(tmp_path, monkeypatch)
    failed = [r.getMessage() for r in caplog.records if r.getMessage().startswith("applying")]
    assert failed == [], [r.exc_text for r in caplog.records if r.exc_text][:1]


class HeldRecorder:
    """A packet socket that notes each frame's address and whether its VIP
    was in the kernel (d.netlink.applied) when it went."""

    def __init__(self, net) -> None:
        self.net = net
        self.sent: list[tuple[str, bool]] = []

    def sendto(self, frame, where):
        address = ".".join(str(b) for b in frame[-4:])
        now = {c.address: c.add for c in self.net.applied}
        self.sent.append((address, now.get(address, False)))

    def close(self):
        pass


async def master_with_a_held_reload(tmp_path, monkeypatch, before: str, after: str):
    """S master on `before` with its GARPs recorded, then a reload to `after`
    whose VIP trip waits for the returned gate."""
    d = await started(tmp_path, before, LINKS, ADDRESSES, monkeypatch)
    fire(d, "S")
    await settle(d)
    recorder = HeldRecorder(d.netlink)
    d.garp.announcer.packet_socket = recorder
    gate = asyncio.Event()
    d.vips.apply_vips = step_by_step(d, gate)
    await reload_nowait(d, after)
    return d, recorder, gate


def test_a_reload_that_adds_a_vip_to_a_master_announces_it_once_it_is_in(tmp_path, monkeypatch):
    # keepalived's reload sends a burst for a master it added addresses to;
    # no refresh here: nothing else would ever announce 192.0.2.51.
    def conf(s_vips):
        return ONE_BURST + instance_text("S", 1, s_vips, priority=250)

    async def scenario():
        d, recorder, gate = await master_with_a_held_reload(
            tmp_path, monkeypatch, conf(["192.0.2.50/24"]),
            conf(["192.0.2.50/24", "192.0.2.51/24"]))
        await asyncio.sleep(0.02)
        assert recorder.sent == []               # its trip is held
        gate.set()
        await settle(d)
        await asyncio.sleep(0.05)
        assert ("192.0.2.51", True) in recorder.sent, recorder.sent
        assert all(held for _a, held in recorder.sent), recorder.sent
        d.driver.close()
    run(scenario())


def test_a_masters_refresh_skips_a_vip_a_reload_has_not_put_in_yet(tmp_path, monkeypatch):
    def conf(s_vips):
        return GARP_REFRESH + instance_text("S", 1, s_vips, priority=250)

    async def scenario():
        d, recorder, gate = await master_with_a_held_reload(
            tmp_path, monkeypatch, conf(["192.0.2.50/24"]),
            conf(["192.0.2.50/24", "192.0.2.51/24"]))
        await asyncio.sleep(0.15)                # refresh rounds (40 ms) while it is held
        assert ("192.0.2.50", True) in recorder.sent     # the chain goes on
        assert all(held for _a, held in recorder.sent), recorder.sent
        gate.set()
        await settle(d)
        await asyncio.sleep(0.05)
        assert ("192.0.2.51", True) in recorder.sent, recorder.sent
        assert all(held for _a, held in recorder.sent), recorder.sent
        d.driver.close()
    run(scenario())


def test_a_renamed_masters_refresh_goes_on_while_the_reloads_trip_is_in_flight(
        tmp_path, monkeypatch):
    def conf(name, s_vips):
        return GARP_REFRESH + instance_text(name, 1, s_vips, priority=250)

    async def scenario():
        # The same instance (VRID 1 on eth0), renamed, with a VIP added: a trip.
        d, recorder, gate = await master_with_a_held_reload(
            tmp_path, monkeypatch, conf("S", ["192.0.2.50/24"]),
            conf("S2", ["192.0.2.50/24", "192.0.2.51/24"]))
        assert d.plan.states().get("S2") == "MASTER" and d.vips.task is not None
        before = len(recorder.sent)
        await asyncio.sleep(0.15)                # refresh rounds (40 ms) while it is held
        sent_held = recorder.sent[before:]
        gate.set()
        await settle(d)
        await asyncio.sleep(0.15)
        d.driver.close()
        # S2's chain runs (it refreshes once the trip is done) ...
        assert ("192.0.2.50", True) in recorder.sent[before + len(sent_held):], recorder.sent
        # ... and 192.0.2.50 is in throughout: the chain must go on as for an unrenamed master.
        assert ("192.0.2.50", True) in sent_held, sent_held
    run(scenario())


def test_a_vip_moved_from_a_backup_to_a_master_is_not_refreshed_before_it_is_in(
        tmp_path, monkeypatch):
    # The reload gives B's VIP (B backup: not on the interface) to master S:
    # S's refresh during the trip must leave it out, though the plan in place
    # configures that address (for B).
    before = (GARP_REFRESH + instance_text("S", 1, ["192.0.2.50/24"], priority=250)
              + instance_text("B", 2, ["192.0.2.51/24"], priority=100))
    after = GARP_REFRESH + instance_text("S", 1, ["192.0.2.50/24", "192.0.2.51/24"],
                                         priority=250)

    async def scenario():
        d, recorder, gate = await master_with_a_held_reload(tmp_path, monkeypatch, before, after)
        assert d.vips.task is not None
        await asyncio.sleep(0.15)                # refresh rounds (40 ms) while it is held
        assert ("192.0.2.50", True) in recorder.sent       # S's chain goes on
        assert all(held for _a, held in recorder.sent), recorder.sent
        gate.set()
        await settle(d)
        d.driver.close()
    run(scenario())


def test_a_renamed_follower_is_refreshed_with_its_group_while_the_reloads_trip_is_in_flight(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        recorder = HeldRecorder(d.netlink)
        d.garp.announcer.packet_socket = recorder
        gate = asyncio.Event()
        d.vips.apply_vips = step_by_step(d, gate)
        # F1 renamed G1 (the same VRID): its VIP stays in; F3 added: a trip.
        await reload_nowait(d, group_text({"F0": "192.0.2.10", "G1": "192.0.2.11",
                                           "F2": "192.0.2.12", "F3": "192.0.2.13"}))
        assert d.plan.states().get("G1") == "MASTER" and d.vips.task is not None
        before = len(recorder.sent)
        await asyncio.sleep(0.15)                # the group's refresh rounds (40 ms), held
        sent_held = recorder.sent[before:]
        gate.set()
        await settle(d)
        d.driver.close()
        assert ("192.0.2.10", True) in sent_held, sent_held     # the chain goes on ...
        assert ("192.0.2.11", True) in sent_held, sent_held     # ... with G1 in it
        assert all(held for _a, held in recorder.sent), [x for x in recorder.sent if not x[1]]
    run(scenario())


def test_two_followers_a_reload_added_are_each_announced_only_once_in(tmp_path, monkeypatch):
    # The first new master's announcement moves the plan in place to the
    # reload's; the second follower's VIP is still on its way meanwhile.
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        recorder = HeldRecorder(d.netlink)
        d.garp.announcer.packet_socket = recorder
        gate = asyncio.Event()
        net = d.netlink

        async def apply(changes, drop=(), undrop=(), **kw):
            for k, change in enumerate(changes):
                net.applied.extend(getattr(change, "changes", [change]))
                if kw.get("progress") is not None:
                    kw["progress"](k + 1)
                if k == 0:
                    await gate.wait()        # the first VIP in, the second not
            return []
        d.vips.apply_vips = apply
        await reload_nowait(d, group_text({**VIPS, "F3": "192.0.2.13", "F4": "192.0.2.14"}))
        await asyncio.sleep(0.15)            # L's group refresh rounds (40 ms), held
        gate.set()
        await settle(d)
        await asyncio.sleep(0.05)
        d.driver.close()
        assert all(held for _a, held in recorder.sent), [x for x in recorder.sent if not x[1]]
        assert {"192.0.2.13", "192.0.2.14"} <= {a for a, _held in recorder.sent}
    run(scenario())


def test_reloads_that_change_no_vip_keep_no_old_plan_alive(tmp_path, monkeypatch):
    import gc
    import weakref

    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        refs = []
        for k in range(4):                   # the same VIPs: no VIP change
            refs.append(weakref.ref(d.plan))
            await reload_nowait(d, group_text(VIPS) + f"# reload {k}\n")
            await settle(d)
        gc.collect()
        alive = [r() is not None for r in refs]
        d.driver.close()
        assert alive.count(True) <= 2, alive   # the last one seen, and the one before
    run(scenario())


def test_a_takeover_after_a_reload_that_changed_no_vip_is_a_plain_one(tmp_path, monkeypatch):
    # No plan mark left behind: the takeover's bursts are neither filtered
    # against the old plan nor off their packed fast path.
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        await reload_nowait(d, group_text(VIPS) + "# the same VIPs\n")
        await settle(d)
        assert not d.vips.pending.marks and d.vips.seen is d.plan
        gate = asyncio.Event()
        d.vips.apply_vips = step_by_step(d, gate)
        fire(d, "L")                          # the group's takeover, its trip held
        assert d.vips.task is not None or d.vips.pending.words
        await asyncio.sleep(0.01)
        assert d.vips.in_place() is d.plan and d.vips.on_the_way() == frozenset()
        gate.set()
        await settle(d)
        d.driver.close()
    run(scenario())
