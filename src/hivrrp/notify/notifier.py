"""State-change notifications as keepalived sends them (vrrp_notify.c).

For each instance (or sync group) event keepalived forks the state's own
script (notify_master, ...) with no extra arguments, the generic `notify`
script with `INSTANCE|GROUP name STATE priority`, and writes the line
`INSTANCE "name" STATE priority` to the notify FIFOs.  It never waits for the
scripts, so two events of one instance can run their scripts out of order.

Here scripts of one instance run in event order and the number of processes
is bounded, so a mass failover queues work instead of forking thousands of
processes; nothing in this module blocks the event loop.  As in keepalived a
script may run as long as it likes unless a timeout is configured; one still
running after `warn_after` seconds is logged once.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import logging
import os
import shlex
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hivrrp.config.model import NOTIFY_SCRIPT_CONCURRENCY, Script
from hivrrp.notify import scriptrun
from hivrrp.util.tasks import spawn
from hivrrp.util.text import plural

log = logging.getLogger("hivrrp")

STATES = ("MASTER", "BACKUP", "FAULT", "STOP", "DELETED")

# A notify_fifo_script reading the FIFO gets EOF once we close our end; give
# it this long to exit by itself before it is killed.
_FIFO_SCRIPT_GRACE = 1.0

# A pipe holds 64 KiB by default: about 2,200 lines, fewer than the lines of a
# mass failover, which come in one burst (bench/notify_throughput.py lost some
# of 4,000 with a reader on the other core). 1 MiB (Linux's default
# pipe-max-size) holds about 35,000.
FIFO_BUFFER = 1 << 20

CONCURRENCY = NOTIFY_SCRIPT_CONCURRENCY   # default bound on processes at once, daemon-wide
WARN_AFTER = 30.0     # a script still running this long is logged (once)


@dataclass(frozen=True)
class _Run:
    argv: list[str]
    user: str | None              # as configured: resolved when it runs
    group: str | None
    identities: scriptrun.Identities   # of the configuration the event came under
    what: str                     # for logs, e.g. "notify_master of INSTANCE VI_1"


class _Slots:
    """A semaphore whose size can change while runs wait (a reload), handing
    slots to waiters in the order they asked."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._waiters: collections.deque[asyncio.Future] = collections.deque()

    async def acquire(self) -> None:
        if self.used < self.limit and not self._waiters:
            self.used += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()        # handed a slot, but cancelled before using it
            raise

    def release(self) -> None:
        self.used -= 1
        self._wake()

    def resize(self, limit: int) -> None:
        # Shrinking takes effect as runs end: running scripts are not killed.
        self.limit = limit
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.used < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():     # a cancelled waiter is skipped, never handed a slot
                self.used += 1
                waiter.set_result(None)


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
        try:
            fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, FIFO_BUFFER)
        except OSError as exc:    # a lowered pipe-max-size, or the user's pipe quota
            log.info("notify fifo %s keeps the kernel's buffer (%s); a burst of lines may "
                     "overflow it", self.path, exc.strerror)
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
    concurrency: most script processes running at once, over all instances
        (keepalived has no bound).
    timeout: seconds a notify script may run before its process group is
        killed; None (the default) never kills one, as keepalived.  A hung
        script then holds up its instance's later events, never the others'.
    warn_after: seconds after which a script still running is logged, once
        per run, with its pid (None: never).
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
    `running` and `queued` count script runs holding a slot and runs waiting
    for one or behind an earlier event of their instance.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None, *,
                 fifo_paths: Sequence[str] = (), fifo_script: Script | None = None,
                 fifo_scripts: dict[str, Script] | None = None,
                 concurrency: int = CONCURRENCY, timeout: float | None = None,
                 warn_after: float | None = WARN_AFTER,
                 secure: Callable[[Script], bool] | None = None,
                 backlog: int = 32,
                 script_user: str | None = None, script_group: str | None = None):
        self._timeout = timeout
        self._warn_after = warn_after
        self._secure = secure
        self._backlog = max(1, backlog)
        self._identities = scriptrun.Identities(script_user, script_group)
        self._slots = _Slots(max(1, concurrency))
        self._spawning = asyncio.Lock()
        # An instance has a queue exactly while it is in _active or _ready.
        self._queues: dict[tuple[str, str], collections.deque[list[_Run]]] = {}
        # Instances with an event running (one at a time each: their order),
        # and those with events waiting for their turn, oldest first.
        self._active: dict[tuple[str, str], asyncio.Task] = {}
        self._ready: collections.deque[tuple[str, str]] = collections.deque()
        self._admitting = False
        self._aborted = False
        self._idle = asyncio.Event()
        self._idle.set()
        self._overflowing: set[tuple[str, str]] = set()
        self._refused: set[str] = set()
        self._closed = False
        self.runs: collections.Counter[str] = collections.Counter()
        self.fifo_dropped = 0
        self.running = 0
        self.queued = 0

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

    @property
    def writes_fifo(self) -> bool:
        """Is a FIFO open (opened at start, kept until the end)?"""
        return bool(self._fifos)

    def set_script_identity(self, script_user: str | None, script_group: str | None) -> None:
        """global_defs script_user after a reload: scripts without their own
        user run as this one from now on (and are judged as it).  Every user
        is looked up again, once, for the events from now on."""
        self._identities = scriptrun.Identities(script_user, script_group)
        self._refused.clear()

    def set_limits(self, concurrency: int, timeout: float | None) -> None:
        """The bound and timeout after a reload; scripts already running keep
        the timeout they started with."""
        self._slots.resize(max(1, concurrency))
        self._timeout = timeout
        self._admit_soon()

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
        if self._secure is not None and not (verdict := self._secure(script)):
            self.runs["refused"] += 1
            path = script.argv[0] if script.argv else script.command
            if path not in self._refused:
                self._refused.add(path)
                # The verdict's own words: a missing script is "not found", not
                # a refusal by script security.
                why = getattr(verdict, "refusal", None) or "disabled by script security"
                log.error("%s: %s: %s; not running it", what, path, why)
            return None
        # The user is looked up when the script runs, on a worker thread: the
        # user database can be slow (NSS) and this runs on the loop.
        return _Run(list(script.argv) + extra, script.user, script.group, self._identities, what)

    def _enqueue(self, key: tuple[str, str], event: list[_Run]) -> None:
        if not event:
            return
        new = key not in self._queues       # neither running nor waiting its turn
        queue = self._queues.setdefault(key, collections.deque())
        queue.append(event)
        self.queued += len(event)
        # An instance flapping faster than its scripts finish would grow its
        # queue without bound; the oldest pending events are the least
        # relevant to the current state, so they go first, counted.
        while len(queue) > self._backlog:
            dropped = queue.popleft()
            self.runs["dropped"] += len(dropped)
            self.queued -= len(dropped)
            if key not in self._overflowing:
                self._overflowing.add(key)
                log.warning("%s %s: notify backlog over %d events, dropping the oldest",
                            key[0], key[1], self._backlog)
        if new:
            self._ready.append(key)
            self._idle.clear()
            self._admit_soon()

    def _admit_soon(self) -> None:
        # Once per loop turn, after the turn's events are queued (a burst of
        # them is trimmed to the backlog before any starts).
        if not self._admitting:
            self._admitting = True
            asyncio.get_running_loop().call_soon(self._admit)

    def _admit(self) -> None:
        """Start the next instances' events, as many as the bound: tasks exist
        only for those, not for each of the 4,000 instances of a failover,
        whose first steps in one turn held the loop for tens of ms."""
        self._admitting = False
        while self._ready and len(self._active) < self._slots.limit and not self._aborted:
            key = self._ready.popleft()
            event = self._queues[key].popleft()
            self._active[key] = spawn(self._run_event(key, event), f"notify {key[0]} {key[1]}")

    async def _run_event(self, key: tuple[str, str], event: list[_Run]) -> None:
        try:
            # An event's scripts start together, as keepalived forks them.
            await asyncio.gather(*(self._run(run) for run in event))
        finally:
            del self._active[key]
            if self._queues.get(key):
                # Its next event queues behind the other instances' waiting ones.
                self._ready.append(key)
            else:
                self._queues.pop(key, None)
                self._overflowing.discard(key)
            if self._active or self._ready:
                self._admit_soon()
            else:
                self._idle.set()

    async def _run(self, run: _Run) -> None:
        try:
            await self._slots.acquire()
        except asyncio.CancelledError:
            self.queued -= 1
            self.runs["dropped"] += 1     # by close() before it started
            raise
        self.queued -= 1
        self.running += 1
        timeout = self._timeout
        warning: list[asyncio.TimerHandle] = []

        def started(pid: int) -> None:
            if self._warn_after is not None and (timeout is None or timeout > self._warn_after):
                warning.append(asyncio.get_running_loop().call_later(
                    self._warn_after, self._still_running, run, pid, timeout))
        try:
            identity = await run.identities.get(run.user, run.group)
            # One spawn per loop turn: a spawn holds the loop for a fork and an
            # exec (milliseconds, more with a bigger daemon), and the scripts
            # that a freed batch of slots would start at once would add up to
            # one long stall (measured in bench/notify_throughput.py).
            async with self._spawning:
                await asyncio.sleep(0)
            outcome = await scriptrun.run(run.argv, timeout, identity=identity, started=started)
        except asyncio.CancelledError:
            self.runs["killed"] += 1      # by close(); scriptrun killed its group
            raise
        except Exception:         # never let one script take the queue down
            log.exception("%s: running %s", run.what, run.argv[0])
            self.runs["error"] += 1
            return
        finally:
            for handle in warning:
                handle.cancel()
            self.running -= 1
            self._slots.release()
        if outcome.error is not None:
            self.runs["error"] += 1
            log.error("%s: %s", run.what, outcome.describe())
        elif outcome.timed_out:
            self.runs["timed_out"] += 1
            log.warning("%s: %s timed out after %gs; killed", run.what, run.argv[0], timeout)
        elif not outcome.ok:
            self.runs["failed"] += 1
            log.warning("%s: %s failed: %s", run.what, run.argv[0], outcome.describe())
        else:
            self.runs["ok"] += 1

    def _still_running(self, run: _Run, pid: int, timeout: float | None) -> None:
        # Said once: a script that never ends is one line, not one a minute.
        log.warning("%s: %s (pid %d) still running after %gs; %s", run.what,
                    shlex.join(run.argv), pid, self._warn_after,
                    "no timeout is set, so it is not killed (its instance's later notifies wait)"
                    if timeout is None else f"it is killed at {timeout:g}s")

    # -- shutdown -------------------------------------------------------------

    async def close(self, timeout: float) -> None:
        """Stop taking events, wait up to `timeout` seconds for queued scripts
        (the STOP notifications among them), kill what is left, close the
        FIFOs and stop the FIFO scripts."""
        self._closed = True
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            log.warning("%s still busy after %gs; killing their scripts",
                        plural(len(self._active) + len(self._ready), "notify queue"), timeout)
            self._aborted = True
            left = sum(len(run) for q in self._queues.values() for run in q)
            self.runs["dropped"] += left
            self.queued -= left
            active = list(self._active.values())
            for task in active:
                task.cancel()
            await asyncio.gather(*active, return_exceptions=True)
        self._queues.clear()
        self._ready.clear()
        for fifo in self._fifos:
            fifo.close()
        self._fifos.clear()
        if self._fifo_tasks:
            _, pending = await asyncio.wait(self._fifo_tasks, timeout=_FIFO_SCRIPT_GRACE)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            self._fifo_tasks.clear()
