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
import os
import sys
from collections.abc import Awaitable, Callable, Iterator

from hivrrp.config.model import Config
from hivrrp.stall import StallProbe
from hivrrp.tasks import spawn

log = logging.getLogger("hivrrp")

# While a reload parses and builds on a worker thread, the loop thread waits
# for the GIL after every wake-up for up to the switch interval (5 ms by
# default); a shorter one keeps adverts on time, the reload takes a bit longer.
RELOAD_SWITCH_INTERVAL = 0.0005
RETRY_FIRST = 1.0              # seconds before a failed rebuild is tried again, doubling
RETRY_MAX = 60.0


async def read_config(path: str, config_id: str | None) -> Config | None:
    """The configuration file parsed in a child process waited for on a worker
    thread (10,000 instances take ~1.5 s), its problems logged; None when it
    is invalid."""
    from hivrrp.config.diagnostics import condense
    from hivrrp.config.isolated import load_isolated

    result = await asyncio.to_thread(load_isolated, path, config_id=config_id)
    for line in condense(result.warnings):
        log.warning("%s", line)
    for diagnostic in result.infos:
        log.info("%s", diagnostic)
    if result.ok:
        return result.config
    for diagnostic in result.errors:
        log.error("%s", diagnostic)
    log.error("reload rejected (%d errors): the running configuration stays",
              len(result.errors))
    return None


@contextlib.contextmanager
def pid_file(path: str | None) -> Iterator[None]:
    """Our PID in `path` while running (for init systems and scripts), removed at exit."""
    if path:
        with open(path, "w") as f:
            f.write(f"{os.getpid()}\n")
    try:
        yield
    finally:
        if path:
            with contextlib.suppress(OSError):
                os.unlink(path)


async def run_each(steps: list[Callable[[], object]]) -> None:
    """Shutdown: every step is tried, whatever the one before it did; never raises."""
    for step in steps:
        try:
            result = step()
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("shutdown step failed")


class Stopping(Exception):
    """Raised inside a reload or rebuild that must not finish: the daemon is stopping."""


class Lifecycle:
    def __init__(self, read_config: Callable[[], Awaitable[Config | None]],
                 apply: Callable[[Config], Awaitable[None]],
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

    def start(self) -> None:
        """The daemon runs: requests that came during start-up (a SIGHUP) run now."""
        self.ready = True
        if self.want_reload or self.want_rebuild:
            self._kick()

    def request_reload(self) -> None:
        if self.stopping:
            log.info("reload refused: stopping")
            return
        if self.task is not None:
            log.info("reload already in progress, another one queued")
        self.want_reload = True
        self.requests += 1
        self._kick()

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

    async def stop(self) -> None:
        """Refuse further runs and wait for the one in flight to give up or finish."""
        self.stopping = True
        if self.retry is not None:
            self.retry.cancel()
        if self.task is not None:
            await asyncio.shield(self.task)
        self._drop_baseline()

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
            if collecting:
                gc.enable()
            gc.freeze()
            self.last_stall = probe.stop()
            log.info("longest loop stall during the %s: %.1f ms", what, self.last_stall * 1000)
            # The same measure over as long again after it: what the loop's own
            # work (a burst of adverts) costs anyway, to read the figure above against.
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
        try:
            if reload:
                config = await self.read_config()
                self.check()
                if config is None:
                    self.reloads["rejected"] += 1
            if config is None and self.want_rebuild:
                config = self.running_config()
            if config is not None:
                rebuild_served = self.want_rebuild
                self.want_rebuild = False  # what is applied now is built on current links
                try:
                    await self.apply(config)
                except Exception:
                    self.want_rebuild |= rebuild_served   # it did not happen: still wanted
                    raise
                if reload:
                    self.reloads["ok"] += 1
        except Stopping:
            log.info("stopping: the reload in progress is abandoned")
        except Exception:
            if reload:
                self.reloads["failed"] += 1
            log.exception("%s failed: the running configuration stays",
                          "reload" if reload else "rebuild")
            return False
        return True
