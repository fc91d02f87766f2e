"""Trackers, sync groups and notices in the real Daemon over stand-ins (no root):
outcomes reach the instance by name, across reloads that renumber it."""

import asyncio

from helpers.fakedaemon import reload, settle, started
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.daemon import reactor
from hivrrp.kernel.netlink import Link

MAC = bytes(6)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def file_tracker(path) -> str:
    return f"track_file health {{\n    file {path}\n    weight -1\n}}\n"


def tracking_file(name: str, vrid: int, priority: int = 100) -> str:
    return instance_text(name, vrid, [f"192.0.2.{vrid}/24"], priority=priority,
                         extra="    track_file {\n        health\n    }\n")


async def until(predicate, timeout=3.0):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


def test_a_file_change_reaches_the_instance_by_name_after_a_reload_renumbered_it(
        tmp_path, monkeypatch):
    health = tmp_path / "health"
    health.write_text("0\n")

    async def scenario():
        d = await started(tmp_path, file_tracker(health) + tracking_file("VI_1", 51),
                          LINKS, ADDRESSES, monkeypatch)
        assert d.plan.engine.effective_priority(d.plan.index["VI_1"]) == 100
        # VI_0 now comes first: VI_1's engine index moves from 0 to 1.
        await reload(d, file_tracker(health) + instance_text("VI_0", 50, ["192.0.2.50/24"])
                     + tracking_file("VI_1", 51))
        assert d.plan.index == {"VI_0": 0, "VI_1": 1}
        health.write_text("30\n")
        engine = d.plan.engine
        assert await until(lambda: engine.effective_priority(1) == 70)
        assert engine.effective_priority(0) == 100
        assert engine.priority_delta(1) == -30
    run(scenario())


def test_a_reload_that_drops_the_tracker_gives_the_priority_back(tmp_path, monkeypatch):
    health = tmp_path / "health"
    health.write_text("40\n")

    async def scenario():
        d = await started(tmp_path, file_tracker(health) + tracking_file("VI_1", 51),
                          LINKS, ADDRESSES, monkeypatch)
        assert d.plan.engine.effective_priority(0) == 60
        await reload(d, instance_text("VI_1", 51, ["192.0.2.51/24"]))
        # The engine carried the old delta over; the new config has no tracker.
        assert d.plan.engine.effective_priority(0) == 100
    run(scenario())


def test_an_unweighted_script_holds_its_instance_until_its_first_result(tmp_path, monkeypatch):
    gate = tmp_path / "gate"
    script = tmp_path / "check.sh"
    # Waits for the test to open the gate, then fails: the first result decides.
    script.write_text(f"#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.02; done\nexit 1\n")
    script.chmod(0o755)
    text = (f'vrrp_script chk {{\n    script "{script}"\n    interval 5\n}}\n'
            + instance_text("VI_1", 51, ["192.0.2.51/24"],
                            extra="    track_script {\n        chk\n    }\n")
            + instance_text("VI_2", 52, ["192.0.2.52/24"]))

    async def scenario():
        d = await started(tmp_path, text, LINKS, ADDRESSES, monkeypatch)
        await asyncio.sleep(0.2)
        assert d.plan.states() == {"VI_1": "INIT", "VI_2": "BACKUP"}
        gate.touch()
        assert await until(lambda: d.plan.state("VI_1") == "FAULT")
        await d.shutdown()
    run(scenario())


def test_a_tracked_interface_going_down_faults_and_coming_back_recovers(tmp_path, monkeypatch):
    links = dict(LINKS, uplink=Link(9, "uplink", MAC, True))
    text = instance_text("VI_1", 51, ["192.0.2.51/24"], priority=255,
                         extra="    track_interface {\n        uplink\n    }\n")

    async def scenario():
        d = await started(tmp_path, text, links, ADDRESSES, monkeypatch)
        assert d.plan.states() == {"VI_1": "MASTER"}
        d.links.on_netlink([("link", 9, "uplink", MAC, False)])
        assert d.plan.states() == {"VI_1": "FAULT"}
        d.links.on_netlink([("link", 9, "uplink", MAC, True)])
        assert d.plan.states() == {"VI_1": "MASTER"}   # an owner comes back as master
        await settle(d)
    run(scenario())


def test_a_sync_group_member_fault_takes_the_other_member_with_it(tmp_path, monkeypatch):
    links = dict(LINKS, uplink=Link(9, "uplink", MAC, True))
    text = ("vrrp_sync_group G {\n    group {\n        VI_1\n        VI_2\n    }\n}\n"
            + instance_text("VI_1", 51, ["192.0.2.51/24"],
                            extra="    track_interface {\n        uplink\n    }\n")
            + instance_text("VI_2", 52, ["192.0.2.52/24"]))

    async def scenario():
        d = await started(tmp_path, text, links, ADDRESSES, monkeypatch)
        assert d.plan.states() == {"VI_1": "BACKUP", "VI_2": "BACKUP"}
        d.links.on_netlink([("link", 9, "uplink", MAC, False)])
        assert d.plan.states() == {"VI_1": "FAULT", "VI_2": "FAULT"}
        # A reload in the middle keeps the group down: the bit is carried.
        await reload(d)
        assert d.plan.states() == {"VI_1": "FAULT", "VI_2": "FAULT"}
        d.links.on_netlink([("link", 9, "uplink", MAC, True)])
        assert d.plan.states() == {"VI_1": "BACKUP", "VI_2": "BACKUP"}
        assert d.sync.states["G"] == "BACKUP"
    run(scenario())


def test_notices_of_one_engine_event():
    assert reactor.notices("VI_1", "MASTER", "FAULT", "fault", 244, False) == [
        reactor.Notice("instance", "VI_1", "FAULT", 244)]
    assert reactor.notices("VI_1", "BACKUP", "INIT", "stop", 100, False) == [
        reactor.Notice("instance", "VI_1", "STOP", 100)]
    assert reactor.notices("VI_1", "MASTER", "MASTER", "rx_lower_priority", 200, False) == [
        reactor.Notice("rx_lower", "VI_1", "MASTER", 200)]
    assert reactor.notices("VI_1", "BACKUP", "BACKUP", "priority", 90, False) == []
    assert reactor.notices("VI_1", "BACKUP", "BACKUP", "priority", 90, True) == [
        reactor.Notice("priority", "VI_1", "BACKUP", 90)]
    assert reactor.notices("VI_1", "FAULT", "FAULT", "priority", 90, True) == []
    assert reactor.notices("VI_1", "BACKUP", "BACKUP", "want_master", 90, True) == []


def test_a_script_tracked_by_many_instances_runs_once_per_interval(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    script = tmp_path / "check.sh"
    script.write_text(f"#!/bin/sh\necho run >> {runs}\n")
    script.chmod(0o755)
    track = "    track_script {\n        chk weight -5\n    }\n"
    text = (f'vrrp_script chk {{\n    script "{script}"\n    interval 0.5\n}}\n'
            + "".join(instance_text(f"VI_{k}", k, [f"192.0.2.{k}/24"], extra=track)
                      for k in range(1, 201)))

    async def scenario():
        d = await started(tmp_path, text, LINKS, ADDRESSES, monkeypatch)
        await asyncio.sleep(1.2)    # runs at 0, 0.5 and 1.0 s
        count = len(runs.read_text().split())
        await d.shutdown()
        return count

    assert 2 <= run(scenario()) <= 3   # not 200 per interval


def test_dont_track_primary_keeps_an_instance_up_when_its_link_goes_down(tmp_path, monkeypatch):
    # keepalived's dont_track_primary: its own interface's link state does not
    # fault it (a cross-connect set-up); an instance without it faults.
    text = (instance_text("VI_1", 51, ["198.51.100.51/24"], interface="eth1", priority=255,
                          extra="    dont_track_primary\n")
            + instance_text("VI_2", 52, ["198.51.100.52/24"], interface="eth1", priority=255))

    async def scenario():
        d = await started(tmp_path, text, LINKS, ADDRESSES, monkeypatch)
        d.links.on_netlink([("link", 3, "eth1", MAC, False)])
        assert d.plan.states() == {"VI_1": "MASTER", "VI_2": "FAULT"}
        await reload(d)        # and a plan built while the link is down agrees
        assert d.plan.states() == {"VI_1": "MASTER", "VI_2": "FAULT"}
        d.links.on_netlink([("link", 3, "eth1", MAC, True)])
        assert d.plan.states() == {"VI_1": "MASTER", "VI_2": "MASTER"}
    run(scenario())
