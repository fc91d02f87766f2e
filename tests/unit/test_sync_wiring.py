"""Sync groups in the daemon's wiring, from a race review: faults that clear
without an event, events superseded within one batch, reloads that add,
rename or dissolve groups, and storms of thousands of member events."""

import asyncio

from helpers.fakedaemon import reload, settle, started
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.daemon.driver import now_us
from hivrrp.kernel.netlink import Link
from hivrrp.tracking.syncgroups import Force, SyncGroups

MAC = bytes(6)
ETH1_DOWN = dict(LINKS, eth1=Link(3, "eth1", MAC, False))

TEXT = ("vrrp_sync_group G {\n    group {\n        VI_A\n        VI_B\n    }\n}\n"
        + instance_text("VI_A", 51, ["198.51.100.51/24"], interface="eth1", priority=255)
        + instance_text("VI_B", 52, ["192.0.2.52/24"], interface="eth0", priority=255))


def test_group_recovers_when_member_link_comes_back(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, TEXT, LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        assert d.plan.states() == {"VI_A": "MASTER", "VI_B": "MASTER"}
        d.netlink.links_now["eth1"] = Link(3, "eth1", MAC, False)
        d.links.on_netlink([("link", 3, "eth1", MAC, False)])
        await settle(d)
        assert d.plan.states() == {"VI_A": "FAULT", "VI_B": "FAULT"}
        d.netlink.links_now["eth1"] = Link(3, "eth1", MAC, True)
        d.links.on_netlink([("link", 3, "eth1", MAC, True)])
        await settle(d)
        flags = {n: d.plan.engine.fault_flags(d.plan.index[n]) for n in d.plan.names}
        assert d.plan.states() == {"VI_A": "MASTER", "VI_B": "MASTER"}, (d.plan.states(), flags, d.sync.states)
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_link_flap_in_one_netlink_batch_leaves_the_group_consistent(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, TEXT, LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        groups = []
        real = d.notifications.group
        d.notifications.group = lambda g, s: (groups.append((g, s)), real(g, s))
        assert d.plan.states() == {"VI_A": "MASTER", "VI_B": "MASTER"}
        # One netlink read carries both messages: down, then up again.
        d.links.on_netlink([("link", 3, "eth1", MAC, False), ("link", 3, "eth1", MAC, True)])
        await settle(d)
        flags = {n: d.plan.engine.fault_flags(d.plan.index[n]) for n in d.plan.names}
        # Either way, what the group says must be what its members are, and
        # nothing is left holding them down (the link is up).
        assert d.plan.states() == {"VI_A": "MASTER", "VI_B": "MASTER"}, (
            d.plan.states(), flags, d.sync.states, groups)
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_after_a_flap_a_reload_and_a_tracker_change_leave_the_group_up(tmp_path, monkeypatch):
    from helpers.fakedaemon import reload

    async def scenario():
        d = await started(tmp_path, TEXT, LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        d.links.on_netlink([("link", 3, "eth1", MAC, False), ("link", 3, "eth1", MAC, True)])
        await settle(d)
        await reload(d)                    # SIGHUP, same config
        await settle(d)
        if __import__("os").environ.get("TWICE"):
            await reload(d)
            await settle(d)
        assert d.plan.states() == {"VI_A": "MASTER", "VI_B": "MASTER"}, (
            d.plan.states(), d.sync.states)
    asyncio.run(asyncio.wait_for(scenario(), 10))


GROUP = "vrrp_sync_group G {\n    group {\n        VI_A\n        VI_B\n    }\n}\n"


def test_non_owner_group_survives_a_link_flap_read_in_one_batch(tmp_path, monkeypatch):
    text = (GROUP + instance_text("VI_A", 51, ["198.51.100.51/24"], interface="eth1")
            + instance_text("VI_B", 52, ["192.0.2.52/24"]))

    async def scenario():
        d = await started(tmp_path, text, LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        assert d.plan.states() == {"VI_A": "BACKUP", "VI_B": "BACKUP"}
        d.links.on_netlink([("link", 3, "eth1", MAC, False), ("link", 3, "eth1", MAC, True)])
        await settle(d)
        flags = {n: d.plan.engine.fault_flags(d.plan.index[n]) for n in d.plan.names}
        assert "FAULT" not in d.plan.states().values(), (d.plan.states(), flags, d.sync.states)
    asyncio.run(asyncio.wait_for(scenario(), 10))


# VI_A tracks eth1 (down at start), VI_B is an address owner.
TRACKED_AND_OWNER = (GROUP + instance_text("VI_A", 51, ["192.0.2.51/24"],
                                           extra="    track_interface {\n        eth1\n    }\n")
                     + instance_text("VI_B", 52, ["192.0.2.52/24"], priority=255))


def test_startup_with_a_faulty_member_and_an_owner_member(tmp_path, monkeypatch):
    text = TRACKED_AND_OWNER
    async def scenario():
        d = await started(tmp_path, text, ETH1_DOWN, ADDRESSES, monkeypatch)
        await settle(d)
        # The group must say what its members are: FAULT.
        assert d.plan.states() == {"VI_A": "FAULT", "VI_B": "FAULT"}
        assert d.sync.states == {"G": "FAULT"}, d.sync.states
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_startup_fault_then_the_tracked_link_comes_up(tmp_path, monkeypatch):
    text = TRACKED_AND_OWNER
    async def scenario():
        d = await started(tmp_path, text, ETH1_DOWN, ADDRESSES, monkeypatch)
        await settle(d)
        d.netlink.links_now["eth1"] = Link(3, "eth1", MAC, True)
        d.links.on_netlink([("link", 3, "eth1", MAC, True)])
        await settle(d)
        assert "FAULT" not in d.plan.states().values(), (d.plan.states(), d.sync.states)
    asyncio.run(asyncio.wait_for(scenario(), 10))


TRACK = "    track_interface {\n        eth1\n    }\n"


def conf(group, members, pb=255):
    return (f"vrrp_sync_group {group} {{\n    group {{\n"
            + "".join(f"        {m}\n" for m in members) + "    }\n}\n"
            + instance_text("VI_A", 51, ["192.0.2.51/24"], priority=255, extra=TRACK)
            + instance_text("VI_B", 52, ["192.0.2.52/24"], priority=pb))


def test_a_member_added_to_a_faulty_group_goes_to_fault(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, conf("G", ["VI_A"]), ETH1_DOWN, ADDRESSES, monkeypatch)
        await settle(d)
        assert d.plan.states() == {"VI_A": "FAULT", "VI_B": "MASTER"}
        assert d.sync.states == {"G": "FAULT"}
        await reload(d, conf("G", ["VI_A", "VI_B"]))
        await settle(d)
        assert d.plan.states() == {"VI_A": "FAULT", "VI_B": "FAULT"}, (d.plan.states(), d.sync.states)
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_renamed_group_recovers_when_its_own_link_comes_back(tmp_path, monkeypatch):
    # As test_group_recovers_when_member_link_comes_back, across a reload that renames the group.
    text = lambda g: (f"vrrp_sync_group {g} {{\n    group {{\n        VI_A\n        VI_B\n    }}\n}}\n"
                      + instance_text("VI_A", 51, ["198.51.100.51/24"], interface="eth1", priority=255)
                      + instance_text("VI_B", 52, ["192.0.2.52/24"], priority=255))

    async def scenario():
        d = await started(tmp_path, text("G"), LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        d.netlink.links_now["eth1"] = Link(3, "eth1", MAC, False)
        d.links.on_netlink([("link", 3, "eth1", MAC, False)])
        await settle(d)
        assert d.plan.states() == {"VI_A": "FAULT", "VI_B": "FAULT"}
        d.netlink.links_now["eth1"] = Link(3, "eth1", MAC, True)
        d.links.on_netlink([("link", 3, "eth1", MAC, True)])
        await reload(d, text("H"))
        await settle(d)
        assert "FAULT" not in d.plan.states().values(), (d.plan.states(), d.sync.states)
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_the_faulty_member_leaving_the_group_releases_the_others(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, conf("G", ["VI_A", "VI_B"], 100), ETH1_DOWN, ADDRESSES, monkeypatch)
        await settle(d)
        assert d.plan.states() == {"VI_A": "FAULT", "VI_B": "FAULT"}
        await reload(d, conf("G", ["VI_B"], 100))
        await settle(d)
        assert d.plan.states() == {"VI_A": "FAULT", "VI_B": "BACKUP"}, (d.plan.states(), d.sync.states)
        await reload(d, conf("H", ["VI_A"], 100))      # VI_B out of every group, VI_A in a new one
        await settle(d)
        assert d.plan.states() == {"VI_A": "FAULT", "VI_B": "BACKUP"}, (d.plan.states(), d.sync.states)
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_tracker_recovery_releases_the_group(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, conf("G", ["VI_A", "VI_B"], 100), ETH1_DOWN, ADDRESSES, monkeypatch)
        await settle(d)
        d.links.on_netlink([("link", 3, "eth1", MAC, True)])
        await settle(d)
        assert "FAULT" not in d.plan.states().values(), (d.plan.states(), d.sync.states)
    asyncio.run(asyncio.wait_for(scenario(), 10))


class View:
    def __init__(self, state, wants): self.s, self.w = state, wants
    def state(self, n): return self.s
    def fault_flags(self, n): return 0
    def wants_master(self, n): return self.w


def batch(n, old, new, reason, state, wants, group_state):
    names = [f"VI_{k}" for k in range(n)]
    sync, view = SyncGroups({"G": names}, {"G": group_state}), View(state, wants)
    out = []
    for m in names:                       # one batch of member events, judged in turn
        out += sync.event(m, old, new, reason, view)
    return sum(isinstance(a, Force) for a in out)


def test_link_down_under_a_4000_member_group_is_linear():
    forces = batch(4000, "MASTER", "FAULT", "fault", "FAULT", False, "MASTER")
    assert forces <= 2 * 4000, forces


def test_peer_death_under_a_4000_member_group_is_linear():
    forces = batch(4000, "BACKUP", "BACKUP", "want_master", "BACKUP", True, "BACKUP")
    assert forces <= 2 * 4000, forces


# A second review: members joining a group that is master already.

def group_of_names(names):
    return ("vrrp_sync_group G {\n    group {\n"
            + "".join(f"        {n}\n" for n in names) + "    }\n}\n")


INSTANCES = (instance_text("VI_A", 51, ["198.51.100.51/24"], interface="eth1")
             + instance_text("VI_B", 52, ["192.0.2.52/24"])
             + instance_text("VI_C", 53, ["192.0.2.53/24"]))


def advance(d, seconds):
    """Fire every timer due within `seconds` (master-down: want_master)."""
    d._t = getattr(d, "_t", 0) + int(seconds * 1e6)
    d.plan.engine.expire(now_us(d.loop) + d._t)
    d.driver.after_engine_work()


def test_unit_member_ready_while_another_is_master():
    # keepalived vrrp_sync_can_goto_master: a MASTER member counts as wanting
    # MASTER (and a MASTER group lets a member go at once).
    class View:
        def state(self, n): return {"A": "MASTER", "B": "BACKUP"}[n]
        def fault_flags(self, n): return 0
        def wants_master(self, n): return n == "B"
    sync = SyncGroups({"G": ["A", "B"]}, {"G": "MASTER"})
    out = sync.event("B", "BACKUP", "BACKUP", "want_master", View())
    assert Force("B", "MASTER") in out, out


def test_member_added_to_a_master_group_by_reload_becomes_master(tmp_path, monkeypatch):
    async def scenario():
        two = INSTANCES.split("vrrp_instance VI_C")[0]
        d = await started(tmp_path, group_of_names(["VI_A", "VI_B"]) + two, LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        for _ in range(3):
            advance(d, 5)
        assert d.plan.states() == {"VI_A": "MASTER", "VI_B": "MASTER"}
        assert d.sync.states == {"G": "MASTER"}
        await reload(d, group_of_names(["VI_A", "VI_B", "VI_C"]) + INSTANCES)
        await settle(d)
        for _ in range(3):
            advance(d, 5)
        wants = d.plan.engine.wants_master(d.plan.index["VI_C"])
        assert d.plan.states() == {"VI_A": "MASTER", "VI_B": "MASTER", "VI_C": "MASTER"}, (
            d.plan.states(), d.sync.states, "VI_C wants master:", wants, d.sync.ready)
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_master_member_flapping_within_one_batch_rejoins_its_group(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_of_names(["VI_A", "VI_B"]) + INSTANCES, LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        for _ in range(3):
            advance(d, 5)
        assert d.plan.states()["VI_A"] == d.plan.states()["VI_B"] == "MASTER"
        # One netlink read: eth1 down and up again. VI_A: MASTER->FAULT->BACKUP.
        d.links.on_netlink([("link", 3, "eth1", MAC, False), ("link", 3, "eth1", MAC, True)])
        await settle(d)
        for _ in range(5):
            advance(d, 5)
        states = d.plan.states()
        assert states["VI_A"] == states["VI_B"], (states, d.sync.states, d.sync.ready)
        assert states["VI_A"] == "MASTER", (states, d.sync.states, d.sync.ready)
    asyncio.run(asyncio.wait_for(scenario(), 10))
