"""Reloads, shutdown and notify in the daemon's wiring, from a race review:
reports while trackers reconfigure, FAULT not notified again by a reload,
nothing started after release, script_user changed by a reload."""

import asyncio
import pwd

from helpers.conf import load_text
from helpers.fakedaemon import reload, settle, started
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.kernel.netlink import Link
from hivrrp.notify import notifier as notify
from hivrrp.notify import scriptrun
from hivrrp.notify.events import Notifications, security_of


def conf(path, vi1_tracks):
    track = "    track_file {\n        F weight 0\n    }\n"
    return (f"track_file F {{\n    file {path}\n}}\n"
            + instance_text("VI_1", 51, ["192.0.2.51/24"], priority=255,
                            extra=track if vi1_tracks else "")
            + instance_text("VI_2", 52, ["192.0.2.52/24"], priority=255, extra=track))


def test_untracking_instance_does_not_flap_on_reload(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("0\n")
    b.write_text("1\n")

    async def scenario():
        d = await started(tmp_path, conf(a, True), LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        assert d.plan.states() == {"VI_1": "MASTER", "VI_2": "MASTER"}
        seen = []
        real = d.notifications.event
        d.notifications.event = lambda name, old, new, *rest: (seen.append((name, old, new)),
                                                               real(name, old, new, *rest))
        # VI_1 stops tracking F; F now points at a file reading 1 (VI_2 faults).
        await reload(d, conf(b, False))
        assert d.plan.states() == {"VI_1": "MASTER", "VI_2": "FAULT"}
        assert [e for e in seen if e[0] == "VI_1"] == [], seen
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_process_spec_change_does_not_flap_an_instance_that_stopped_tracking(tmp_path, monkeypatch):
    import functools

    import hivrrp.tracking.hub as hub
    from hivrrp.tracking.processes import ProcessTrackers, ProcInfo

    class FakeProc:
        table = {100: ProcInfo(1, 1, b"worker", None)}
        def read_process(self, pid, limit): return self.table.get(pid)
        def read_processes(self, limit): return dict(self.table)

    monkeypatch.setattr(hub, "ProcessTrackers", functools.partial(
        ProcessTrackers, connector=False, proc=FakeProc(), scan_interval=3600))

    def pconf(quorum, vi1_tracks):
        track = "    track_process {\n        P weight 0\n    }\n"
        return (f"vrrp_track_process P {{\n    process worker\n    quorum {quorum}\n}}\n"
                + instance_text("VI_1", 51, ["192.0.2.51/24"], priority=255,
                                extra=track if vi1_tracks else "")
                + instance_text("VI_2", 52, ["192.0.2.52/24"], priority=255, extra=track))

    async def scenario():
        d = await started(tmp_path, pconf(1, True), LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        assert d.plan.states() == {"VI_1": "MASTER", "VI_2": "MASTER"}
        seen = []
        real = d.notifications.event
        d.notifications.event = lambda name, old, new, *rest: (seen.append((name, old, new)),
                                                               real(name, old, new, *rest))
        await reload(d, pconf(2, False))         # P now needs 2: down; VI_1 no longer tracks it
        assert d.plan.states() == {"VI_1": "MASTER", "VI_2": "FAULT"}
        assert [e for e in seen if e[0] == "VI_1"] == [], seen
        await d.trackers.close()
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_a_stale_report_does_not_start_an_instance_the_new_config_holds(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("1\n")
    b.write_text("0\n")

    def hconf(path, with_script):
        tracks = "    track_file {\n        F weight 0\n    }\n"
        head = f"track_file F {{\n    file {path}\n}}\n"
        if with_script:
            head += "vrrp_script S {\n    script \"/bin/sleep 30\"\n    interval 60\n}\n"
            tracks += "    track_script {\n        S weight 0\n    }\n"
        return head + instance_text("VI_1", 51, ["192.0.2.51/24"], priority=255, extra=tracks)

    async def scenario():
        d = await started(tmp_path, hconf(a, False), LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        assert d.plan.states() == {"VI_1": "FAULT"}
        await reload(d, hconf(b, True))     # F fine now, but S has no result yet
        assert d.trackers.policy.outcome("VI_1").held
        try:
            assert d.plan.states() == {"VI_1": "INIT"}, d.plan.states()
        finally:
            await d.trackers.close()
    asyncio.run(asyncio.wait_for(scenario(), 15))


MAC = bytes(6)
ETH1_DOWN = dict(LINKS, eth1=Link(3, "eth1", MAC, False))


def test_reload_does_not_renotify_fault(tmp_path, monkeypatch):
    text = instance_text("VI_1", 51, ["198.51.100.51/24"], interface="eth1", priority=255)

    async def scenario():
        d = await started(tmp_path, text, ETH1_DOWN, ADDRESSES, monkeypatch)
        await settle(d)
        assert d.plan.states() == {"VI_1": "FAULT"}
        seen = []
        real = d.notifications.notifier.instance
        d.notifications.notifier.instance = lambda *a, **k: (seen.append(a[:2]), real(*a, **k))
        await reload(d)
        assert seen == [], seen
    asyncio.run(asyncio.wait_for(scenario(), 10))


HOLD = "vrrp_script S {\n    script \"/bin/sleep 30\"\n    interval 60\n}\n"
TRACK = "    track_script {\n        S weight 0\n    }\n"


def test_report_after_release_starts_nothing_and_stop_is_notified_once(tmp_path, monkeypatch):
    text = (HOLD + instance_text("VI_1", 51, ["192.0.2.51/24"], priority=255, extra=TRACK)
            + instance_text("VI_2", 52, ["192.0.2.52/24"], priority=255))

    async def scenario():
        d = await started(tmp_path, text, LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        assert d.plan.states() == {"VI_1": "INIT", "VI_2": "MASTER"}
        seen = []
        real = d.notifications.notifier.instance
        d.notifications.notifier.instance = lambda *a, **k: (seen.append(a[:2]), real(*a, **k))
        sent = []
        d.driver.send = lambda engine: (sent.append(engine.tx_count), engine.clear_tx())
        await d._release()
        before = len([s for s in sent if s])
        d.trackers.report("script", "S", True)      # the held instance's first result
        assert d.plan.states() == {"VI_1": "INIT", "VI_2": "INIT"}
        assert len([s for s in sent if s]) == before
        assert seen == [("VI_2", "STOP")], seen
        await d.trackers.close()
        await d.notifications.close()
    asyncio.run(asyncio.wait_for(scenario(), 30))


def insecure_script(directory) -> str:
    """A script anyone may write to: unsafe to run as root."""
    path = directory / "x.sh"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o777)
    return str(path)


def user_conf(user, cmd):
    return (f"global_defs {{\n    enable_script_security\n    script_user {user}\n}}\n"
            + instance_text("VI_1", 51, ["192.0.2.51/24"],
                            extra=f"    notify_master {cmd}\n"))


def test_notify_runs_as_the_reloaded_script_user(tmp_path, monkeypatch):
    ran = []

    async def fake_run(argv, timeout, *, identity=None, env=None, started=None):
        ran.append((argv[0], identity.uid if identity else None))
        return scriptrun.Outcome(ok=True, returncode=0)

    monkeypatch.setattr(notify.scriptrun, "run", fake_run)
    cmd = insecure_script(tmp_path)

    async def scenario():
        first = load_text(tmp_path, user_conf("root", cmd))
        second = load_text(tmp_path, user_conf("nobody", cmd))
        assert first.ok and second.ok, (first.errors, second.errors)
        n = Notifications(asyncio.get_running_loop(), first.config, security_of(first.config))
        n.configure(second.config, security_of(second.config))  # what Daemon.apply_config does
        n.event("VI_1", "BACKUP", "MASTER", "master_down", 100)
        await n.notifier.close(1)
        # Allowed because it runs as nobody now; it must then run as nobody.
        assert ran == [(cmd, pwd.getpwnam("nobody").pw_uid)], ran
    asyncio.run(scenario())


# A reload must not notify FAULT again, whatever else it changes.

TRACK_ETH1 = "    track_interface {\n        eth1\n    }\n"


def fault_conf(priority):
    return instance_text("VI_A", 51, ["192.0.2.51/24"], priority=priority, extra=TRACK_ETH1)


def reload_in_fault(tmp_path, monkeypatch, before, after):
    async def scenario():
        d = await started(tmp_path, before, ETH1_DOWN, ADDRESSES, monkeypatch)
        await settle(d)
        assert d.plan.states() == {"VI_A": "FAULT"}
        told = []
        real = d.notifications.notifier.instance
        d.notifications.notifier.instance = lambda n, s, *a, **k: (told.append((n, s)), real(n, s, *a, **k))
        await reload(d, after)
        await settle(d)
        assert d.plan.states() == {"VI_A": "FAULT"}
        assert told == [], told
    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_same_config_reload_does_not_renotify_fault(tmp_path, monkeypatch):
    reload_in_fault(tmp_path, monkeypatch, fault_conf(100), fault_conf(100))


def test_priority_change_reload_does_not_renotify_fault(tmp_path, monkeypatch):
    reload_in_fault(tmp_path, monkeypatch, fault_conf(100), fault_conf(150))


def weighted(weight):
    extra = f"    track_interface {{\n        eth1\n        eth0 weight {weight}\n    }}\n"
    return instance_text("VI_A", 51, ["192.0.2.51/24"], extra=extra)


def test_tracker_weight_change_reload_does_not_renotify_fault(tmp_path, monkeypatch):
    reload_in_fault(tmp_path, monkeypatch, weighted(10), weighted(20))


def test_process_trackers_read_proc_off_the_loop_at_start_and_reload(tmp_path, monkeypatch):
    """The full /proc scan for new process trackers (~25 us a process) runs on
    a worker thread; events that came meanwhile still win over the table."""
    import functools
    import threading

    import hivrrp.tracking.hub as hub
    from hivrrp.tracking.processes import PROC_EVENT_EXIT, ProcessTrackers, ProcInfo

    scans: list[str] = []

    class FakeProc:
        table = {100: ProcInfo(1, 1, b"worker", None), 101: ProcInfo(1, 1, b"worker", None)}

        def read_process(self, pid, limit):
            return self.table.get(pid)

        def read_processes(self, limit):
            scans.append(threading.current_thread().name)
            return dict(self.table)

    fake = FakeProc()
    monkeypatch.setattr(hub, "ProcessTrackers", functools.partial(
        ProcessTrackers, connector=False, proc=fake, scan_interval=3600))

    def pconf(name, quorum):
        track = f"    track_process {{\n        {name} weight 0\n    }}\n"
        return (f"vrrp_track_process {name} {{\n    process worker\n    quorum {quorum}\n}}\n"
                + instance_text("VI_1", 51, ["192.0.2.51/24"], priority=255, extra=track))

    async def scenario():
        loop_thread = threading.current_thread().name
        d = await started(tmp_path, pconf("P", 2), LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        assert d.plan.states() == {"VI_1": "MASTER"}
        # A new tracker Q: its table is read ahead; 101 exits while it is read.
        processes = d.trackers.processes
        real_ahead = processes.read_ahead

        async def ahead_with_an_exit(trackers):
            ahead = await real_ahead(trackers)
            del fake.table[101]
            processes.mode = "connector"           # as if the connector told it
            processes._on_event((PROC_EVENT_EXIT, 101))
            processes.mode = "scan"
            return ahead
        processes.read_ahead = ahead_with_an_exit
        await reload(d, pconf("Q", 2))
        assert d.trackers.processes.counts() == {"Q": 1}
        assert d.plan.states() == {"VI_1": "FAULT"}
        await d.trackers.close()
        return loop_thread

    loop_thread = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert len(scans) == 2 and loop_thread not in scans, scans
