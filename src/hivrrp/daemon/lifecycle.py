"""Reload, rebuild and shutdown: one at a time, and none once stopping.

A reload re-reads the file (SIGHUP); a rebuild re-applies the running
configuration to new facts (an interface came back with a new index, a source
address appeared). Requests that arrive while one runs are folded into one
more run. A reload that succeeds also serves a pending rebuild (it builds
against the current links); one that fails (invalid file) still leaves the
rebuild to run. Once stopping, requests are refused and a run in flight
gives up at its next step, so nothing restarts an instance after shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from hivrrp.config.isolated import Abort
from hivrrp.config.model import Config
from hivrrp.daemon.stall import StallProbe
from hivrrp.util.tasks import spawn
from hivrrp.util.text import plural

log = logging.getLogger("hivrrp")
T = TypeVar("T")

# While a reload parses and builds on a worker thread, the loop thread waits
# for the GIL after every wake-up for up to the switch interval (5 ms by
# default); a shorter one keeps adverts on time, the reload takes a bit longer.
RELOAD_SWITCH_INTERVAL = 0.0005
RETRY_FIRST = 1.0              # seconds before a failed rebuild is tried again, doubling
RETRY_MAX = 60.0


def in_daemon_thread(work: Callable[[], T], name: str) -> asyncio.Future[T]:
    """work() on a thread of its own that the exit does not wait for.

    asyncio.to_thread's executor threads are joined at exit, with no time
    limit: a read stuck where Abort cannot reach it (a parse in this process
    after the child failed, on an include of a FIFO) would keep the daemon,
    and its pid lock, alive after it released its masters."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    def run() -> None:
        try:
            result, error = work(), None
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, exc
        with contextlib.suppress(RuntimeError):     # the loop is gone: nobody waits
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


@dataclass(frozen=True)
class Outcome:
    """What became of a reload, for whoever asked for it (`hivrrp reload`)."""
    result: str                       # applied, rejected, failed or abandoned
    detail: str = ""                  # the summary line, or why not
    errors: tuple[str, ...] = ()      # a rejected file's problems, FILE:LINE first

    @property
    def applied(self) -> bool:
        return self.result == "applied"


@dataclass(frozen=True)
class Rejected:
    """read_config's answer for an invalid file: its errors."""
    errors: tuple[str, ...]


async def read_config(path: str, config_id: str | None,
                      abort: Abort | None = None) -> Config | Rejected:
    """The configuration file parsed in a child process waited for on a worker
    thread (10,000 instances take ~1.5 s), its problems logged; Rejected when
    it is invalid. `abort` kills the child (a SIGTERM meanwhile)."""
    from hivrrp.config.diagnostics import log_problems
    from hivrrp.config.isolated import load_isolated

    result = await in_daemon_thread(partial(load_isolated, path, config_id=config_id,
                                            abort=abort), "config-read")
    if abort is not None and abort.aborted:
        return Rejected(())             # SIGTERM: nothing wrong with the file
    log_problems(result, log)
    if result.ok:
        return result.config
    log.error("reload rejected (%s): the running configuration stays",
              plural(len(result.fatal), "error"))
    return Rejected(tuple(str(d) for d in result.fatal))


async def run_each(steps: list[Callable[[], object]]) -> None:
    """Shutdown: every step is tried, whatever the one before it did; never raises."""
    for step in steps:
        try:
            result = step()
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("shutdown step failed")


def collect_before_freeze() -> int:
    """Collect, then freeze what survives: later collections skip the
    long-lived configuration. Returns the number of unreachable objects found."""
    found = gc.collect()
    gc.freeze()
    return found


class Stopping(Exception):
    """Raised inside a reload or rebuild that must not finish: the daemon is stopping."""


class Lifecycle:
    """read_config(abort) reads the file (Config, or Rejected/None when it is
    invalid); apply(config) swaps it in and may return a summary line."""

    def __init__(self, read_config: Callable[[Abort], Awaitable[Config | Rejected | None]],
                 apply: Callable[[Config], Awaitable[str | None]],
                 running_config: Callable[[], Config]) -> None:
        self.read_config = read_config
        self.apply = apply
        self.running_config = running_config
        self.want_reload = False
        self.want_rebuild = False
        self.stopping = False
        self.task: asyncio.Task | None = None
        self.reloads = {"ok": 0, "rejected": 0, "failed": 0}
        self.last_stall = 0.0          # seconds the loop was held up by the last run
        self.steady_stall = 0.0        # ... and in as long a time after it
        self.baseline: tuple[StallProbe, asyncio.TimerHandle] | None = None
        self.ready = False             # requests before the first plan wait for it
        self.requests = 0              # requests taken in, to tell a new one from an old
        self.retry_delay = RETRY_FIRST
        self.retry: asyncio.TimerHandle | None = None
        # Told True when a reload (SIGHUP) starts and False when the runs are
        # over: systemd's RELOADING=1 / READY=1.
        self.on_reloading: Callable[[bool], None] | None = None
        # Reload requests that want the outcome: the next read of the file serves
        # them; `answering`: those the read in flight serves.
        self.waiting: list[asyncio.Future] = []
        self.answering: list[asyncio.Future] = []
        self.abort = Abort()           # the read in flight: SIGTERM kills its parse child
        # Told at halt(): waits of a run in flight that must end at once.
        self.on_halt: list[Callable[[], None]] = []

    def start(self) -> None:
        """The daemon runs: requests that came during start-up (a SIGHUP) run now."""
        self.ready = True
        if self.want_reload or self.want_rebuild:
            self._kick()

    def request_reload(self) -> asyncio.Future:
        """A reload (folded into one in flight's successor); the future gets its Outcome."""
        outcome = asyncio.get_running_loop().create_future()
        if self.stopping:
            log.info("reload refused: stopping")
            outcome.set_result(Outcome("abandoned", "hivrrp is stopping"))
            return outcome
        if self.task is not None:
            log.info("reload already in progress, another one queued")
        self.waiting.append(outcome)
        self.want_reload = True
        self.requests += 1
        self._kick()
        return outcome

    def request_rebuild(self, why: str) -> None:
        if self.stopping:
            return
        log.info("re-applying the configuration: %s", why)
        self.want_rebuild = True
        self.requests += 1
        self._kick()

    def check(self) -> None:
        """Called by a run after each await: give up if stopping."""
        if self.stopping:
            raise Stopping

    def halt(self) -> None:
        """Refuse further runs; the one in flight gives up at its next step (a
        parse child is killed now). Nothing waits: a SIGTERM releases the
        masters at once, on the running plan, which no abandoned run replaces."""
        self.stopping = True
        self.abort.abort()
        if self.retry is not None:
            self.retry.cancel()
        self._drop_baseline()
        abandoned = Outcome("abandoned", "hivrrp is stopping")
        self._answer(self.waiting, abandoned)
        self._answer(self.answering, abandoned)
        for halted in self.on_halt:
            halted()

    async def stop(self, timeout: float | None = None) -> None:
        """halt(), then wait (at most `timeout` s) for the run in flight to end."""
        self.halt()
        if self.task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.task), timeout)
        self._drop_baseline()

    @staticmethod
    def _answer(waiting: list[asyncio.Future], outcome: Outcome) -> None:
        for future in waiting:
            if not future.done():
                future.set_result(outcome)
        waiting.clear()

    def _retry_later(self) -> None:
        log.info("trying the rebuild again in %.0f s", self.retry_delay)
        if self.retry is not None:
            self.retry.cancel()
        self.retry = asyncio.get_running_loop().call_later(self.retry_delay, self._kick)
        self.retry_delay = min(self.retry_delay * 2, RETRY_MAX)

    def _drop_baseline(self) -> None:
        if self.baseline is not None:
            probe, handle = self.baseline
            probe.stop()
            handle.cancel()
            self.baseline = None

    def _kick(self) -> None:
        if self.ready and self.task is None and not self.stopping:
            self.task = spawn(self._run(), "reload")

    async def _run(self) -> None:
        reloading = self.want_reload and self.on_reloading is not None
        if reloading:
            self.on_reloading(True)
        try:
            while (self.want_reload or self.want_rebuild) and not self.stopping:
                seen = self.requests
                if await self._once():
                    self.retry_delay = RETRY_FIRST
                elif self.requests == seen:
                    # Failed with nothing new asked meanwhile: a rebuild it owed
                    # (an interface appeared) is tried again later, not at once.
                    if self.want_rebuild:
                        self._retry_later()
                    break
        finally:
            self.task = None
            if reloading and not self.stopping:
                self.on_reloading(False)

    async def _once(self) -> bool:
        what = "reload" if self.want_reload else "rebuild"
        loop = asyncio.get_running_loop()
        self._drop_baseline()   # a run right after another: that is no steady state
        probe = StallProbe(loop).start()
        started = loop.time()
        interval = sys.getswitchinterval()
        sys.setswitchinterval(RELOAD_SWITCH_INTERVAL)
        # A collection holds the GIL throughout, in whichever thread triggers it:
        # the reload's allocations set off full ones of 120-200 ms. Loading and
        # building leave no cyclic garbage (measured), so the collector rests
        # until the new configuration is in place, which is then frozen with
        # everything else long-lived: later collections no longer walk it.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return await self._read_and_apply()
        finally:
            sys.setswitchinterval(interval)
            # What the run left unreachable goes before the freeze, which would
            # keep it for good: pyroute2's address dump alone leaves ~110 cyclic
            # objects per host address (9 MiB a reload with 2,000 of them).
            # Only what the run allocated is walked (the rest is frozen): 10-15 ms
            # at 10,000 instances, counted in the stall below.
            collect_before_freeze()
            if collecting:
                gc.enable()
            self.last_stall = probe.stop()
            log.info("longest loop stall during the %s: %.1f ms", what, self.last_stall * 1000)
            # The same measure over as long again after it: what the loop's own
            # work (a burst of adverts) costs anyway, to read the figure above against.
            if not self.stopping:
                baseline = StallProbe(loop).start()
                self.baseline = (baseline, loop.call_later(max(0.1, loop.time() - started),
                                                           self._baseline, baseline, what))

    def _baseline(self, probe: StallProbe, what: str) -> None:
        self.baseline = None
        self.steady_stall = probe.stop()
        log.info("longest loop stall in as long after the %s: %.1f ms", what,
                 self.steady_stall * 1000)

    async def _read_and_apply(self) -> bool:
        """False when applying failed (a rebuild it owed stays owed)."""
        config = None
        reload = self.want_reload
        self.want_reload = False
        # These asked before the file is read: this read is their answer (halt()
        # answers them too, should the run hang where it cannot be stopped).
        waiting = self.answering = self.waiting
        self.waiting = []
        outcome = Outcome("abandoned", "hivrrp is stopping")
        read = None
        try:
            if reload:
                self.abort = Abort()
                read = await self.read_config(self.abort)
                self.check()
                if read is not None and not isinstance(read, Rejected):
                    config = read
                else:
                    self.reloads["rejected"] += 1
                    outcome = Outcome("rejected", "the running configuration stays",
                                      read.errors if isinstance(read, Rejected) else ())
            if config is None and self.want_rebuild:
                config = self.running_config()
            if config is not None:
                rebuild_served = self.want_rebuild
                self.want_rebuild = False  # what is applied now is built on current links
                try:
                    summary = await self.apply(config)
                except Exception:
                    self.want_rebuild |= rebuild_served   # it did not happen: still wanted
                    raise
                # A rejected file with a rebuild owed applies the running
                # configuration: that serves the rebuild, not the reload.
                if reload and config is read:
                    self.reloads["ok"] += 1
                    outcome = Outcome("applied", summary or "reloaded")
        except Stopping:
            log.info("stopping: the reload in progress is abandoned")
        except Exception as exc:
            if reload:
                self.reloads["failed"] += 1
            log.exception("%s failed: the running configuration stays",
                          "reload" if reload else "rebuild")
            self._answer(waiting, Outcome("failed", f"{type(exc).__name__}: {exc}; the "
                                                    "running configuration stays"))
            return False
        finally:
            self._answer(waiting, outcome)
        return True
