"""Reload, rebuild and shutdown ordering (lifecycle.py), on a plain asyncio loop."""

import asyncio
import gc
import os
import subprocess
import time
import weakref

import pytest

from hivrrp.daemon.lifecycle import Lifecycle, Outcome, Rejected, read_config

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

    async def read(self, abort=None):
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

        async def read(abort=None):
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

        async def read(abort=None):
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
    import hivrrp.daemon.lifecycle as lifecycle_module
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


class Cycle:
    """Stands in for pyroute2's messages: garbage only the collector can free."""

    def __init__(self) -> None:
        self.me = self


def until_idle(lifecycle):
    async def wait():
        for _ in range(500):
            if lifecycle.task is None:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the run never ended")
    return wait()


@pytest.mark.parametrize("what", ["reload", "rebuild"])
def test_what_a_run_leaves_unreachable_is_collected_not_frozen(what):
    """The collector is off during a run and the survivors are frozen after
    it: garbage frozen with them would stay for good (9 MiB a reload with
    2,000 host addresses)."""
    left: list[weakref.ref] = []

    async def scenario():
        async def apply(config):
            for _ in range(100):
                left.append(weakref.ref(Cycle()))
            await asyncio.sleep(0)

        async def read(abort=None):
            return NEW

        lifecycle = Lifecycle(read, apply, lambda: RUNNING)
        lifecycle.start()
        if what == "reload":
            lifecycle.request_reload()
        else:
            lifecycle.request_rebuild("an interface came back")
        await until_idle(lifecycle)
        await lifecycle.stop()

    try:
        run(scenario())
        alive = sum(ref() is not None for ref in left)
        assert len(left) == 100 and alive == 0, f"{alive} unreachable objects kept"
    finally:
        gc.unfreeze()


def test_the_logged_stall_includes_the_swap():
    """The swap runs with no await after the build: a probe stopped in that
    same step never saw its tick late, and logged 5 ms for a 1.34 s stall."""
    async def scenario():
        async def apply(config):
            await asyncio.sleep(0.01)       # the build on its thread
            time.sleep(0.3)                 # the swap, on the loop

        async def read(abort=None):
            return NEW

        lifecycle = Lifecycle(read, apply, lambda: RUNNING)
        lifecycle.start()
        lifecycle.request_reload()
        await until_idle(lifecycle)
        await lifecycle.stop()
        return lifecycle.last_stall

    try:
        assert run(scenario()) >= 0.25
    finally:
        gc.unfreeze()


def test_a_reload_request_gets_its_outcome():
    async def scenario():
        results = iter([NEW, Rejected(("a.conf:3: unknown keyword 'x'",)), NEW])
        failures = iter([None, RuntimeError("netlink dump failed")])

        async def read(abort=None):
            return next(results)

        async def apply(config):
            if (exc := next(failures)) is not None:
                raise exc
            return "reloaded: 1 instance kept"

        lifecycle = Lifecycle(read, apply, lambda: RUNNING)
        lifecycle.start()
        applied = await lifecycle.request_reload()
        rejected = await lifecycle.request_reload()
        failed = await lifecycle.request_reload()
        await lifecycle.stop()
        refused = await lifecycle.request_reload()
        return applied, rejected, failed, refused

    try:
        applied, rejected, failed, refused = run(scenario())
    finally:
        gc.unfreeze()
    assert applied == Outcome("applied", "reloaded: 1 instance kept")
    assert rejected.result == "rejected" and rejected.errors == ("a.conf:3: unknown keyword 'x'",)
    assert failed.result == "failed" and "netlink dump failed" in failed.detail
    assert refused.result == "abandoned"


def test_requests_folded_into_one_run_share_its_outcome():
    async def scenario():
        r = Recorder()
        first = r.lifecycle.request_reload()
        await asyncio.sleep(0.01)            # the first run is applying
        second, third = r.lifecycle.request_reload(), r.lifecycle.request_reload()
        r.gate.set()
        return await asyncio.gather(first, second, third), r.reads

    try:
        (first, second, third), reads = run(scenario())
    finally:
        gc.unfreeze()
    # The later two asked after the first read: the next read answers both.
    assert reads == 2 and first.applied and second.applied and third.applied


def test_sigterm_kills_a_hanging_parse_and_does_not_wait_for_it(tmp_path):
    """An include of a FIFO hangs the parse child: halt() kills it at once, and
    a reload request waiting for the outcome hears it was abandoned."""
    fifo = tmp_path / "hangs.conf"
    os.mkfifo(fifo)
    (tmp_path / "keepalived.conf").write_text(f"include {fifo}\n")
    applied = []

    async def scenario():
        async def apply(config):
            applied.append(config)

        lifecycle = Lifecycle(
            lambda abort: read_config(str(tmp_path / "keepalived.conf"), None, abort),
            apply, lambda: RUNNING)
        lifecycle.start()
        outcome = lifecycle.request_reload()
        for _ in range(300):                # the child is up and stuck in open()
            await asyncio.sleep(0.01)
            if children_of(os.getpid()):
                break
        await asyncio.sleep(0.2)
        assert children_of(os.getpid()), "no parse child"
        started = time.monotonic()
        lifecycle.halt()
        answer = await asyncio.wait_for(outcome, 1)
        await lifecycle.stop(2)
        return answer, time.monotonic() - started

    try:
        answer, took = run(scenario())
    finally:
        gc.unfreeze()
    assert answer.result == "abandoned"
    assert took < 1.0 and applied == []
    assert children_of(os.getpid()) == []


def children_of(pid: int) -> list[int]:
    lines = subprocess.run(["ps", "-o", "pid=,comm=", "--ppid", str(pid)], capture_output=True,
                           text=True, check=False).stdout.splitlines()
    return [int(line.split()[0]) for line in lines if line.split()[1:] != ["ps"]]


def test_a_rejected_file_stays_rejected_when_a_rebuild_rides_along():
    """The rebuild applies the running configuration: hivrrp reload must not
    report the rejected file as applied."""
    async def scenario():
        applied = []

        async def read(abort=None):
            lifecycle.request_rebuild("an interface came back")   # meanwhile
            return Rejected(("a.conf:1: nonsense",))

        async def apply(config):
            applied.append(config)
            return "reloaded: 1 instance kept"

        lifecycle = Lifecycle(read, apply, lambda: RUNNING)
        lifecycle.start()
        outcome = await lifecycle.request_reload()
        await until_idle(lifecycle)
        return outcome, applied, dict(lifecycle.reloads)

    try:
        outcome, applied, counts = run(scenario())
    finally:
        gc.unfreeze()
    assert applied == [RUNNING]                      # the rebuild did run
    assert outcome.result == "rejected" and outcome.errors == ("a.conf:1: nonsense",)
    assert counts == {"ok": 0, "rejected": 1, "failed": 0}


def test_halt_answers_a_read_that_cannot_be_stopped():
    async def scenario():
        hung = asyncio.Event()

        async def read(abort=None):
            await hung.wait()                        # never set: stuck where abort cannot reach
            return NEW

        async def apply(config):
            return None

        lifecycle = Lifecycle(read, apply, lambda: RUNNING)
        lifecycle.start()
        outcome = lifecycle.request_reload()
        await asyncio.sleep(0.01)
        lifecycle.halt()
        answer = await asyncio.wait_for(outcome, 1)
        lifecycle.task.cancel()
        return answer, lifecycle.baseline

    try:
        answer, baseline = run(scenario())
    finally:
        gc.unfreeze()
    assert answer.result == "abandoned" and baseline is None
