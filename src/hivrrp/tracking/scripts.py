"""vrrp_script trackers: run each script every interval and turn its results
into an up/down status with keepalived's rise/fall counting.

A script runs once per interval however many instances track it: the caller
hands each vrrp_script over once and fans the reports out itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hivrrp.config.model import Script, VrrpScript
from hivrrp.notify import scriptrun
from hivrrp.tracking.risefall import RiseFall
from hivrrp.util.tasks import spawn
from hivrrp.util.text import plural

log = logging.getLogger("hivrrp")

# close() waits at most this long for killed children: scriptrun SIGKILLs a
# cancelled run's process group and bounds its own reaping to 5 s.
_CLOSE_LIMIT = 6.0

# The parser enforces interval >= 1 ms; this floor only keeps a hand-built
# VrrpScript with interval 0 from turning the timer chain into a busy loop.
_MIN_INTERVAL = 0.001


def _run_key(vs: VrrpScript) -> tuple:
    """What a run and its counting depend on.  weight/reverse are left out:
    they are the tracking instances' business and changing them must not
    throw away the script's status."""
    s = vs.script
    return (tuple(s.argv), s.user, s.group, vs.interval, vs.timeout,
            vs.rise, vs.fall, vs.init_fail)


class _Script:
    """One vrrp_script: its timer chain, its running child and its counter."""

    def __init__(self, owner: ScriptTrackers, vs: VrrpScript) -> None:
        self.owner = owner
        self.name = vs.name
        self.key = _run_key(vs)
        self.script = vs.script
        self.interval = max(vs.interval, _MIN_INTERVAL)
        # keepalived: timeout 0 means the interval.
        self.timeout = vs.timeout or self.interval
        self.counter = RiseFall(vs.rise, vs.fall, vs.init_fail)
        self.task: asyncio.Task | None = None
        self._timer: asyncio.Handle | None = None
        self._deadline = 0.0
        self._skip_logged = False
        self._last_outcome: str | None = None
        self._stopped = False

    def start(self) -> None:
        # keepalived runs every script at start-up rather than one interval in.
        loop = self.owner.loop
        self._deadline = loop.time()
        self._timer = loop.call_soon(self._tick)

    def stop(self) -> asyncio.Task | None:
        """Stop the timer and kill a running child; return the run being killed."""
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()          # scriptrun SIGKILLs the process group
            return task
        return None

    def _tick(self) -> None:
        loop = self.owner.loop
        now = loop.time()
        # Fixed rate from the first run, but after a stall (suspended host,
        # blocked loop) start again from now: missed runs are not made up in
        # a burst.
        self._deadline += self.interval
        if self._deadline <= now:
            self._deadline = now + self.interval
        self._timer = loop.call_at(self._deadline, self._tick)
        if self.task is not None:
            # keepalived 2.2.7 logs this and then starts the script again
            # anyway, piling up hung children (fixed upstream in 2.3.3); we
            # really skip.  Logged once per hung run, not every interval.
            if not self._skip_logged:
                log.warning("vrrp_script %s: still running, skipping", self.name)
                self._skip_logged = True
            return
        self.task = spawn(self._run(), f"vrrp_script {self.name}")

    async def _run(self) -> None:
        try:
            identity = await self.owner.identities.get(self.script.user, self.script.group)
            outcome = await scriptrun.run(self.script.argv, self.timeout, identity=identity)
        except Exception as exc:  # noqa: BLE001 - scriptrun promises not to; count it anyway
            log.error("vrrp_script %s: run failed: %r", self.name, exc)
            outcome = scriptrun.Outcome(ok=False, error=repr(exc))
        finally:
            if not self._stopped:
                self.task = None
                self._skip_logged = False
        if not self._stopped:
            self._count(outcome)

    def _count(self, outcome: scriptrun.Outcome) -> None:
        described = outcome.describe()
        # As keepalived's "Script `x` now returning N": one line per change
        # of outcome, not one per run.
        if described != self._last_outcome:
            log.info("vrrp_script %s: now %s", self.name, described)
            self._last_outcome = described
        changed = self.counter.result(outcome.ok)
        if changed is None:
            return
        if changed:
            log.info("VRRP_Script(%s) succeeded", self.name)
        else:
            log.info("VRRP_Script(%s) failed (%s)", self.name, described)
        self.owner.report(self.name, changed)


class ScriptTrackers:
    """All configured vrrp_scripts of the daemon.

    report(name, up) is called on the loop when a script's status changes,
    its first result included.  configure() itself never reports: read
    status() after it for the scripts it started.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, report: Callable[[str, bool], None], *,
                 secure: Callable[[Script], bool] | None = None) -> None:
        self.loop = loop
        self.report = report
        self._secure = secure
        self._scripts: dict[str, _Script] = {}
        self._disabled: dict[str, str] = {}          # name -> why
        self._dying: set[asyncio.Task] = set()       # runs of stopped scripts, being killed
        self.identities = scriptrun.Identities()

    def configure(self, scripts: dict[str, VrrpScript]) -> None:
        """Start new scripts, restart changed ones from scratch, stop removed
        ones; unchanged ones keep running with their counters."""
        # Users are looked up again once for the new configuration, off the loop.
        self.identities = scriptrun.Identities()
        wanted: dict[str, VrrpScript] = {}
        disabled: dict[str, str] = {}
        for name, vs in scripts.items():
            why = self._unusable(vs)
            if why is None:
                wanted[name] = vs
            else:
                disabled[name] = why

        carried: dict[str, bool | None] = {}
        for name, running in list(self._scripts.items()):
            vs = wanted.get(name)
            if vs is None or _run_key(vs) != running.key:
                carried[name] = running.counter.status
                self._stop(self._scripts.pop(name))
        for name, vs in wanted.items():
            if name not in self._scripts:
                self._scripts[name] = script = _Script(self, vs)
                # A changed script keeps its status until its results say
                # otherwise: a reload must not lift a failing script's penalty.
                script.counter.carry(carried.get(name))
                script.start()

        for name, why in disabled.items():
            if self._disabled.get(name) != why:
                log.error("Disabling track script %s: %s; instances tracking it ignore it",
                          name, why)
        self._disabled = disabled

    def status(self, name: str) -> bool | None:
        """True up, False down, None: no result yet (or no such script).
        A disabled script reads as down, so a caller that forgot to drop it
        from its instances fails safe."""
        script = self._scripts.get(name)
        if script is not None:
            return script.counter.status
        if name in self._disabled:
            return False
        return None

    @property
    def disabled(self) -> frozenset[str]:
        """Scripts that are never run (insecure, or no command).  keepalived
        removes such a script from every instance and sync group tracking it
        (vrrp.c check_vrrp_script_security), so they neither count for
        priority nor cause FAULT: callers should drop them likewise."""
        return frozenset(self._disabled)

    async def close(self) -> None:
        """Stop every script and kill running children, waiting a bounded time."""
        for script in self._scripts.values():
            self._stop(script)
        self._scripts.clear()
        if not self._dying:
            return
        _, pending = await asyncio.wait(set(self._dying), timeout=_CLOSE_LIMIT)
        if pending:
            log.error("%s still not finished after %.0f s",
                      plural(len(pending), "vrrp_script run"), _CLOSE_LIMIT)

    def _stop(self, script: _Script) -> None:
        task = script.stop()
        if task is not None:
            self._dying.add(task)
            task.add_done_callback(self._dying.discard)

    def _unusable(self, vs: VrrpScript) -> str | None:
        """Why vs must not run; None if it may."""
        if vs.script is None or not vs.script.argv:
            return "no script given"
        if self._secure is None:
            return None
        try:
            verdict = self._secure(vs.script)
        except Exception as exc:  # noqa: BLE001 - fail closed: an unchecked script is not run
            return f"script security check failed ({exc!r})"
        if verdict:
            return None
        # A scriptsec.Verdict says why, as keepalived does ("since not
        # found/accessible", "due to insecure"); a plain False cannot.
        return getattr(verdict, "refusal", None) or "refused by script security"
