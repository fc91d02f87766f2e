"""State-change notifications as keepalived sends them (vrrp_notify.c).

For each instance (or sync group) event keepalived forks the state's own
script (notify_master, ...) with no extra arguments, the generic `notify`
script with `INSTANCE|GROUP name STATE priority`, and writes the line
`INSTANCE "name" STATE priority` to the notify FIFOs.  It never waits for the
scripts, so two events of one instance can run their scripts out of order.

Here scripts of one instance run in event order and the number of processes
is bounded, so a mass failover queues work instead of forking thousands of
processes; nothing in this module blocks the event loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hivrrp import scriptrun
from hivrrp.config.model import Script
from hivrrp.tasks import spawn

log = logging.getLogger("hivrrp")

STATES = ("MASTER", "BACKUP", "FAULT", "STOP", "DELETED")

# A notify_fifo_script reading the FIFO gets EOF once we close our end; give
# it this long to exit by itself before it is killed.
_FIFO_SCRIPT_GRACE = 1.0


@dataclass(frozen=True)
class _Run:
    argv: list[str]
    user: str | None              # as configured: resolved when it runs
    group: str | None
    identities: scriptrun.Identities   # of the configuration the event came under
    what: str                     # for logs, e.g. "notify_master of INSTANCE VI_1"


class _Fifo:
    """One notify FIFO, held open by us O_RDWR like keepalived does, so that
    opening never fails for want of a reader and a reader that goes away
    does not turn our writes into SIGPIPE/EPIPE."""

    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None
        self.created = False

    def open(self) -> bool:
        try:
            os.mkfifo(self.path, 0o644)
            self.created = True
        except FileExistsError:
            pass
        except OSError as exc:
            log.error("cannot create notify fifo %s: %s", self.path, exc.strerror)
            return False
        try:
            if not stat.S_ISFIFO(os.stat(self.path).st_mode):
                # keepalived would write into a regular file from offset 0,
                # overwriting it; refusing is the safer reading of intent.
                log.error("notify fifo %s exists and is not a FIFO; not writing to it", self.path)
                return False
            self.fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as exc:
            log.error("cannot open notify fifo %s: %s", self.path, exc.strerror)
            self._unlink()
            return False
        return True

    def write(self, data: bytes) -> bool:
        """False if the line was dropped (pipe full or broken)."""
        if self.fd is None:
            return True
        try:
            written = os.write(self.fd, data)
        except BlockingIOError:
            return False          # reader too slow: drop, as keepalived does
        except OSError as exc:
            log.error("writing to notify fifo %s: %s", self.path, exc.strerror)
            return False
        # Lines under PIPE_BUF are written whole or not at all; only an
        # absurdly long instance name can end here.
        return written == len(data)

    def close(self) -> None:
        # Unlink before closing, as keepalived does, so a reader that loops
        # reopening the FIFO cannot get back in.
        self._unlink()
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _unlink(self) -> None:
        if self.created:
            self.created = False
            try:
                os.unlink(self.path)
            except OSError as exc:
                log.warning("cannot remove notify fifo %s: %s", self.path, exc.strerror)


class Notifier:
    """Runs notify scripts and writes notify FIFO lines.

    Construct it inside the running event loop (it starts the FIFO scripts).

    loop: kept for callers that pass it; defaults to the running loop.
    fifo_paths: notify_fifo and/or vrrp_notify_fifo; created with mkfifo if
        missing (and then removed at close).  Every line goes to each.
    fifo_script: the notify_fifo_script for a single FIFO; fifo_scripts maps
        each FIFO path to its own script (keepalived has one per FIFO).  Each
        is started once with its FIFO path appended and runs until close.
    concurrency: most script processes running at once, over all instances.
    timeout: seconds a notify script may run before its process group is
        killed; needed because a hung script would hold up its instance's
        later events (keepalived puts no limit on notify scripts).
    secure: predicate from scriptsec.SecurityReport.allows; a script it
        rejects is never run (logged once per script path).
    backlog: most pending events per instance or group; older ones are
        dropped beyond it.
    script_user/script_group: global_defs script_user, used for scripts
        configured without a user.

    `runs` counts script runs by result: ok, failed, timed_out, error
    (could not start), dropped (never started: backlog overflow or close),
    refused (script security), killed (still running at close).
    `fifo_dropped` counts FIFO lines that were not written (pipe full).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *,
                 fifo_paths: Sequence[str] = (), fifo_script: Script | None = None,
                 fifo_scripts: dict[str, Script] | None = None,
                 concurrency: int = 16, timeout: float = 10.0,
                 secure: Callable[[Script], bool] | None = None,
                 backlog: int = 32,
                 script_user: str | None = None, script_group: str | None = None):
        self._timeout = timeout
        self._secure = secure
        self._backlog = max(1, backlog)
        self._identities = scriptrun.Identities(script_user, script_group)
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._queues: dict[tuple[str, str], collections.deque[list[_Run]]] = {}
        self._workers: dict[tuple[str, str], asyncio.Task] = {}
        self._overflowing: set[tuple[str, str]] = set()
        self._refused: set[str] = set()
        self._closed = False
        self.runs: collections.Counter[str] = collections.Counter()
        self.fifo_dropped = 0

        scripts = dict(fifo_scripts or {})
        if fifo_script is not None:
            if len(fifo_paths) != 1:
                raise ValueError("fifo_script needs exactly one fifo path; use fifo_scripts")
            scripts.setdefault(fifo_paths[0], fifo_script)
        self._fifos: list[_Fifo] = []
        self._fifo_tasks: list[asyncio.Task] = []
        for path in dict.fromkeys(fifo_paths):
            fifo = _Fifo(path)
            if not fifo.open():
                continue
            self._fifos.append(fifo)
            script = scripts.get(path)
            if script is not None:
                run = self._prepare(script, [path], f"notify fifo script of {path}")
                if run is not None:
                    self._fifo_tasks.append(spawn(self._fifo_script(run), run.what))

    def set_script_identity(self, script_user: str | None, script_group: str | None) -> None:
        """global_defs script_user after a reload: scripts without their own
        user run as this one from now on (and are judged as it).  Every user
        is looked up again, once, for the events from now on."""
        self._identities = scriptrun.Identities(script_user, script_group)
        self._refused.clear()

    # -- events ---------------------------------------------------------------

    def instance(self, name: str, state: str, priority: int, scripts: dict[str, Script],
                 *, notify_deleted: bool | None = None) -> None:
        """An instance entered `state` with effective `priority`.

        DELETED is reported as FAULT unless the instance has notify_deleted
        (keepalived's backward compatibility); notify_deleted=None means
        "has a notify_deleted script".
        """
        if state == "DELETED" and not (notify_deleted if notify_deleted is not None
                                       else "deleted" in scripts):
            state = "FAULT"
        self._event("INSTANCE", name, state, priority, scripts)

    def group(self, name: str, state: str, scripts: dict[str, Script]) -> None:
        """A sync group entered `state`; groups always report priority 0."""
        self._event("GROUP", name, state, 0, scripts)

    def rx_lower_priority(self, name: str, priority: int, script: Script | None) -> None:
        """A master heard an advert with lower priority (notify_master_rx_lower_pri)."""
        if self._closed:
            return
        if script is not None:
            run = self._prepare(script, [], f"notify_master_rx_lower_pri of INSTANCE {name}")
            self._enqueue(("INSTANCE", name), [run] if run else [])
        self._fifo_line("INSTANCE", name, "MASTER_RX_LOWER_PRI", priority)

    def priority_changed(self, name: str, state: str, priority: int) -> None:
        """Effective priority changed (notify_priority_changes): FIFO only."""
        if self._closed:
            return
        event = "MASTER_PRIORITY" if state == "MASTER" else "BACKUP_PRIORITY"
        self._fifo_line("INSTANCE", name, event, priority)

    def _event(self, kind: str, name: str, state: str, priority: int,
               scripts: dict[str, Script]) -> None:
        if self._closed:
            log.debug("notifier closed; %s %s %s not notified", kind, name, state)
            return
        if state not in STATES:
            log.error("%s %s: unknown state %r, not notified", kind, name, state)
            return
        runs = []
        own = scripts.get(state.lower())
        if own is not None:
            runs.append(self._prepare(own, [], f"notify_{state.lower()} of {kind} {name}"))
        generic = scripts.get("any")
        if generic is not None:
            runs.append(self._prepare(generic, [kind, name, state, str(priority)],
                                      f"notify of {kind} {name}"))
        self._enqueue((kind, name), [r for r in runs if r is not None])
        self._fifo_line(kind, name, state, priority)

    # -- FIFO -----------------------------------------------------------------

    def _fifo_line(self, kind: str, name: str, state: str, priority: int) -> None:
        data = f'{kind} "{name}" {state} {priority}\n'.encode()
        for fifo in self._fifos:
            if not fifo.write(data):
                if self.fifo_dropped == 0:
                    log.warning("notify fifo %s is full; dropping lines (counted)", fifo.path)
                self.fifo_dropped += 1

    async def _fifo_script(self, run: _Run) -> None:
        identity = await run.identities.get(run.user, run.group)
        outcome = await scriptrun.run(run.argv, None, identity=identity)
        # keepalived does not restart it either, it only notes the exit.
        level = logging.INFO if self._closed else logging.WARNING
        log.log(level, "%s terminated: %s", run.what, outcome.describe())

    # -- scripts --------------------------------------------------------------

    def _prepare(self, script: Script, extra: list[str], what: str) -> _Run | None:
        if self._secure is not None and not self._secure(script):
            self.runs["refused"] += 1
            path = script.argv[0] if script.argv else script.command
            if path not in self._refused:
                self._refused.add(path)
                log.error("%s: %s is disabled by script security; not running it", what, path)
            return None
        # The user is looked up when the script runs, on a worker thread: the
        # user database can be slow (NSS) and this runs on the loop.
        return _Run(list(script.argv) + extra, script.user, script.group, self._identities, what)

    def _enqueue(self, key: tuple[str, str], event: list[_Run]) -> None:
        if not event:
            return
        queue = self._queues.setdefault(key, collections.deque())
        queue.append(event)
        # An instance flapping faster than its scripts finish would grow its
        # queue without bound; the oldest pending events are the least
        # relevant to the current state, so they go first, counted.
        while len(queue) > self._backlog:
            dropped = queue.popleft()
            self.runs["dropped"] += len(dropped)
            if key not in self._overflowing:
                self._overflowing.add(key)
                log.warning("%s %s: notify backlog over %d events, dropping the oldest",
                            key[0], key[1], self._backlog)
        if key not in self._workers:
            self._workers[key] = spawn(self._drain(key), f"notify {key[0]} {key[1]}")

    async def _drain(self, key: tuple[str, str]) -> None:
        queue = self._queues[key]
        try:
            # Ends when the queue is empty; each turn takes one event, and the
            # queue holds at most `backlog` of them.
            while queue:
                event = queue.popleft()
                # An event's scripts start together, as keepalived forks them.
                await asyncio.gather(*(self._run(run) for run in event))
        finally:
            self._workers.pop(key, None)
            self._overflowing.discard(key)
            if not queue:
                self._queues.pop(key, None)

    async def _run(self, run: _Run) -> None:
        try:
            async with self._slots:
                identity = await run.identities.get(run.user, run.group)
                outcome = await scriptrun.run(run.argv, self._timeout, identity=identity)
        except asyncio.CancelledError:
            self.runs["killed"] += 1      # by close(); scriptrun killed its group
            raise
        except Exception:         # never let one script take the queue down
            log.exception("%s: running %s", run.what, run.argv[0])
            self.runs["error"] += 1
            return
        if outcome.error is not None:
            self.runs["error"] += 1
            log.error("%s: %s", run.what, outcome.describe())
        elif outcome.timed_out:
            self.runs["timed_out"] += 1
            log.warning("%s: %s timed out after %gs; killed", run.what, run.argv[0], self._timeout)
        elif not outcome.ok:
            self.runs["failed"] += 1
            log.warning("%s: %s failed: %s", run.what, run.argv[0], outcome.describe())
        else:
            self.runs["ok"] += 1

    # -- shutdown -------------------------------------------------------------

    async def close(self, timeout: float) -> None:
        """Stop taking events, wait up to `timeout` seconds for queued scripts
        (the STOP notifications among them), kill what is left, close the
        FIFOs and stop the FIFO scripts."""
        self._closed = True
        workers = list(self._workers.values())
        if workers:
            _, pending = await asyncio.wait(workers, timeout=timeout)
            if pending:
                log.warning("%d notify queues still busy after %gs; killing their scripts",
                            len(pending), timeout)
                left = sum(len(run) for q in self._queues.values() for run in q)
                self.runs["dropped"] += left
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        self._queues.clear()
        for fifo in self._fifos:
            fifo.close()
        self._fifos.clear()
        if self._fifo_tasks:
            _, pending = await asyncio.wait(self._fifo_tasks, timeout=_FIFO_SCRIPT_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._fifo_tasks.clear()
