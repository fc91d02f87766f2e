"""The trackers of the running configuration, wired to the tracking policy.

Executors (scripts, files, processes here; links from linkwatch) report
statuses; policy.Tracking turns them into per-instance outcomes; the
daemon's `on_change(names)` applies those to the current plan's engine by
name. One executor per tracker, whatever number of instances use it: a
script tracked by 4,000 instances runs once per interval.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import replace

from hivrrp.config.model import Config, Script, VrrpScript
from hivrrp.kernel.netlink import Link
from hivrrp.notify.scriptsec import run_as
from hivrrp.tracking.files import FileTrackers
from hivrrp.tracking.policy import Tracking, Use, uses_of
from hivrrp.tracking.processes import ProcessTrackers, ReadAhead
from hivrrp.tracking.scripts import ScriptTrackers
from hivrrp.util.text import plural

log = logging.getLogger("hivrrp")


class TrackerHub:
    def __init__(self, loop: asyncio.AbstractEventLoop, on_change: Callable[[list[str]], None],
                 secure: Callable[[Script], bool] | None = None,
                 run_as: Callable[[Script], tuple[str | None, str | None]] | None = None) -> None:
        """run_as: who a script without its own user runs as; the daemon's
        answers from the users resolved at load (SecurityReport.run_as), not
        a user lookup on the loop at each reload."""
        self.on_change = on_change
        self.run_as = run_as
        self.policy = Tracking({})
        self.scripts = ScriptTrackers(loop, lambda name, up: self.report("script", name, up),
                                      secure=secure)
        self.files = FileTrackers(loop, lambda name, value: self.report("file", name, value))
        self.processes: ProcessTrackers | None = None
        self.loop = loop
        self.configuring = False
        self.closed = False

    async def prepare(self, config: Config) -> ReadAhead | None:
        """What configure(config) would otherwise do on the loop thread: the
        /proc scan for new process trackers, on a worker thread."""
        if self.closed:
            return None
        processes = await asyncio.to_thread(_used_processes, config)
        if not processes or self.closed:      # shut down meanwhile: start nothing
            return None
        self._ensure_processes()
        return await self.processes.read_ahead(processes)

    def _ensure_processes(self) -> None:
        if self.processes is None:
            # Only when used: it forks a probe and may open the connector.
            self.processes = ProcessTrackers(
                self.loop, lambda name, up: self.report("process", name, up))

    def configure(self, config: Config, links: dict[str, Link],
                  ahead: ReadAhead | None = None) -> Tracking:
        """Trackers for `config`; what unchanged trackers know carries over.
        The caller applies every instance's outcome afterwards. `ahead`:
        prepare(config)'s /proc read."""
        # Executors may report while they reconfigure (a kept file whose value
        # changed): the old policy and the new plan do not go together, and
        # every status is read afresh below anyway.
        self.configuring = True
        try:
            return self._configure(config, links, ahead)
        finally:
            self.configuring = False

    def _configure(self, config: Config, links: dict[str, Link],
                   ahead: ReadAhead | None) -> Tracking:
        uses = uses_of(config)
        used = {(u.kind, u.tracker) for us in uses.values() for u in us}
        g = config.global_defs
        identity = self.run_as or (lambda script: run_as(script, g.script_user, g.script_group))
        self.scripts.configure({n: _with_user(s, identity)
                                for n, s in config.scripts.items() if ("script", n) in used})
        self.files.configure({n: f for n, f in config.track_files.items()
                              if ("file", n) in used})
        processes = {n: p for n, p in config.track_processes.items() if ("process", n) in used}
        if processes:
            self._ensure_processes()
        if self.processes is not None:
            self.processes.configure(processes, ahead)
        # keepalived drops a tracker it cannot run from every instance using it.
        gone = ({("script", n) for n in self.scripts.disabled}
                | {("file", n) for n in self.files.dropped})
        if gone:
            uses = {name: kept for name, us in uses.items()
                    if (kept := tuple(u for u in us if (u.kind, u.tracker) not in gone))}
        self.policy = Tracking(uses, {key: self._status(key, links) for key in used})
        return self.policy

    def _status(self, key: tuple[str, str], links: dict[str, Link]):
        kind, name = key
        if kind == "interface":
            link = links.get(name)
            return link is not None and link.up
        if kind == "script":
            return self.scripts.status(name)
        if kind == "file":
            return self.files.value(name)
        return self.processes.status(name) if self.processes else None

    def report(self, kind: str, name: str, status) -> None:
        if self.configuring:
            return
        changed = self.policy.update(kind, name, status)
        if changed:
            log.info("%s tracker %s is %s: %s affected", kind, name,
                     _describe(status), plural(len(changed), "instance"))
            self.on_change(changed)

    def links_changed(self, links: dict[str, Link]) -> None:
        """The link table after kernel news: tracked interfaces up or down."""
        for name in self.policy.trackers("interface"):
            link = links.get(name)
            self.report("interface", name, link is not None and link.up)

    def uses(self, name: str) -> tuple[Use, ...]:
        return self.policy.uses.get(name, ())

    async def close(self) -> None:
        self.closed = True
        self.files.close()
        if self.processes is not None:
            await self.processes.close()
        await self.scripts.close()


def _used_processes(config: Config) -> dict:
    used = {u.tracker for us in uses_of(config).values() for u in us if u.kind == "process"}
    return {n: p for n, p in config.track_processes.items() if n in used}


def _with_user(vs: VrrpScript,
               identity: Callable[[Script], tuple[str | None, str | None]]) -> VrrpScript:
    """keepalived's default identity for a script without `user`: script_user,
    else keepalived_script if that user exists, else ourselves."""
    if vs.script is None or vs.script.user is not None:
        return vs
    user, group = identity(vs.script)
    if user is None:
        return vs
    return replace(vs, script=replace(vs.script, user=user, group=group))


def _describe(status) -> str:
    if status is None:
        return "unknown"
    if isinstance(status, bool):
        return "up" if status else "down"
    return f"at {status}"
