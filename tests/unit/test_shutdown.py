"""Shutdown never raises and tries every step (fix for exceptions escaping it)."""

import asyncio
import threading
from types import SimpleNamespace

from hivrrp.daemon.wiring import Daemon
from hivrrp.kernel import netlink
from hivrrp.kernel.netlink import Netlink


def test_netlink_close_with_a_stuck_worker_logs_instead_of_raising(monkeypatch, caplog):
    monkeypatch.setattr(netlink, "CLOSE_TIMEOUT", 0.05)
    nl = Netlink()
    release = threading.Event()
    nl.executor.submit(release.wait, 5)   # a trip to the kernel that does not come back
    nl.close()                            # must not raise TimeoutError
    release.set()
    assert "closing netlink" in caplog.text


class Broken:
    """Any call raises: stands for a part that fails at shutdown."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise RuntimeError(f"{name} failed")
        return fail


class Recorder:
    def __init__(self, calls, name):
        self.calls, self.name = calls, name

    def __getattr__(self, attribute):
        def record(*args, **kwargs):
            self.calls.append(f"{self.name}.{attribute}")
        return record


class AsyncRecorder(Recorder):
    def __getattr__(self, attribute):
        async def record(*args, **kwargs):
            self.calls.append(f"{self.name}.{attribute}")
        return record


def test_every_shutdown_step_runs_even_when_earlier_ones_fail(caplog):
    calls: list[str] = []

    async def scenario():
        daemon = Daemon.__new__(Daemon)
        daemon.loop = asyncio.get_running_loop()
        from hivrrp.daemon.lifecycle import Lifecycle
        daemon.lifecycle = Lifecycle(None, None, None)
        daemon.links = SimpleNamespace(monitor=Broken())   # its stop() raises
        daemon.driver = Recorder(calls, "driver")
        daemon.plan = None                            # no engine: stop_all fails too
        daemon.vips = Recorder(calls, "vips")
        daemon.garp = Broken()                        # its close() raises
        daemon.netlink = AsyncRecorder(calls, "netlink")   # stop_firewall is awaited
        daemon.netlink.firewall = None                # no no_accept table to wait for
        daemon.trackers = Recorder(calls, "trackers")
        daemon.notifications = Recorder(calls, "notifications")
        daemon.systemd = Recorder(calls, "systemd")
        daemon.control = AsyncRecorder(calls, "control")
        daemon.vmac = AsyncRecorder(calls, "vmac")
        daemon.metrics = None
        await daemon.shutdown()

    asyncio.run(asyncio.wait_for(scenario(), 5))
    assert "shutdown step failed" in caplog.text
    # Releasing failed at its first step and the announcer's close raised:
    # the sockets and netlink were closed all the same.
    assert calls == ["control.close", "netlink.stop_firewall", "driver.close", "trackers.close",
                     "notifications.close", "vmac.close", "netlink.close", "systemd.close"], calls
    assert caplog.text.count("shutdown step failed") == 2
