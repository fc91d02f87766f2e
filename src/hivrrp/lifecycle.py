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
import logging
from collections.abc import Awaitable, Callable

from hivrrp.config.model import Config
from hivrrp.tasks import spawn

log = logging.getLogger("hivrrp")


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

    def request_reload(self) -> None:
        if self.stopping:
            log.info("reload refused: stopping")
            return
        if self.task is not None:
            log.info("reload already in progress, another one queued")
        self.want_reload = True
        self._kick()

    def request_rebuild(self, why: str) -> None:
        if self.stopping:
            return
        log.info("re-applying the configuration: %s", why)
        self.want_rebuild = True
        self._kick()

    def check(self) -> None:
        """Called by a run after each await: give up if stopping."""
        if self.stopping:
            raise Stopping

    async def stop(self) -> None:
        """Refuse further runs and wait for the one in flight to give up or finish."""
        self.stopping = True
        if self.task is not None:
            await asyncio.shield(self.task)

    def _kick(self) -> None:
        if self.task is None:
            self.task = spawn(self._run(), "reload")

    async def _run(self) -> None:
        try:
            while (self.want_reload or self.want_rebuild) and not self.stopping:
                await self._once()
        finally:
            self.task = None

    async def _once(self) -> None:
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
                self.want_rebuild = False  # what is applied now is built on current links
                await self.apply(config)
                if reload:
                    self.reloads["ok"] += 1
        except Stopping:
            log.info("stopping: the reload in progress is abandoned")
        except Exception:
            if reload:
                self.reloads["failed"] += 1
            log.exception("%s failed: the running configuration stays",
                          "reload" if reload else "rebuild")
