"""vrrp_track_process: count the processes each tracker matches and report
quorum changes, with keepalived's matching and delays (core/track_process.c).

Events come from the kernel's process-events connector.  Where it does not
work (it exists only in the initial network namespace, and only for the
initial PID namespace) /proc is scanned every scan_interval instead, in a
worker thread.

One file, four parts: Spec (what a tracker matches), Counts (which PIDs
count and when a quorum change is reported: no /proc, no sockets, no clock
of its own, so it is tested event by event), the /proc reader, and the
connector; ProcessTrackers wires them to the event loop.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import signal
import socket
import struct
import sys
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from hivrrp.config.model import TrackProcess
from hivrrp.kernel.sockets import force_buffers
from hivrrp.util.tasks import spawn

log = logging.getLogger("hivrrp")

# The kernel keeps TASK_COMM_LEN (16) bytes of a process name, NUL included.
COMM_MAX = 15

# Causes of a count change; they pick the delay (see Counts.settle).
FORK, EXEC, EXIT = "fork", "exec", "exit"


# --------------------------------------------------------------------------
# What a tracker matches

@dataclass(frozen=True)
class Spec:
    """A tracker's matching and counting rules, normalised as keepalived's
    parser leaves them.  Equal specs count the same processes the same way:
    a reload that keeps the spec keeps the count."""

    name: bytes                 # process name (comm), or argv[0] with full_command
    params: bytes | None        # keepalived's process_params: each param NUL-terminated
    match: str | None           # None (argv[0] only), "exact", "initial", "partial"
    full_command: bool
    quorum: int
    quorum_max: int | None      # None: unlimited
    fork_delay: float
    terminate_delay: float

    def in_range(self, count: int) -> bool:
        return self.quorum <= count and (self.quorum_max is None or count <= self.quorum_max)

    def matches(self, comm: bytes, cmdline: bytes | None) -> bool:
        if not self.full_command:
            return comm == self.name
        if cmdline is None:
            return False
        # keepalived strcmp()s the NUL-terminated buffer: argv[0] is up to
        # the first NUL, or the whole (possibly truncated) read.
        argv0, nul, rest = cmdline.partition(b"\0")
        if argv0 != self.name:
            return False
        if self.match is None:
            return True
        return _params_match(self.match, self.params, rest if nul else None)

    def cmdline_bytes(self) -> int:
        """How much of /proc/PID/cmdline decides a match: keepalived reads
        its longest configured command plus one byte, so a longer command line
        shows as longer without being read in full."""
        return len(self.name) + 1 + len(self.params or b"") + 1


def _params_match(match: str, want: bytes | None, have: bytes | None) -> bool:
    """keepalived's check_params(), on NUL-terminated parameter strings.

    exact: the same parameters.  partial: the configured parameters are the
    first ones (more may follow).  initial: as partial, but the last
    configured one may be the beginning of the process's parameter.
    (man keepalived.conf; the names look swapped but that is what it does.)
    """
    if have is None:
        # argv[0] without a NUL: keepalived's parameter length underflows,
        # which only its tests that look at no parameter bytes survive.
        return match != "exact" and (not want or (match == "initial" and len(want) == 1))
    if match == "exact":
        return have == (want or b"")
    if not want:
        return True
    if len(have) < len(want):
        return False
    if match == "partial":
        return have.startswith(want)
    return len(want) == 1 or have.startswith(want[:-1])


def spec_of(tracker: TrackProcess) -> Spec | None:
    """The Spec of a configured tracker; None (logged) if it cannot match anything."""
    if not tracker.process:
        log.error("vrrp_track_process %s: no process given; not tracked", tracker.name)
        return None
    match, full = tracker.param_match, tracker.full_command
    # keepalived's process handler: parameters imply an exact match of the
    # whole command line unless param_match says otherwise.
    if tracker.params:
        match = match or "exact"
    if match is not None:
        full = True
    quorum, quorum_max = tracker.quorum, tracker.quorum_max
    if quorum_max == 0:
        quorum = 0            # keepalived: "must not run" means 0 <= count <= 0
    name = os.fsencode(tracker.process)
    params = b"".join(os.fsencode(p) + b"\0" for p in tracker.params) if tracker.params else None
    return Spec(name, params, match, full, quorum, quorum_max,
                max(tracker.fork_delay, 0.0), max(tracker.terminate_delay, 0.0))


def spec_problems(spec: Spec) -> list[str]:
    """Why a tracker can never have quorum, in words for the log."""
    problems = []
    if spec.quorum_max is not None and spec.quorum > spec.quorum_max:
        problems.append(f"quorum {spec.quorum} is above quorum_max {spec.quorum_max}: it "
                        "never has quorum")
    if not spec.full_command and len(spec.name) > COMM_MAX:
        # keepalived compares the configured name with the kernel's 15-byte
        # process name as it is, so such a tracker never matches.
        problems.append(f"'{os.fsdecode(spec.name)}' is longer than the {COMM_MAX} characters "
                        "the kernel keeps of a process name, so it never matches; "
                        "full_command matches the command line instead")
    return problems


# --------------------------------------------------------------------------
# Counting and quorum (policy only)

class Timer(Protocol):
    def cancel(self) -> None: ...


CallLater = Callable[..., Timer]       # loop.call_later(delay, callback, *args)


class _Tracker:
    __slots__ = ("name", "pids", "spec", "timer", "up")

    def __init__(self, name: str, spec: Spec, pids: set[int]) -> None:
        self.name, self.spec, self.pids = name, spec, pids
        self.up = spec.in_range(len(pids))
        self.timer: Timer | None = None


class _Mark:
    """What happened to one tracker's count since the last settle()."""
    __slots__ = ("before", "exited", "forked")

    def __init__(self, before: int) -> None:
        self.before, self.forked, self.exited = before, False, False


class Counts:
    """Which PIDs count for which tracker, and when a quorum change is reported.

    Changes are made with fork/exit/set_pid/resync and take effect on
    settle(): a tracker whose count left (or re-entered) its quorum range is
    reported at once, or after a delay, as keepalived does:
      - fork_delay when the count changed because a counted process forked
        (a child inherits its parent's trackers); a child that exits or execs
        away before the delay ends was never reported;
      - terminate_delay when it changed because counted processes exited;
        a replacement that restores the quorum meanwhile means no report;
      - no delay when it changed because a process exec'd into or out of a
        match, or was renamed (keepalived's check_process has no timer).
    While a delay runs, further changes wait for it: at its end the count
    then decides (keepalived re-evaluates in its timer thread).

    keepalived counts a process once per match and so counts a tracked
    process that forks and execs the same program twice until it exits;
    here a PID counts at most once per tracker.
    """

    def __init__(self, call_later: CallLater, report: Callable[[str, bool], None]) -> None:
        self.call_later = call_later
        self.report = report
        self.trackers: dict[str, _Tracker] = {}
        self.by_pid: dict[int, set[str]] = {}
        self._marks: dict[str, _Mark] = {}

    # -- trackers

    def replace(self, name: str, spec: Spec, pids: set[int]) -> None:
        """Start (or restart) a tracker from a full scan and report its state."""
        self.forget(name)
        tracker = self.trackers[name] = _Tracker(name, spec, set(pids))
        for pid in tracker.pids:
            self.by_pid.setdefault(pid, set()).add(name)
        log.info("vrrp_track_process %s: %d running, quorum %s", name, len(tracker.pids),
                 "up" if tracker.up else "down")
        self._tell(name, tracker.up)

    def forget(self, name: str) -> None:
        tracker = self.trackers.pop(name, None)
        if tracker is None:
            return
        self._marks.pop(name, None)
        if tracker.timer is not None:
            tracker.timer.cancel()
        for pid in tracker.pids:
            names = self.by_pid.get(pid)
            if names is not None:
                names.discard(name)
                if not names:
                    del self.by_pid[pid]

    def close(self) -> None:
        for tracker in self.trackers.values():
            if tracker.timer is not None:
                tracker.timer.cancel()
                tracker.timer = None

    # -- changes

    def fork(self, parent: int, child: int) -> None:
        """A process forked: the child counts wherever its parent does."""
        for name in tuple(self.by_pid.get(parent, ())):
            self._add(name, child, FORK)

    def exit(self, pid: int) -> None:
        for name in tuple(self.by_pid.get(pid, ())):
            self._remove(name, pid, EXIT)

    def set_pid(self, pid: int, matched: Iterable[str], scope: Iterable[str] | None = None,
                forked_from: int | None = None) -> None:
        """A process (new, exec'd or renamed) now matches `matched`; it stops
        counting for the trackers in `scope` (all if None) it no longer
        matches.  Trackers that also count `forked_from` count it as a fork."""
        matched = set(matched)
        counted = self.by_pid.get(pid, set())
        scope = None if scope is None else set(scope)
        for name in counted - matched:
            if scope is None or name in scope:
                self._remove(name, pid, EXEC)
        parents = self.by_pid.get(forked_from, ()) if forked_from is not None else ()
        for name in matched - counted:
            self._add(name, pid, FORK if name in parents else EXEC)

    def resync(self, name: str, pids: set[int]) -> None:
        """A full scan after events were lost: gains wait fork_delay, losses
        terminate_delay (keepalived's reinitialise_track_processes)."""
        tracker = self.trackers.get(name)
        if tracker is None:
            return
        for pid in tracker.pids - pids:
            self._remove(name, pid, EXIT)
        for pid in pids - tracker.pids:
            self._add(name, pid, FORK)

    def _add(self, name: str, pid: int, cause: str) -> None:
        tracker = self.trackers.get(name)
        if tracker is None or pid in tracker.pids:
            return
        mark = self._mark(tracker)
        mark.forked |= cause == FORK
        tracker.pids.add(pid)
        self.by_pid.setdefault(pid, set()).add(name)

    def _remove(self, name: str, pid: int, cause: str) -> None:
        tracker = self.trackers.get(name)
        if tracker is None or pid not in tracker.pids:
            return
        mark = self._mark(tracker)
        mark.exited |= cause == EXIT
        tracker.pids.discard(pid)
        names = self.by_pid.get(pid)
        if names is not None:
            names.discard(name)
            if not names:
                del self.by_pid[pid]

    def _mark(self, tracker: _Tracker) -> _Mark:
        mark = self._marks.get(tracker.name)
        if mark is None:
            mark = self._marks[tracker.name] = _Mark(len(tracker.pids))
        return mark

    # -- decisions

    def settle(self) -> None:
        if not self._marks:
            return          # the usual event: nothing tracked moved
        marks, self._marks = self._marks, {}
        for name, mark in marks.items():
            tracker = self.trackers.get(name)
            if tracker is None:
                continue
            count = len(tracker.pids)
            wanted = tracker.spec.in_range(count)
            if wanted == tracker.up:
                # Back where it was before the delay ended: nothing to say.
                if tracker.timer is not None:
                    tracker.timer.cancel()
                    tracker.timer = None
                continue
            if tracker.timer is not None:
                continue
            delay = 0.0
            if count > mark.before and mark.forked:
                delay = tracker.spec.fork_delay
            elif count < mark.before and mark.exited:
                delay = tracker.spec.terminate_delay
            if delay > 0:
                tracker.timer = self.call_later(delay, self._expired, tracker)
            else:
                self._set(tracker, wanted)

    def _expired(self, tracker: _Tracker) -> None:
        tracker.timer = None
        if self.trackers.get(tracker.name) is not tracker:
            return
        wanted = tracker.spec.in_range(len(tracker.pids))
        if wanted != tracker.up:
            self._set(tracker, wanted)

    def _set(self, tracker: _Tracker, up: bool) -> None:
        tracker.up = up
        spec = tracker.spec
        bound = "unlimited" if spec.quorum_max is None else spec.quorum_max
        log.info("vrrp_track_process %s: quorum %s (%d running, quorum %d..%s)", tracker.name,
                 "gained" if up else "lost", len(tracker.pids), spec.quorum, bound)
        self._tell(tracker.name, up)

    def _tell(self, name: str, up: bool) -> None:
        try:
            self.report(name, up)
        except Exception:
            # The caller's bug must not stop the counting of other events.
            log.exception("vrrp_track_process %s: reporting quorum %s failed", name,
                          "up" if up else "down")


# --------------------------------------------------------------------------
# Reading /proc

class ProcInfo(NamedTuple):
    starttime: int              # clock ticks after boot: tells a reused PID from the old one
    ppid: int
    comm: bytes
    cmdline: bytes | None       # None when no tracker needs it


def _read(path: str, limit: int) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_process(pid: int | str, cmdline_limit: int | None) -> ProcInfo | None:
    """One process from /proc, or None if it is gone, a zombie (keepalived
    does not count those: they do not run) or unreadable."""
    stat = _read(f"/proc/{pid}/stat", 1024)
    if not stat:
        return None
    # The name is between the first '(' and the LAST ')': it may contain
    # either (keepalived 2.2.7 stops at the first ')').
    left, right = stat.find(b"("), stat.rfind(b")")
    if left < 0 or right < left:
        return None
    fields = stat[right + 2:].split(None, 20)     # up to starttime, the 20th
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    try:
        ppid, starttime = int(fields[1]), int(fields[19])
    except ValueError:
        return None
    cmdline = None
    if cmdline_limit is not None:
        cmdline = _read(f"/proc/{pid}/cmdline", cmdline_limit)
        if cmdline is None:
            return None
    return ProcInfo(starttime, ppid, stat[left + 1:right], cmdline)


def read_processes(cmdline_limit: int | None) -> dict[int, ProcInfo]:
    """Every running process.  Reads one or two small files per PID and
    holds nothing open: safe to run in a worker thread."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = read_process(entry, cmdline_limit)
            if info is not None:
                table[int(entry)] = info
    return table


class ProcSource(Protocol):
    """Where process facts come from: /proc, or a fake table in tests."""
    def read_process(self, pid: int, cmdline_limit: int | None) -> ProcInfo | None: ...
    def read_processes(self, cmdline_limit: int | None) -> dict[int, ProcInfo]: ...


class ProcFs:
    read_process = staticmethod(read_process)
    read_processes = staticmethod(read_processes)


# --------------------------------------------------------------------------
# The kernel's process-events connector.
#
# Hand-written: pyroute2 has no NETLINK_CONNECTOR support, and the protocol
# is one fixed-layout subscribe message and fixed-layout events.

NETLINK_CONNECTOR = 11
CN_IDX_PROC = CN_VAL_PROC = 1
PROC_CN_MCAST_LISTEN, PROC_CN_MCAST_IGNORE = 1, 2
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
PROC_EVENT_NONE, PROC_EVENT_FORK, PROC_EVENT_EXEC = 0, 1, 2
PROC_EVENT_COMM, PROC_EVENT_EXIT = 0x200, 0x80000000

_NLMSGHDR = struct.Struct("=IHHII")            # len, type, flags, seq, pid
_CN_MSG = struct.Struct("=IIIIHH")             # idx, val, seq, ack, len, flags
# struct proc_event: what, cpu, timestamp_ns, then event_data (at +16).
_EVENT_AT = _NLMSGHDR.size + _CN_MSG.size      # 36
_DATA_AT = _EVENT_AT + 16                      # 52
_FOUR = struct.Struct("=iiii")
_TWO = struct.Struct("=ii")

# man keepalived.conf: the default 212,992 B receive buffer overflows with
# 1,400 simultaneous exits, 500,000 B does not.  Doubled on each overrun.
RCVBUF = 1 << 20
RCVBUF_MAX = 32 << 20
READS_PER_WAKEUP = 512          # then the loop serves others before reading on
RESCAN_SETTLE = 0.5             # after an overrun, let the storm pass first
PROBE_TIMEOUT = 0.5


def _listen_message(op: int) -> bytes:
    body = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, 4, 0) + struct.pack("=I", op)
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), NLMSG_DONE, 0, 0, os.getpid()) + body


def parse_event(data: bytes) -> tuple | None:
    """One connector datagram as (what, pid, ...), or None if it is not a
    process event.  The kernel sends one event per datagram (its proc_event
    alignment rules out chaining), so only the first message is read.
      (FORK, child, parent)  (EXEC, pid)  (COMM, pid, comm)  (EXIT, pid)
      (NONE,) the kernel's answer to the subscription.
    Thread events (pid != tgid) are None: only processes are counted."""
    if len(data) < _DATA_AT:
        return None
    _, kind, _, _, _ = _NLMSGHDR.unpack_from(data)
    if kind in (NLMSG_NOOP, NLMSG_ERROR):
        return None
    idx, val, _, _, _, _ = _CN_MSG.unpack_from(data, _NLMSGHDR.size)
    if idx != CN_IDX_PROC or val != CN_VAL_PROC:
        return None
    (what,) = struct.unpack_from("=I", data, _EVENT_AT)
    if what == PROC_EVENT_NONE:
        return (PROC_EVENT_NONE,)
    if what == PROC_EVENT_FORK and len(data) >= _DATA_AT + 16:
        _, parent_tgid, child_pid, child_tgid = _FOUR.unpack_from(data, _DATA_AT)
        return (what, child_tgid, parent_tgid) if child_pid == child_tgid else None
    if what in (PROC_EVENT_EXEC, PROC_EVENT_EXIT) and len(data) >= _DATA_AT + 8:
        pid, tgid = _TWO.unpack_from(data, _DATA_AT)
        return (what, tgid) if pid == tgid else None
    if what == PROC_EVENT_COMM and len(data) >= _DATA_AT + 24:
        pid, tgid = _TWO.unpack_from(data, _DATA_AT)
        comm = data[_DATA_AT + 8:_DATA_AT + 24].split(b"\0", 1)[0]
        return (what, tgid, comm) if pid == tgid else None
    return None


class Connector:
    """The subscribed socket, read on the loop with add_reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_event: Callable[[tuple], None],
                 on_overrun: Callable[[], None], on_failure: Callable[[str], None],
                 rcvbuf: int = RCVBUF) -> None:
        self.loop, self.on_event = loop, on_event
        self.on_overrun, self.on_failure = on_overrun, on_failure
        self.sock: socket.socket | None = None
        self.rcvbuf = rcvbuf

    def open(self) -> None:
        """Subscribe; raises OSError where the connector is unavailable
        (ECONNREFUSED outside the initial network namespace)."""
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK,
                             NETLINK_CONNECTOR)
        try:
            sock.bind((0, CN_IDX_PROC))
            self._set_rcvbuf(sock, self.rcvbuf)
            sock.send(_listen_message(PROC_CN_MCAST_LISTEN))
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.loop.add_reader(sock.fileno(), self._readable)

    @staticmethod
    def _set_rcvbuf(sock: socket.socket, size: int) -> None:
        try:
            force_buffers(sock, receive=size)
        except OSError as exc:
            log.warning("process tracking: cannot set the receive buffer: %s", exc)

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is None:
            return
        self.loop.remove_reader(sock.fileno())
        try:
            sock.send(_listen_message(PROC_CN_MCAST_IGNORE))
        except OSError:
            pass
        sock.close()

    def _readable(self) -> None:
        sock = self.sock
        for _ in range(READS_PER_WAKEUP):
            if sock is None or self.sock is not sock:
                return
            try:
                data, (sender, _groups) = sock.recvfrom(1024)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    if self.rcvbuf < RCVBUF_MAX:
                        self.rcvbuf *= 2
                        self._set_rcvbuf(sock, self.rcvbuf)
                    self.on_overrun()
                    continue
                # Anything else would fire the reader again and again.
                self.on_failure(f"reading events: {exc}")
                return
            if sender != 0:
                continue        # only the kernel speaks for the connector
            event = parse_event(data)
            if event is not None:
                try:
                    self.on_event(event)
                except Exception:
                    log.exception("process tracking: handling event %r failed", event)


# --------------------------------------------------------------------------
# Putting it together

def _specs_of(trackers: dict[str, TrackProcess], quiet: bool = False) -> dict[str, Spec]:
    specs: dict[str, Spec] = {}
    for name, tracker in trackers.items():
        try:
            spec = spec_of(tracker)
        except (AttributeError, TypeError, ValueError) as exc:
            # A malformed model object: say which (once, at configure), keep the others.
            if not quiet:
                log.error("vrrp_track_process %s: cannot be tracked: %r", name, exc)
            continue
        if spec is not None:
            specs[name] = spec
    return specs


def _probe_program() -> list[str]:
    for true in ("/bin/true", "/usr/bin/true", shutil.which("true")):
        if true and os.access(true, os.X_OK):
            return [true]
    return [sys.executable, "-c", ""]       # slower to start, but always there


class ReadAhead:
    """/proc as read on a worker thread for the next configure(), and the PIDs
    whose events came in since the read began (newer than the table)."""

    def __init__(self, fresh: frozenset[str], limit: int | None, scans: int) -> None:
        self.fresh = fresh
        self.limit = limit
        self.scans = scans              # scans applied when the read began
        self.table: dict[int, ProcInfo] | None = None
        self.dirty: set[int] = set()
        self.lost = False               # events were lost meanwhile: dirty is incomplete


class ProcessTrackers:
    """The vrrp_track_process executor: report(name, up) on the loop thread
    whenever a tracker's quorum state changes.  Call configure() from the
    running loop; the event source starts with the first tracker. The
    daemon reads /proc for new trackers ahead, off the loop (read_ahead):
    a full scan costs ~25 us a process."""

    def __init__(self, loop: asyncio.AbstractEventLoop, report: Callable[[str, bool], None],
                 *, scan_interval: float = 1.0, connector: bool = True, rcvbuf: int = RCVBUF,
                 proc: ProcSource | None = None) -> None:
        """scan_interval: seconds between /proc scans when there is no
        connector.  connector=False scans without trying it.  rcvbuf: the
        connector's receive buffer (keepalived's process_monitor_rcv_bufs)."""
        self.loop = loop
        self.rcvbuf = rcvbuf
        self.scan_interval = max(scan_interval, 0.01)
        self.proc: ProcSource = proc or ProcFs()
        self.counter = Counts(loop.call_later, report)
        self.mode = "connector" if connector else "scan"
        self._specs: dict[str, Spec] = {}
        # Name trackers by the name they match, so that an event costs one
        # lookup however many there are; command-line trackers are few.
        self._by_comm: dict[bytes, list[str]] = {}
        self._full: list[str] = []
        self._cmdline_limit: int | None = None
        self._started = False
        self._scanning = False
        self._closed = False
        self._connector: Connector | None = None
        self._tasks: set[asyncio.Task] = set()
        self._probe_task: asyncio.Task | None = None
        self._probe_pid: int | None = None
        self._probe_seen = asyncio.Event()
        # Scan mode: each PID as the last scan saw it; None: no baseline yet.
        self._cache: dict[int, ProcInfo] | None = None
        self._generation = 0
        # Connector overrun: a rescan is wanted; PIDs events touched while
        # it reads /proc off the loop (their events are newer than the scan).
        self._rescan_wanted = False
        self._rescan_task: asyncio.Task | None = None
        self._dirty: set[int] | None = None
        self._read_ahead: weakref.WeakSet[ReadAhead] = weakref.WeakSet()
        self._scans = 0                 # tables applied in scan mode, to tell an older one

    # -- API

    async def read_ahead(self, trackers: dict[str, TrackProcess]) -> ReadAhead | None:
        """/proc read on a worker thread for configure(trackers); None when no
        tracker is new. Events from the start of the read on are remembered,
        so the table is brought up to date when configure() uses it."""
        specs = _specs_of(trackers, quiet=True)
        fresh = frozenset(name for name, spec in specs.items() if self._specs.get(name) != spec)
        if not fresh:
            return None
        if not self._started and not self._closed:
            self._start()           # subscribe before the read: nothing falls in between
        ahead = ReadAhead(fresh, self._limit(specs), self._scans)
        self._read_ahead.add(ahead)
        try:
            ahead.table = await asyncio.to_thread(self.proc.read_processes, ahead.limit)
        except OSError as exc:
            log.error("process tracking: cannot read /proc: %s", exc)
            ahead.table = {}
        return ahead

    def configure(self, trackers: dict[str, TrackProcess],
                  ahead: ReadAhead | None = None) -> None:
        specs = _specs_of(trackers)
        for name in self._specs.keys() - specs.keys():
            self.counter.forget(name)
        fresh = sorted(name for name, spec in specs.items() if self._specs.get(name) != spec)
        self._specs = specs
        self._by_comm, self._full = {}, []
        for name, spec in specs.items():
            if spec.full_command:
                self._full.append(name)
            else:
                self._by_comm.setdefault(spec.name, []).append(name)
        self._cmdline_limit = self._limit(specs)
        for name in fresh:
            for problem in spec_problems(specs[name]):
                log.warning("vrrp_track_process %s: %s", name, problem)
        if not specs:
            if self.mode == "scan":
                self._cache = None
            return
        if not self._started and not self._closed:
            self._start()           # subscribe before the scan: nothing falls in between
        if not fresh:
            return
        # A scan already under way knows nothing of the new trackers.
        self._generation += 1
        table = self._table_for(set(fresh), ahead)
        for name in fresh:
            self.counter.replace(name, specs[name], self._matching(specs[name], table))
        if ahead is not None and ahead.lost and self.mode == "connector":
            self._want_rescan()         # the table missed what the lost events said
        if self.mode == "scan":
            if ahead is not None and ahead.scans != self._scans:
                # The scan loop applied a newer table meanwhile: diffing back
                # to this older one would undo what it saw (a process that
                # started would count as gone). The next scan counts afresh.
                self._cache = None
            else:
                self._apply_scan(table)

    def _table_for(self, fresh: set[str], ahead: ReadAhead | None) -> dict[int, ProcInfo]:
        if (ahead is not None and ahead.table is not None and fresh <= ahead.fresh
                and ahead.limit == self._cmdline_limit):
            self._read_ahead.discard(ahead)
            table = dict(ahead.table)
            for pid in ahead.dirty:          # a handful: what happened since the read
                info = self.proc.read_process(pid, self._cmdline_limit)
                if info is None:
                    table.pop(pid, None)
                else:
                    table[pid] = info
            return table
        # Without a read ahead (a caller that did not ask for one): here.
        try:
            return self.proc.read_processes(self._cmdline_limit)
        except OSError as exc:
            log.error("process tracking: cannot read /proc: %s", exc)
            return {}

    def status(self, name: str) -> bool | None:
        tracker = self.counter.trackers.get(name)
        return None if tracker is None else tracker.up

    def counts(self) -> dict[str, int]:
        return {name: len(t.pids) for name, t in self.counter.trackers.items()}

    async def close(self) -> None:
        self._closed = True
        if self._connector is not None:
            self._connector.close()
            self._connector = None
        tasks = [t for t in self._tasks if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)
        self._reap_probe(wait=0)
        self.counter.close()

    # -- start-up and mode

    def _start(self) -> None:
        self._started = True
        if self.mode == "scan":
            self._fall_back(None)
            return
        self._connector = Connector(self.loop, self._on_event, self._on_overrun,
                                    self._fall_back, self.rcvbuf)
        try:
            self._connector.open()
        except OSError as exc:
            self._connector = None
            self._fall_back(f"{exc.strerror or exc} (errno {exc.errno})")
            return
        self._probe_task = self._spawn(self._probe(), "process connector probe")

    def _fall_back(self, reason: str | None) -> None:
        if self._scanning or self._closed:
            return
        self._scanning = True
        if self._connector is not None:
            self._connector.close()
            self._connector = None
        self.mode = "scan"
        self._cache = None          # the first scan resyncs what events counted
        why = "" if reason is None else f" (process connector unavailable: {reason})"
        log.info("process tracking: /proc scan every %g s%s", self.scan_interval, why)
        self._spawn(self._scan_loop(), "process scan")

    async def _probe(self) -> None:
        """The kernel accepts a subscription it will never serve (another
        PID namespace, no CONFIG_PROC_EVENTS): start a child and wait for it
        to show up as an event."""
        if not self._start_probe_child():
            log.info("process tracking: kernel process connector")
            return
        try:
            await asyncio.wait_for(self._probe_seen.wait(), PROBE_TIMEOUT)
        except TimeoutError:
            if not self._closed:
                self._fall_back(f"no event for a test process within {PROBE_TIMEOUT:g} s")
        else:
            log.info("process tracking: kernel process connector")
        finally:
            await self._reap_probe_async()

    def _start_probe_child(self) -> bool:
        # posix_spawn returns the PID before the loop reads any event, so
        # the child's own events cannot be missed.
        argv = _probe_program()
        try:
            self._probe_pid = os.posix_spawn(argv[0], argv, os.environ)
        except OSError as exc:
            log.warning("process tracking: cannot start %s to test the process connector: "
                        "%s; trusting it", argv[0], exc)
            return False
        return True

    async def _reap_probe_async(self) -> None:
        # Polled, not waited for in a thread: a thread stuck in waitpid could
        # not be cancelled by close().  /bin/true is gone within milliseconds.
        for attempt in range(100):
            if self._reap_probe(wait=attempt):
                return
            await asyncio.sleep(0.01)

    def _reap_probe(self, wait: int) -> bool:
        pid = self._probe_pid
        if pid is None:
            return True
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid              # reaped by someone else
        if done == pid:
            self._probe_pid = None
            return True
        if wait == 50:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return False

    # -- connector events

    def _on_event(self, event: tuple) -> None:
        what, *args = event
        if what == PROC_EVENT_NONE:
            return
        pid = args[0]
        for ahead in self._read_ahead:
            ahead.dirty.add(pid)
        if pid == self._probe_pid and what in (PROC_EVENT_EXEC, PROC_EVENT_EXIT):
            self._probe_seen.set()
        if self.mode != "connector" or not self._specs:
            return
        if self._dirty is not None:
            self._dirty.add(pid)
        counts = self.counter
        if what == PROC_EVENT_FORK:
            counts.fork(args[1], pid)
        elif what == PROC_EVENT_EXIT:
            counts.exit(pid)
        elif what == PROC_EVENT_EXEC:
            info = self.proc.read_process(pid, self._cmdline_limit)
            if info is None:
                return              # gone already: its exit event follows
            counts.set_pid(pid, self._matches(info))
        elif what == PROC_EVENT_COMM:
            # A rename changes the name, not the command line: only the
            # name trackers look again (keepalived check_process_comm_change).
            names = [n for n, s in self._specs.items() if not s.full_command]
            counts.set_pid(pid, self._by_comm.get(args[1], ()), names)
        counts.settle()

    def _on_overrun(self) -> None:
        if not self._rescan_wanted:
            log.warning("process tracking: process events were lost (receive buffer now "
                        "%d B); counting again from /proc", self._connector.rcvbuf
                        if self._connector else 0)
        for ahead in self._read_ahead:
            ahead.lost = True
        self._want_rescan()

    def _want_rescan(self) -> None:
        self._rescan_wanted = True
        if self._rescan_task is None or self._rescan_task.done():
            self._rescan_task = self._spawn(self._rescan(), "process rescan")

    async def _rescan(self) -> None:
        # One pass per overrun burst: a new overrun during a pass asks for
        # another, so this ends as soon as the events stop overflowing.
        while self._rescan_wanted and not self._closed and self.mode == "connector":
            self._rescan_wanted = False
            await asyncio.sleep(RESCAN_SETTLE)
            self._dirty = set()
            limit, generation = self._cmdline_limit, self._generation
            try:
                table = await asyncio.to_thread(self.proc.read_processes, limit)
            except OSError as exc:
                log.error("process tracking: cannot read /proc: %s", exc)
                continue
            finally:
                dirty, self._dirty = self._dirty, None
            if generation != self._generation or self.mode != "connector":
                self._rescan_wanted = True   # reconfigured meanwhile: read again
                continue
            for name, spec in self._specs.items():
                tracker = self.counter.trackers.get(name)
                if tracker is None:
                    continue
                seen = self._matching(spec, table)
                self.counter.resync(name, (seen - dirty) | (tracker.pids & dirty))
            self.counter.settle()

    # -- scan mode

    async def _scan_loop(self) -> None:
        failed = False
        while not self._closed:
            if self._specs:
                limit, generation = self._cmdline_limit, self._generation
                try:
                    table = await asyncio.to_thread(self.proc.read_processes, limit)
                except OSError as exc:
                    if not failed:
                        log.error("process tracking: cannot read /proc: %s", exc)
                    failed = True
                else:
                    failed = False
                    # configure() scanned meanwhile: this table is older.
                    if generation == self._generation:
                        self._apply_scan(table)
            await asyncio.sleep(self.scan_interval)

    def _apply_scan(self, table: dict[int, ProcInfo]) -> None:
        self._scans += 1
        counts, old = self.counter, self._cache
        self._cache = table
        if old is None:
            for name, spec in self._specs.items():
                counts.resync(name, self._matching(spec, table))
            counts.settle()
            return
        for pid in old.keys() - table.keys():
            counts.exit(pid)
        for pid, info in table.items():
            before = old.get(pid)
            if before is not None and before.starttime == info.starttime:
                if before.comm != info.comm or before.cmdline != info.cmdline:
                    counts.set_pid(pid, self._matches(info))    # exec'd or renamed
                continue
            if before is not None:
                counts.exit(pid)                                 # PID reused
            counts.set_pid(pid, self._matches(info), forked_from=info.ppid)
        counts.settle()

    # -- helpers

    def _matches(self, info: ProcInfo) -> list[str]:
        matched = list(self._by_comm.get(info.comm, ()))
        matched += [name for name in self._full
                    if self._specs[name].matches(info.comm, info.cmdline)]
        return matched

    @staticmethod
    def _matching(spec: Spec, table: dict[int, ProcInfo]) -> set[int]:
        return {pid for pid, info in table.items() if spec.matches(info.comm, info.cmdline)}

    @staticmethod
    def _limit(specs: dict[str, Spec]) -> int | None:
        lengths = [s.cmdline_bytes() for s in specs.values() if s.full_command]
        return max(lengths) if lengths else None

    def _spawn(self, coro, what: str) -> asyncio.Task:
        task = spawn(coro, what)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
