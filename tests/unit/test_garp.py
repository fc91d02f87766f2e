"""Announcement policy (kernel/announce_policy.py): bursts keyed by name, checked when due."""

import asyncio

from helpers.plans import LINKS, owner_plan
from hivrrp.config.diagnostics import Where
from hivrrp.config.model import GlobalDefs, Instance
from hivrrp.kernel.announce import Announcer
from hivrrp.kernel.announce_policy import AnnouncePolicy, settings

FAST = """
global_defs {
    vrrp_garp_master_delay 0.05
    vrrp_garp_master_repeat 2
    vrrp_garp_lower_prio_delay 0.03
    vrrp_garp_lower_prio_repeat 1
    vrrp_garp_master_refresh 0.04
    vrrp_garp_master_refresh_repeat 3
}
"""


class FakeSocket:
    def __init__(self, sent):
        self.sent = sent

    def sendto(self, frame, where):
        self.sent.append(frame)

    def close(self):
        pass


def masters(directory, names_vrids):
    """A plan of owners, started: all MASTER, with the FAST announce settings."""
    plan = owner_plan(directory, names_vrids, prefix=FAST)
    plan.engine.start_all(0)
    return plan


class Harness:
    """An AnnouncePolicy over a real Announcer whose sockets record frames."""

    def __init__(self, plan):
        self.plan = plan
        self.frames: list[bytes] = []
        loop = asyncio.get_running_loop()
        by_index = {link.index: link for link in LINKS.values()}
        self.policy = AnnouncePolicy(loop, lambda: self.plan, lambda: by_index)
        self.policy.announcer.packet_socket = FakeSocket(self.frames)
        self.policy.announcer.icmp6_socket = FakeSocket(self.frames)

    def announced(self) -> list[str]:
        """The announced addresses, one per frame (ARP target protocol address)."""
        return [".".join(str(b) for b in frame[-4:]) for frame in self.frames]


async def wait_until(condition, timeout: float = 2.0) -> None:
    for _ in range(int(timeout / 0.002)):
        if condition():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("condition not met in time")


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 5))


def test_settings_follow_keepalived_defaults_and_overrides():
    inst = Instance("VI_1", Where("f", 1))
    s = settings(inst, GlobalDefs())
    assert (s.master_repeat, s.master_delay, s.lower_prio_repeat, s.lower_prio_delay,
            s.refresh) == (5, 5.0, 5, 5.0, 0.0)
    inst.garp = {"lower_prio_repeat": 2, "master_refresh": 30}
    s = settings(inst, GlobalDefs(garp_lower_prio_delay=1.0))
    assert (s.lower_prio_repeat, s.lower_prio_delay, s.refresh) == (2, 1.0, 30.0)
    s = settings(Instance("VI_1", Where("f", 1)), GlobalDefs(min_garp=True))
    assert (s.master_repeat, s.master_delay, s.lower_prio_repeat) == (1, 0.0, 1)


def test_new_master_bursts_now_after_the_delay_and_refreshes(tmp_path):
    async def scenario():
        h = Harness(masters(tmp_path, [("VI_1", 51)]))
        loop = asyncio.get_running_loop()
        started = loop.time()
        h.policy.became_master("VI_1")
        await asyncio.sleep(0.005)
        assert h.announced() == ["192.0.2.51"] * 2          # master_repeat, at once
        # Then refresh_repeat (3) every 0.04 s and master_repeat (2) once at 0.05 s:
        # 2 + 3 at 0.04, then + 2 at 0.05 makes 7, where a burst missing or doubled
        # would never make exactly 7 before 0.08.
        await wait_until(lambda: len(h.frames) >= 7)
        assert len(h.frames) == 7 and loop.time() - started >= 0.05
        await wait_until(lambda: len(h.frames) >= 13)        # the chain goes on
        h.policy.close()
    run(scenario())


def test_leaving_master_voids_pending_bursts_and_queued_frames(tmp_path):
    async def scenario():
        h = Harness(masters(tmp_path, [("VI_1", 51)]))
        h.policy.became_master("VI_1")
        h.plan.engine.stop(0, 1)               # left MASTER before the frames went out
        await asyncio.sleep(0.12)
        assert h.frames == [] and h.policy.announcer.dropped == 2
        # ... and the delayed burst and refresh chain found it not master.
        assert "VI_1" not in h.policy.pending
        h.policy.close()
    run(scenario())


def test_stop_cancels_the_delayed_burst_and_the_refresh_chain(tmp_path):
    async def scenario():
        h = Harness(masters(tmp_path, [("VI_1", 51)]))
        h.policy.became_master("VI_1")
        await asyncio.sleep(0.01)
        h.policy.stop("VI_1")
        await asyncio.sleep(0.12)
        assert len(h.frames) == 2   # only the first burst
    run(scenario())


def test_a_lower_priority_advert_uses_its_own_burst_and_leaves_the_refresh_chain(tmp_path):
    async def scenario():
        h = Harness(masters(tmp_path, [("VI_1", 51)]))
        h.policy.became_master("VI_1")
        await asyncio.sleep(0.01)
        refresh = h.policy.pending["VI_1"]["refresh"]
        h.frames.clear()
        h.policy.heard_lower_priority("VI_1")
        await asyncio.sleep(0.01)
        assert len(h.frames) == 1                                # lower_prio_repeat
        assert h.policy.pending["VI_1"]["refresh"] is refresh   # not restarted
        await asyncio.sleep(0.03)
        assert len(h.frames) >= 2                                # after lower_prio_delay
        h.policy.close()
    run(scenario())


def test_pending_bursts_follow_the_name_across_a_reload_that_renumbers(tmp_path):
    async def scenario():
        h = Harness(masters(tmp_path, [("VI_1", 51), ("VI_2", 52)]))
        h.policy.became_master("VI_2")
        await asyncio.sleep(0.01)
        h.frames.clear()
        # A reload inserted an instance first: VI_2 is index 2 now, index 1 is VI_1.
        h.plan = masters(tmp_path, [("NEW", 50), ("VI_1", 51), ("VI_2", 52)])
        await asyncio.sleep(0.06)
        assert set(h.announced()) == {"192.0.2.52"}
        # A reload that shrinks: the pending work of a removed instance ends quietly.
        h.plan = masters(tmp_path, [("VI_1", 51)])
        h.frames.clear()
        await asyncio.sleep(0.1)
        assert h.frames == [] and "VI_2" not in h.policy.pending
        h.policy.close()
    run(scenario())


def test_keep_refreshing_starts_a_chain_only_where_none_runs(tmp_path):
    async def scenario():
        h = Harness(masters(tmp_path, [("VI_1", 51)]))
        h.policy.keep_refreshing("VI_1")
        chain = h.policy.pending["VI_1"]["refresh"]
        h.policy.keep_refreshing("VI_1")
        assert h.policy.pending["VI_1"]["refresh"] is chain
        await asyncio.sleep(0.05)
        assert len(h.frames) == 3   # one refresh, no master burst
        h.policy.close()
    run(scenario())


def test_announcer_checks_each_frame_when_due(tmp_path):
    async def scenario():
        plan = masters(tmp_path, [("A", 51)])
        sent = []
        announcer = Announcer(lambda: plan)
        announcer.packet_socket = FakeSocket(sent)
        announcer.icmp6_socket = FakeSocket(sent)
        loop = asyncio.get_running_loop()
        announcer.announce(loop, "A", 2, bytes(6), [(4, bytes([192, 0, 2, 1]))],
                           repeat=4, interval=0.01)
        await asyncio.sleep(0.015)
        plan.engine.stop(plan.index["A"], 1)            # no longer master
        await asyncio.sleep(0.05)
        assert 1 <= len(sent) < 4 and announcer.dropped == 4 - len(sent)
    run(scenario())


def test_announcer_sends_every_address_its_first_frame_before_any_its_second(tmp_path):
    async def scenario():
        plan = masters(tmp_path, [("A", 51), ("B", 52)])
        sent = []
        announcer = Announcer(lambda: plan)
        announcer.packet_socket = FakeSocket(sent)
        announcer.icmp6_socket = FakeSocket(sent)
        loop = asyncio.get_running_loop()
        a, b = bytes([192, 0, 2, 1]), bytes([192, 0, 2, 2])
        announcer.announce(loop, "A", 2, bytes(6), [(4, a)], repeat=3)
        announcer.announce(loop, "B", 2, bytes(6), [(4, b)], repeat=3)
        await asyncio.sleep(0.01)
        # The sender address of each ARP frame (bytes 28..32 of the Ethernet frame).
        assert [frame[28:32] for frame in sent] == [a, b, a, b, a, b]
        assert len(announcer.queue) == 0 and announcer.sent == 6
    run(scenario())


def test_a_leaders_followers_get_one_burst_one_delayed_burst_and_one_chain(tmp_path):
    from helpers.plans import instance_text, plan_of
    from hivrrp.daemon.reactor import Announce
    from hivrrp.kernel.announce_policy import FOLLOWERS

    text = FAST + instance_text("L", 1, ["192.0.2.1/24"], priority=255) + "".join(
        instance_text(f"F{k}", 2 + k, [f"192.0.2.{10 + k}/24"], extra="    follow L\n")
        for k in range(20))

    async def scenario():
        plan = plan_of(tmp_path, text)
        plan.engine.start_all(0)
        assert set(plan.states().values()) == {"MASTER"}
        h = Harness(plan)
        h.policy.handle(Announce("L", "followers"))
        vips = {f"192.0.2.{10 + k}" for k in range(20)}
        await wait_until(lambda: len(h.frames) == 40)            # master_repeat 2 each
        assert set(h.announced()) == vips
        # One key for the group's delayed burst and refresh chain, none per follower.
        assert list(h.policy.pending) == [(FOLLOWERS, "L")]
        await wait_until(lambda: len(h.frames) >= 40 + 60)      # the refresh: 3 each
        # A follower carried by a reload does not get a chain of its own beside it.
        h.policy.keep_refreshing("F3")
        assert "F3" not in h.policy.pending
        # The group leaves MASTER: everything of it is void at once.
        h.policy.stop("L", followers=True)
        assert h.policy.pending == {}
        h.frames.clear()
        await asyncio.sleep(0.1)
        assert h.frames == []
        # A follower's own refresh (follow_refresh): one round, garp_master_refresh_repeat.
        h.policy.handle(Announce("F5", "refresh"))
        await wait_until(lambda: len(h.frames) == 3)
        assert set(h.announced()) == {"192.0.2.15"}
        h.policy.close()
    run(scenario())


PACED = """
global_defs {
    vrrp_garp_master_delay 0
    vrrp_garp_master_repeat 2
    vrrp_garp_interval 0.01
}
"""


def test_a_later_burst_gets_its_first_frames_before_the_earlier_ones_repeats(tmp_path):
    async def scenario():
        plan = owner_plan(tmp_path, [("A", 51), ("B", 52)], prefix=PACED)
        plan.engine.start_all(0)
        h = Harness(plan)
        h.policy.became_master("A")
        await wait_until(lambda: len(h.frames) == 1)       # A's first; its second is paced
        h.policy.became_master("B")
        await wait_until(lambda: len(h.frames) == 4)
        # B's first frame does not wait behind A's second (a client of B's VIP
        # waits for the first one).
        assert h.announced() == ["192.0.2.51", "192.0.2.52", "192.0.2.51", "192.0.2.52"]
        h.policy.close()
    run(scenario())


def test_repeats_wait_while_a_vip_trip_is_in_flight_and_not_longer_than_hold_max(
        tmp_path, monkeypatch):
    from hivrrp.kernel import announce
    monkeypatch.setattr(announce, "HOLD_MAX", 0.1)
    text = "global_defs {\n    vrrp_garp_master_delay 0\n    vrrp_garp_master_repeat 3\n}\n"

    async def scenario():
        plan = owner_plan(tmp_path, [("A", 51), ("B", 52)], prefix=text)
        plan.engine.start_all(0)
        busy = [True]
        frames: list[bytes] = []
        by_index = {link.index: link for link in LINKS.values()}
        policy = AnnouncePolicy(asyncio.get_running_loop(), lambda: plan, lambda: by_index,
                                hold=lambda: busy[0])
        policy.announcer.packet_socket = policy.announcer.icmp6_socket = FakeSocket(frames)
        policy.became_master("A")
        await asyncio.sleep(0.03)
        assert len(frames) == 1                    # its first frame only, while busy
        busy[0] = False
        await wait_until(lambda: len(frames) == 3)
        # Held at most HOLD_MAX: a stream of trips does not starve the repeats.
        busy[0] = True
        policy.became_master("B")
        await asyncio.sleep(0.03)
        assert len(frames) == 4
        await wait_until(lambda: len(frames) == 6)
        policy.close()
    run(scenario())


def test_a_groups_bursts_after_a_reload_check_each_follower_by_name(tmp_path):
    from hivrrp._engine import FAULT_INTERFACE

    from helpers.plans import instance_text, plan_of
    from hivrrp.daemon.reactor import Announce

    group = instance_text("L", 1, ["192.0.2.1/24"], priority=255) + "".join(
        instance_text(f"F{k}", 2 + k, [f"192.0.2.{10 + k}/24"], extra="    follow L\n")
        for k in range(4))

    async def scenario():
        plan = plan_of(tmp_path, FAST + group)
        plan.engine.start_all(0)
        h = Harness(plan)
        h.policy.handle(Announce("L", "followers"))
        await wait_until(lambda: len(h.frames) == 8)
        # A reload puts an instance first (every index moves up one) and F2 is
        # in FAULT in the new plan: the group's delayed burst and refresh chain,
        # packed with the old plan's indexes, must ask about F2, not F1.
        new = plan_of(tmp_path, FAST + instance_text("NEW", 99, ["192.0.2.99/24"],
                                                     priority=255) + group)
        new.engine.start_all(0)
        new.engine.set_fault(new.index["F2"], FAULT_INTERFACE, True, 1)
        h.plan = new
        h.frames.clear()
        await wait_until(lambda: len(h.frames) >= 3 * 3 + 3 * 2)   # the refresh, the burst
        assert set(h.announced()) == {"192.0.2.10", "192.0.2.11", "192.0.2.13"}
        h.policy.close()
    run(scenario())


def test_a_groups_first_burst_hands_the_plans_packed_block_to_the_announcer(tmp_path):
    """The mass takeover's path: no Python per address between the leader's
    announcement and the C queue, the Block packed at build as it is."""
    from helpers.plans import instance_text, plan_of
    from hivrrp.daemon.reactor import Announce

    text = FAST + instance_text("L", 1, ["192.0.2.1/24"], priority=255) + "".join(
        instance_text(f"F{k}", 2 + k, [f"192.0.2.{10 + k}/24"], extra="    follow L\n")
        for k in range(5))

    async def scenario():
        plan = plan_of(tmp_path, text)
        plan.engine.start_all(0)
        h = Harness(plan)
        handed = []
        real = h.policy.announcer.announce_block
        h.policy.announcer.announce_block = lambda loop, what, **kw: (handed.append(what),
                                                                      real(loop, what, **kw))
        h.policy.handle(Announce("L", "followers"))
        assert handed == [plan.followers["L"].blocks[0]]
        assert handed[0] is plan.followers["L"].blocks[0] and len(handed[0]) == 5
        await wait_until(lambda: len(h.frames) == 10)
        h.policy.close()
    run(scenario())
