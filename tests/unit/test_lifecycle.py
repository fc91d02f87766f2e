"""Reload, rebuild and shutdown ordering (lifecycle.py), on a plain asyncio loop."""

import asyncio

from hivrrp.lifecycle import Lifecycle

RUNNING, NEW = object(), object()


class Recorder:
    """Stands in for the daemon: a config reader and an apply that can be held."""

    def __init__(self, read_result=NEW) -> None:
        self.read_result = read_result
        self.applied: list = []
        self.finished: list = []
        self.reads = 0
        self.gate = asyncio.Event()
        self.lifecycle = Lifecycle(self.read, self.apply, lambda: RUNNING)
        self.lifecycle.start()

    async def read(self):
        self.reads += 1
        await asyncio.sleep(0)
        return self.read_result

    async def apply(self, config):
        self.applied.append(config)
        await self.gate.wait()        # the netlink dump / the build on its thread
        self.lifecycle.check()
        self.finished.append(config)  # the swap: must never happen once stopping


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 5))


def test_sigterm_during_a_reload_abandons_it_and_nothing_restarts():
    async def scenario():
        r = Recorder()
        r.lifecycle.request_reload()
        await asyncio.sleep(0.01)
        assert r.applied == [NEW]
        stop = asyncio.ensure_future(r.lifecycle.stop())
        await asyncio.sleep(0)
        r.gate.set()                  # the awaited step returns after the stop
        await stop
        assert r.finished == []
        r.lifecycle.request_reload()  # a SIGHUP after SIGTERM
        r.lifecycle.request_rebuild("late interface")
        await asyncio.sleep(0.01)
        assert r.applied == [NEW] and r.lifecycle.task is None
    run(scenario())


def test_requests_during_a_run_fold_into_one_more_run():
    async def scenario():
        r = Recorder()
        r.lifecycle.request_reload()
        await asyncio.sleep(0.01)
        for _ in range(5):
            r.lifecycle.request_reload()
            r.lifecycle.request_rebuild("x")
        r.gate.set()
        while r.lifecycle.task is not None:
            await asyncio.sleep(0.01)
        # The second reload also serves the rebuilds: it builds on current links.
        assert r.finished == [NEW, NEW] and r.reads == 2
    run(scenario())


def test_a_rebuild_waiting_behind_an_invalid_reload_still_applies_the_running_config():
    async def scenario():
        r = Recorder(read_result=None)    # the file became invalid
        r.gate.set()
        r.lifecycle.request_rebuild("interface eth0 appeared")
        r.lifecycle.request_reload()
        while r.lifecycle.task is not None:
            await asyncio.sleep(0.01)
        r.lifecycle.request_reload()
        r.lifecycle.request_rebuild("interface eth1 appeared")
        while r.lifecycle.task is not None:
            await asyncio.sleep(0.01)
        assert r.finished == [RUNNING, RUNNING]
        assert r.lifecycle.reloads["rejected"] == 2
    run(scenario())


def test_a_failing_apply_is_logged_and_later_requests_still_run(caplog):
    async def scenario():
        calls = []

        async def apply(config):
            calls.append(config)
            if len(calls) == 1:
                raise RuntimeError("boom")

        async def read():
            return NEW

        lifecycle = Lifecycle(read, apply, lambda: RUNNING)
        lifecycle.start()
        lifecycle.request_reload()
        while lifecycle.task is not None:
            await asyncio.sleep(0.01)
        lifecycle.request_reload()
        while lifecycle.task is not None:
            await asyncio.sleep(0.01)
        assert calls == [NEW, NEW] and lifecycle.reloads == {"ok": 1, "rejected": 0, "failed": 1}
    run(scenario())
    assert "reload failed: the running configuration stays" in caplog.text
    assert "RuntimeError: boom" in caplog.text


def test_a_sighup_during_start_up_waits_for_the_daemon_to_run():
    async def scenario():
        r = Recorder()
        r.lifecycle.ready = False          # as constructed, before Daemon.start() ends
        r.gate.set()
        r.lifecycle.request_reload()
        await asyncio.sleep(0.01)
        assert r.applied == [] and r.lifecycle.task is None
        r.lifecycle.start()
        while r.lifecycle.task is not None:
            await asyncio.sleep(0.01)
        assert r.finished == [NEW]
    run(scenario())


def test_a_rebuild_survives_an_apply_that_failed():
    async def scenario():
        calls = []

        async def apply(config):
            calls.append(config)
            if len(calls) == 1:
                raise OSError("netlink dump failed")

        lifecycle = Lifecycle(None, apply, lambda: RUNNING)
        lifecycle.start()
        lifecycle.request_rebuild("interface eth2 appeared")
        while lifecycle.task is not None:
            await asyncio.sleep(0.01)
        assert calls == [RUNNING] and lifecycle.want_rebuild   # still owed
        lifecycle.request_rebuild("the next news")
        while lifecycle.task is not None:
            await asyncio.sleep(0.01)
        assert calls == [RUNNING, RUNNING] and not lifecycle.want_rebuild
    run(scenario())


def test_the_steady_state_probe_ends_with_the_daemon():
    async def scenario():
        r = Recorder()
        r.gate.set()
        r.lifecycle.request_reload()
        while r.lifecycle.task is not None:
            await asyncio.sleep(0.01)
        assert r.lifecycle.baseline is not None      # measuring as long again after it
        await r.lifecycle.stop()
        assert r.lifecycle.baseline is None
    run(scenario())


def test_a_request_that_came_during_a_failed_apply_still_runs():
    async def scenario():
        calls, gate = [], asyncio.Event()

        async def apply(config):
            calls.append(config)
            if len(calls) == 1:
                await gate.wait()
                raise OSError("netlink dump failed")

        async def read():
            return NEW

        lifecycle = Lifecycle(read, apply, lambda: RUNNING)
        lifecycle.start()
        lifecycle.request_rebuild("interface eth2 appeared")
        await asyncio.sleep(0.01)
        lifecycle.request_reload()          # a SIGHUP while the rebuild is failing
        gate.set()
        while lifecycle.task is not None:
            await asyncio.sleep(0.01)
        assert calls == [RUNNING, NEW]
        await lifecycle.stop()
    run(scenario())


def test_an_owed_rebuild_is_tried_again_later(monkeypatch):
    import hivrrp.lifecycle as lifecycle_module
    monkeypatch.setattr(lifecycle_module, "RETRY_FIRST", 0.02)

    async def scenario():
        calls = []

        async def apply(config):
            calls.append(config)
            if len(calls) < 3:
                raise OSError("netlink dump failed")

        lifecycle = Lifecycle(None, apply, lambda: RUNNING)
        lifecycle.start()
        lifecycle.request_rebuild("interface eth2 appeared")
        for _ in range(100):
            if len(calls) == 3 and lifecycle.task is None:
                break
            await asyncio.sleep(0.01)
        # Failed twice, retried after 0.02 s and 0.04 s, then done: no busy retrying.
        assert calls == [RUNNING] * 3 and not lifecycle.want_rebuild
        await lifecycle.stop()
    run(scenario())
