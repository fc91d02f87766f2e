"""vrrp_track_process: keepalived's matching, quorum and delays event by event
on fake process tables and a fake clock, then real processes in /proc scan
mode and one exit through the kernel's process connector."""

import asyncio
import errno
import logging
import os
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time

import pytest

from hivrrp.config.diagnostics import Where
from hivrrp.config.model import TrackProcess
from hivrrp.tracking import processes
from hivrrp.tracking.processes import (
    PROC_EVENT_COMM,
    PROC_EVENT_EXEC,
    PROC_EVENT_EXIT,
    PROC_EVENT_FORK,
    PROC_EVENT_NONE,
    Counts,
    ProcessTrackers,
    ProcInfo,
    parse_event,
    spec_of,
    spec_problems,
)

HERE = Where("keepalived.conf", 1)


def tp(name="t", process="nginx", **kw) -> TrackProcess:
    return TrackProcess(name, HERE, process=process, **kw)


class FakeClock:
    """loop.call_later and nothing else: delays elapse when the test says so."""

    class Handle:
        def __init__(self, when, callback, args):
            self.when, self.callback, self.args, self.cancelled = when, callback, args, False

        def cancel(self):
            self.cancelled = True

    def __init__(self):
        self.now = 0.0
        self.pending = []

    def call_later(self, delay, callback, *args):
        handle = self.Handle(self.now + delay, callback, args)
        self.pending.append(handle)
        return handle

    def advance(self, seconds):
        end = self.now + seconds
        while True:
            due = [h for h in self.pending if not h.cancelled and h.when <= end]
            if not due:
                break
            handle = min(due, key=lambda h: h.when)
            self.pending.remove(handle)
            self.now = handle.when
            handle.callback(*handle.args)
        self.now = end


class Reports(list):
    def __call__(self, name, up):
        self.append((name, up))


# -- matching, as core/track_process.c check_params() and the parser leave it

def test_a_name_matches_the_process_name_exactly():
    spec = spec_of(tp(process="nginx"))
    assert spec.matches(b"nginx", None)
    assert not spec.matches(b"nginx2", None) and not spec.matches(b"ngin", None)
    assert not spec.matches(b"sshd", b"nginx\0")      # the command line plays no part


def test_a_name_longer_than_the_kernel_keeps_never_matches_and_says_why():
    spec = spec_of(tp(process="a_long_daemon_name"))       # 18 characters
    assert not spec.matches(b"a_long_daemon_n", None)     # what comm holds: 15
    assert "never matches" in spec_problems(spec)[0]
    assert spec_problems(spec_of(tp(process="a_long_daemon_n"))) == []


def test_full_command_compares_argv0_only():
    spec = spec_of(tp(process="/usr/sbin/nginx", full_command=True))
    assert spec.matches(b"nginx", b"/usr/sbin/nginx\0-g\0daemon off;\0")
    assert not spec.matches(b"nginx", b"nginx\0-g\0")
    assert not spec.matches(b"nginx", None)


def test_parameters_mean_an_exact_command_line_unless_param_match_says_otherwise():
    # The parser keeps params and leaves param_match unset; keepalived's
    # process handler turns that into an exact full-command match.
    spec = spec_of(tp(process="/bin/app", params=["-c", "x"]))
    assert spec.full_command and spec.match == "exact"
    assert spec.matches(b"app", b"/bin/app\0-c\0x\0")
    assert not spec.matches(b"app", b"/bin/app\0-c\0x\0-v\0")
    assert not spec.matches(b"app", b"/bin/app\0-c\0xy\0")
    assert not spec.matches(b"app", b"/bin/app\0-c\0")
    # A command line read only up to the longest configured one plus a byte
    # (as keepalived does) still shows as longer.
    assert not spec.matches(b"app", b"/bin/app\0-c\0x\0-"[:spec.cmdline_bytes()])


def test_partial_means_the_first_parameters_are_exactly_those():
    spec = spec_of(tp(process="/bin/app", params=["-c", "x"], param_match="partial",
                      full_command=True))
    assert spec.matches(b"app", b"/bin/app\0-c\0x\0")
    assert spec.matches(b"app", b"/bin/app\0-c\0x\0-v\0")
    assert not spec.matches(b"app", b"/bin/app\0-c\0xy\0")
    assert not spec.matches(b"app", b"/bin/app\0-v\0-c\0x\0")


def test_initial_lets_the_last_parameter_be_longer():
    spec = spec_of(tp(process="/bin/app", params=["-c", "x"], param_match="initial",
                      full_command=True))
    assert spec.matches(b"app", b"/bin/app\0-c\0x\0")
    assert spec.matches(b"app", b"/bin/app\0-c\0xy\0")
    assert spec.matches(b"app", b"/bin/app\0-c\0x\0-v\0")
    assert not spec.matches(b"app", b"/bin/app\0-c\0y\0")
    assert not spec.matches(b"app", b"/bin/app\0-d\0x\0")


def test_bare_param_match_means_no_parameters_at_all():
    spec = spec_of(tp(process="/bin/app", param_match="exact", full_command=True))
    assert spec.matches(b"app", b"/bin/app\0")
    assert not spec.matches(b"app", b"/bin/app\0-v\0")


def test_quorum_max_zero_means_the_process_must_not_run():
    spec = spec_of(tp(quorum_max=0))
    assert spec.in_range(0) and not spec.in_range(1)
    spec = spec_of(tp(quorum=2, quorum_max=3))
    assert [spec.in_range(n) for n in range(5)] == [False, False, True, True, False]
    assert spec_of(tp(process=None)) is None


# -- counting and delays (Counts: no /proc, fake clock)

def counts_with(clock, reports, **trackers):
    counts = Counts(clock.call_later, reports)
    for name, tracker in trackers.items():
        counts.replace(name, spec_of(tracker), set())
    reports.clear()
    return counts


def step(counts, change, *args, **kw):
    getattr(counts, change)(*args, **kw)
    counts.settle()


def test_quorum_changes_are_reported_once_each_way():
    clock, reports = FakeClock(), Reports()
    counts = counts_with(clock, reports, t=tp(quorum=2, quorum_max=3))
    for pid in (1, 2, 3, 4):
        step(counts, "set_pid", pid, ["t"])
    step(counts, "exit", 4)
    step(counts, "exit", 3)
    step(counts, "exit", 2)
    assert reports == [("t", True), ("t", False), ("t", True), ("t", False)]
    assert counts.trackers["t"].pids == {1}


def test_a_forked_child_counts_only_after_fork_delay():
    clock, reports = FakeClock(), Reports()
    counts = counts_with(clock, reports, t=tp(quorum=2, fork_delay=1.0))
    step(counts, "set_pid", 10, ["t"])            # exec: counted at once, one of two
    step(counts, "fork", 10, 11)
    clock.advance(0.5)
    step(counts, "exit", 11)                      # gone before the delay: never counted
    clock.advance(2)
    assert reports == []
    step(counts, "fork", 10, 12)
    clock.advance(0.9)
    assert reports == []
    clock.advance(0.2)
    assert reports == [("t", True)]


def test_fork_delay_also_covers_a_fork_above_quorum_max():
    # man keepalived.conf: quorum_max 1 "but beware forks": a fork that execs
    # something else within fork_delay does not bounce the tracker.
    clock, reports = FakeClock(), Reports()
    counts = counts_with(clock, reports, t=tp(quorum_max=1, fork_delay=0.5))
    step(counts, "set_pid", 10, ["t"])
    step(counts, "fork", 10, 11)
    clock.advance(0.3)
    step(counts, "set_pid", 11, [])               # the child exec'd another program
    clock.advance(1)
    assert reports == [("t", True)]


def test_a_lost_process_uncounts_only_after_terminate_delay():
    clock, reports = FakeClock(), Reports()
    counts = counts_with(clock, reports, t=tp(terminate_delay=1.0))
    step(counts, "set_pid", 10, ["t"])
    step(counts, "exit", 10)
    clock.advance(0.5)
    step(counts, "set_pid", 20, ["t"])            # restarted within the delay: no report
    clock.advance(2)
    assert reports == [("t", True)]
    step(counts, "exit", 20)
    clock.advance(0.99)
    assert reports == [("t", True)]
    clock.advance(0.02)
    assert reports == [("t", True), ("t", False)]


def test_exec_and_rename_are_not_delayed():
    # keepalived's check_process and comm change have no timers.
    clock, reports = FakeClock(), Reports()
    counts = counts_with(clock, reports, t=tp(fork_delay=5, terminate_delay=5))
    step(counts, "set_pid", 10, ["t"])
    assert reports == [("t", True)]
    step(counts, "set_pid", 10, [])
    assert reports == [("t", True), ("t", False)]


def test_a_child_inherits_every_tracker_of_its_parent_and_counts_once():
    clock, reports = FakeClock(), Reports()
    counts = counts_with(clock, reports, a=tp("a"), b=tp("b", quorum=2))
    step(counts, "set_pid", 10, ["a", "b"])
    step(counts, "fork", 99, 98)                  # untracked parent: nothing
    step(counts, "fork", 10, 11)
    step(counts, "set_pid", 11, ["a", "b"])       # it execs the same program: still one
    assert {n: len(t.pids) for n, t in counts.trackers.items()} == {"a": 2, "b": 2}
    assert reports == [("a", True), ("b", True)]
    step(counts, "exit", 11)
    step(counts, "exit", 10)
    assert counts.by_pid == {}
    assert reports[2:] == [("b", False), ("a", False)]


def test_a_resync_gains_after_fork_delay_and_loses_after_terminate_delay():
    clock, reports = FakeClock(), Reports()
    counts = counts_with(clock, reports, t=tp(fork_delay=1, terminate_delay=2))
    step(counts, "resync", "t", {1})
    clock.advance(0.9)
    assert reports == []
    clock.advance(0.2)
    step(counts, "resync", "t", set())
    clock.advance(1.9)
    assert reports == [("t", True)]
    clock.advance(0.2)
    assert reports == [("t", True), ("t", False)]


def test_a_failing_report_is_logged_and_counting_goes_on(caplog):
    clock = FakeClock()
    seen = []

    def report(name, up):
        seen.append(up)
        raise RuntimeError("instance gone")

    counts = Counts(clock.call_later, report)
    counts.replace("t", spec_of(tp()), set())
    step(counts, "set_pid", 1, ["t"])
    step(counts, "exit", 1)
    assert seen == [False, True, False]
    assert "reporting quorum up failed" in caplog.text
    assert counts.trackers["t"].up is False


# -- the executor on a fake process table

class FakeProc:
    def __init__(self):
        self.table = {}

    def read_process(self, pid, cmdline_limit):
        return self.table.get(pid)

    def read_processes(self, cmdline_limit):
        return dict(self.table)


def proc(comm, cmdline=None, start=1, ppid=1):
    return ProcInfo(start, ppid, comm, cmdline)


def offline(proc_source, reports, clock=None, mode="connector"):
    """An executor that neither subscribes nor scans on its own: the test
    feeds it events or scan tables."""
    trackers = ProcessTrackers(clock or FakeClock(), reports, proc=proc_source,
                               connector=mode == "connector")
    trackers._started = True
    return trackers


def test_configure_counts_new_trackers_at_once_and_keeps_unchanged_ones():
    fake, reports = FakeProc(), Reports()
    fake.table = {1: proc(b"nginx"), 2: proc(b"nginx"), 3: proc(b"sshd")}
    trackers = offline(fake, reports)
    trackers.configure({"web": tp("web", quorum=2), "ssh": tp("ssh", process="sshd")})
    assert sorted(reports) == [("ssh", True), ("web", True)]
    assert trackers.counts() == {"ssh": 1, "web": 2} and trackers.status("web") is True
    reports.clear()
    fake.table = {}                         # events (none here) would have told
    # A new line number and weight do not change what is counted.
    trackers.configure({"web": TrackProcess("web", Where("other.conf", 9), process="nginx",
                                            quorum=2, weight=-20),
                        "ssh": tp("ssh", process="sshd", quorum=2)})
    assert reports == [("ssh", False)]       # changed: counted again and reported
    assert trackers.counts() == {"ssh": 0, "web": 2}
    trackers.configure({"ssh": tp("ssh", process="sshd", quorum=2)})
    assert trackers.status("web") is None and trackers.counts() == {"ssh": 0}


def test_connector_events_move_the_counts():
    fake, reports = FakeProc(), Reports()
    trackers = offline(fake, reports)
    trackers.configure({"web": tp("web"), "cmd": tp("cmd", process="/bin/app",
                                                       params=["-x"])})
    assert sorted(reports) == [("cmd", False), ("web", False)]
    reports.clear()
    event = trackers._on_event

    fake.table[10] = proc(b"nginx", b"nginx\0")
    event((PROC_EVENT_EXEC, 10))
    event((PROC_EVENT_FORK, 11, 10))
    assert trackers.counts()["web"] == 2 and reports == [("web", True)]
    event((PROC_EVENT_COMM, 11, b"nginx: worker"))  # renamed away
    event((PROC_EVENT_EXIT, 10))
    assert trackers.counts()["web"] == 0 and reports[-1] == ("web", False)
    event((PROC_EVENT_COMM, 11, b"nginx"))          # and back
    assert trackers.counts()["web"] == 1 and reports[-1] == ("web", True)

    fake.table[20] = proc(b"app", b"/bin/app\0-x\0")
    event((PROC_EVENT_EXEC, 20))
    assert trackers.counts()["cmd"] == 1 and reports[-1] == ("cmd", True)
    event((PROC_EVENT_COMM, 20, b"other"))          # a rename leaves the command line
    assert trackers.counts()["cmd"] == 1
    fake.table[20] = proc(b"app", b"/bin/app\0-y\0")
    event((PROC_EVENT_EXEC, 20))                    # exec'd with other parameters
    assert trackers.counts()["cmd"] == 0 and reports[-1] == ("cmd", False)
    event((PROC_EVENT_EXEC, 30))                    # already gone: its exit follows
    event((PROC_EVENT_EXIT, 30))
    event((PROC_EVENT_NONE,))
    assert trackers.counts() == {"cmd": 0, "web": 1}


def test_scan_diffs_see_new_gone_exec_in_place_and_reused_pids():
    fake, reports, clock = FakeProc(), Reports(), FakeClock()
    trackers = offline(fake, reports, clock, mode="scan")
    fake.table = {10: proc(b"nginx", start=100)}
    trackers.configure({"web": tp("web", quorum=2, fork_delay=1)})
    assert reports == [("web", False)]
    reports.clear()

    def scan(table):
        fake.table = table
        trackers._apply_scan(dict(table))

    scan({10: proc(b"nginx", start=100), 11: proc(b"nginx", start=101, ppid=10)})
    assert reports == []                            # a fork of a counted one: delayed
    clock.advance(1.1)
    assert reports == [("web", True)]
    scan({10: proc(b"bash", start=100), 11: proc(b"nginx", start=101, ppid=10)})
    assert reports[-1] == ("web", False)            # 10 exec'd bash in place
    scan({10: proc(b"nginx", start=200, ppid=1), 11: proc(b"nginx", start=101, ppid=10)})
    assert reports[-1] == ("web", True)             # PID 10 reused by a new nginx
    scan({11: proc(b"nginx", start=101, ppid=10)})
    assert reports[-1] == ("web", False) and trackers.counts() == {"web": 1}


def test_events_during_a_rescan_beat_the_older_scan(monkeypatch):
    # After an overrun /proc is read off the loop; an exit seen meanwhile
    # must not be undone by the scan that still saw the process.
    monkeypatch.setattr(processes, "RESCAN_SETTLE", 0)
    reports = Reports()

    class SlowProc(FakeProc):
        def __init__(self):
            super().__init__()
            self.reading, self.release = threading.Event(), threading.Event()

        def read_processes(self, cmdline_limit):
            table = dict(self.table)
            if self.reading.is_set():
                return table
            self.reading.set()
            self.release.wait(5)
            return table

    async def scenario():
        fake = SlowProc()
        fake.table = {1: proc(b"nginx"), 2: proc(b"nginx")}
        fake.reading.set()
        trackers = ProcessTrackers(asyncio.get_running_loop(), reports, proc=fake)
        trackers._started = True
        trackers.configure({"web": tp("web", quorum=2)})
        fake.reading.clear()
        fake.table[3] = proc(b"nginx")              # missed by the lost events
        trackers._on_overrun()
        await asyncio.to_thread(fake.reading.wait, 5)
        trackers._on_event((PROC_EVENT_EXIT, 1))    # newer than the scan
        fake.release.set()
        await asyncio.wait_for(trackers._rescan_task, 5)
        counted = trackers.counter.trackers["web"].pids
        await trackers.close()
        return counted

    assert asyncio.run(scenario()) == {2, 3}
    assert reports == [("web", True), ("web", False), ("web", True)]


def datagram(what, *data, sender_idx=1, size=76):
    body = struct.pack("=IIQ", what, 0, 0) + struct.pack(f"={len(data)}i", *data)
    body = body.ljust(size - 36, b"\0")
    cn = struct.pack("=IIIIHH", sender_idx, 1, 0, 0, len(body), 0)
    return struct.pack("=IHHII", size, 3, 0, 0, 0) + cn + body


def test_connector_datagrams_parse_to_process_events_only():
    assert parse_event(datagram(PROC_EVENT_FORK, 10, 10, 11, 11)) == (PROC_EVENT_FORK, 11, 10)
    assert parse_event(datagram(PROC_EVENT_FORK, 10, 10, 12, 11)) is None     # a thread
    assert parse_event(datagram(PROC_EVENT_EXEC, 11, 11)) == (PROC_EVENT_EXEC, 11)
    assert parse_event(datagram(PROC_EVENT_EXIT, 11, 11, 0, 17)) == (PROC_EVENT_EXIT, 11)
    assert parse_event(datagram(PROC_EVENT_EXIT, 12, 11)) is None             # a thread
    comm = datagram(PROC_EVENT_COMM, 11, 11)
    comm = comm[:60] + b"worker\0\0\0\0\0\0\0\0\0\0" + comm[76:]
    assert parse_event(comm) == (PROC_EVENT_COMM, 11, b"worker")
    assert parse_event(datagram(PROC_EVENT_NONE)) == (PROC_EVENT_NONE,)
    assert parse_event(datagram(PROC_EVENT_EXEC, 1, 1, sender_idx=2)) is None
    assert parse_event(datagram(PROC_EVENT_EXEC, 1, 1)[:40]) is None
    assert parse_event(datagram(0x4, 1, 1)) is None                           # uid change


class FakeSocket:
    def __init__(self, script):
        self.script, self.options = list(script), []

    def recvfrom(self, size):
        item = self.script.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    def setsockopt(self, *option):
        self.options.append(option)


def test_an_overrun_grows_the_buffer_and_asks_for_a_rescan():
    events, overruns, failures = [], [], []
    conn = processes.Connector(None, events.append, lambda: overruns.append(1),
                               failures.append, rcvbuf=1 << 20)
    conn.sock = FakeSocket([
        OSError(errno.ENOBUFS, "No buffer space available"),
        (datagram(PROC_EVENT_EXEC, 5, 5), (0, 1)),
        (datagram(PROC_EVENT_EXEC, 6, 6), (4321, 1)),     # not from the kernel
        BlockingIOError()])
    conn._readable()
    assert overruns == [1] and events == [(PROC_EVENT_EXEC, 5)] and failures == []
    assert conn.rcvbuf == 2 << 20 and conn.sock.options[-1][-1] == 2 << 20
    conn.sock = FakeSocket([OSError(errno.EBADF, "Bad file descriptor")])
    conn._readable()
    assert failures == ["reading events: [Errno 9] Bad file descriptor"]


# -- real processes

@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    """The daemon runs on uvloop; both loops must do."""
    if request.param == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.run
    return asyncio.run


@pytest.fixture
def sleeper(tmp_path):
    """Starts copies of sleep under a name no other process has; kills
    every one by PID afterwards."""
    exe = tmp_path / f"hvtp_{secrets.token_hex(4)}"
    shutil.copy("/bin/sleep", exe)
    started = []

    def start(*args):
        p = subprocess.Popen([str(exe), *(args or ("30",))])
        started.append(p)
        return p

    start.exe, start.name = str(exe), exe.name
    yield start
    for p in started:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()


def kill(p):
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


async def until(condition, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_scan_mode_counts_real_processes_within_quorum_bounds(run, sleeper, caplog):
    caplog.set_level(logging.INFO, "hivrrp")
    reports = Reports()

    async def scenario():
        trackers = ProcessTrackers(asyncio.get_running_loop(), reports, scan_interval=0.05,
                                   connector=False)
        try:
            trackers.configure({"t": tp("t", process=sleeper.name, quorum=2, quorum_max=3)})
            assert trackers.mode == "scan" and reports == [("t", False)]
            procs = [sleeper()]
            await until(lambda: trackers.counts()["t"] == 1)
            procs.append(sleeper())
            await until(lambda: len(reports) == 2)
            procs.append(sleeper())
            await until(lambda: trackers.counts()["t"] == 3)
            procs.append(sleeper())
            await until(lambda: len(reports) == 3)
            kill(procs.pop())
            await until(lambda: len(reports) == 4)
            kill(procs.pop())
            kill(procs.pop())
            await until(lambda: len(reports) == 5)
            assert trackers.counts()["t"] == 1
        finally:
            await trackers.close()

    run(scenario())
    assert reports == [("t", False), ("t", True), ("t", False), ("t", True), ("t", False)]
    assert "process tracking: /proc scan every 0.05 s" in caplog.text


def test_scan_mode_matches_command_lines_and_must_not_run(run, sleeper):
    reports = Reports()

    async def scenario():
        trackers = ProcessTrackers(asyncio.get_running_loop(), reports, scan_interval=0.05,
                                   connector=False)
        try:
            first = sleeper("30")
            sleeper("31")
            trackers.configure({
                "exact": tp("exact", process=sleeper.exe, params=["30"]),
                "initial": tp("initial", process=sleeper.exe, params=["3"],
                              param_match="initial", full_command=True),
                "absent": tp("absent", process=sleeper.name, quorum_max=0),
            })
            assert trackers.counts() == {"absent": 2, "exact": 1, "initial": 2}
            assert sorted(reports) == [("absent", False), ("exact", True), ("initial", True)]
            kill(first)
            await until(lambda: trackers.counts()["exact"] == 0)
            assert trackers.status("exact") is False and trackers.counts()["initial"] == 1
        finally:
            await trackers.close()

    run(scenario())


def test_connector_mode_reports_an_exit_within_100_ms(run, sleeper, caplog):
    caplog.set_level(logging.INFO, "hivrrp")
    reports = Reports()
    when = {}

    def report(name, up):
        when[up] = time.monotonic()
        reports(name, up)

    async def scenario():
        trackers = ProcessTrackers(asyncio.get_running_loop(), report)
        try:
            p = sleeper()
            trackers.configure({"t": tp("t", process=sleeper.name)})
            await asyncio.wait_for(trackers._probe_task, 2)
            if trackers.mode != "connector":
                return caplog.text
            assert reports == [("t", True)]
            killed = time.monotonic()
            kill(p)
            await until(lambda: False in when, timeout=1)
            return when[False] - killed
        finally:
            await trackers.close()

    latency = run(scenario())
    if isinstance(latency, str):
        pytest.skip(f"process connector unavailable here: {latency.strip()}")
    assert "process tracking: kernel process connector" in caplog.text
    assert latency < 0.1, f"exit reported after {latency * 1000:.0f} ms"


@pytest.mark.parametrize("unshare, reason", [
    # The connector refuses a socket outside the initial network namespace...
    (["--net"], "Connection refused (errno 111)"),
    # ...and accepts one in another PID namespace but never sends it anything.
    (["--pid", "--fork", "--mount-proc"], "no event for a test process within 0.5 s"),
], ids=["netns", "pidns"])
def test_where_the_connector_cannot_serve_it_falls_back_to_scanning(unshare, reason):
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs root and unshare for namespaces")
    code = (
        "import asyncio, logging, sys\n"
        "from hivrrp.config.diagnostics import Where\n"
        "from hivrrp.config.model import TrackProcess\n"
        "from hivrrp.tracking.processes import ProcessTrackers\n"
        "logging.basicConfig(level=logging.INFO, stream=sys.stdout, format='%(message)s')\n"
        "async def main():\n"
        "    t = ProcessTrackers(asyncio.get_running_loop(), lambda n, u: None)\n"
        "    t.configure({'t': TrackProcess('t', Where('x', 1), process='no-such')})\n"
        "    if t._probe_task:\n"
        "        await t._probe_task\n"
        "    print('mode', t.mode)\n"
        "    await t.close()\n"
        "asyncio.run(main())\n")
    try:
        out = subprocess.run(["unshare", *unshare, sys.executable, "-c", code],
                             check=False, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("the fallback did not finish")
    if out.returncode != 0 and "unshare failed" in out.stderr:
        pytest.skip(f"no namespace here: {out.stderr.strip()}")
    assert out.returncode == 0, out.stderr
    assert "mode scan" in out.stdout
    assert ("process tracking: /proc scan every 1 s (process connector unavailable: "
            f"{reason})") in out.stdout


def read_ahead_now(trackers, specs):
    """read_ahead() needs a running loop only for its worker thread."""
    async def go():
        return await trackers.read_ahead(specs)
    return asyncio.run(go())


def test_scan_mode_never_diffs_back_to_an_older_read_ahead():
    """The scan loop applied a newer table while the read ahead was being
    read: applying the older one after it counted a process that had just
    started as gone (an unchanged tracker flapped)."""
    fake, reports, clock = FakeProc(), Reports(), FakeClock()
    trackers = offline(fake, reports, clock, mode="scan")
    fake.table = {10: proc(b"web")}
    trackers.configure({"A": tp("A", process="web")})
    assert reports == [("A", True)]
    fake.table = {}                          # the read ahead sees no web process yet
    ahead = read_ahead_now(trackers, {"A": tp("A", process="web"),
                                      "B": tp("B", process="db")})
    fake.table = {10: proc(b"web"), 11: proc(b"web", start=2)}
    trackers._apply_scan(dict(fake.table))   # the scan loop's newer table
    trackers.configure({"A": tp("A", process="web"), "B": tp("B", process="db")}, ahead)
    assert ("A", False) not in reports, reports
    assert trackers.counts()["A"] == 2


def test_events_lost_during_a_read_ahead_bring_a_rescan(monkeypatch):
    monkeypatch.setattr(processes, "RESCAN_SETTLE", 0)
    reports = Reports()

    async def scenario():
        fake = FakeProc()
        fake.table = {1: proc(b"nginx")}
        trackers = ProcessTrackers(asyncio.get_running_loop(), reports, proc=fake)
        trackers._started = True
        ahead = await trackers.read_ahead({"web": tp("web")})
        del fake.table[1]                   # its exit event is lost to an overrun
        trackers._on_overrun()
        # The rescan it starts is over before configure() (the daemon still
        # awaited something): it knew nothing of the new tracker.
        await asyncio.wait_for(trackers._rescan_task, 5)
        trackers.configure({"web": tp("web")}, ahead)
        for _ in range(100):
            if trackers.counts() == {"web": 0}:
                break
            await asyncio.sleep(0.01)
        counts = trackers.counts()
        await trackers.close()
        return counts

    assert asyncio.run(scenario()) == {"web": 0}
    assert reports[-1] == ("web", False)


def test_a_hub_closed_meanwhile_starts_no_process_tracker(tmp_path):
    from helpers.conf import load_text
    from hivrrp.tracking.hub import TrackerHub

    result = load_text(tmp_path, "vrrp_track_process P {\n    process worker\n}\n"
                       "vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 1\n"
                       "    priority 100\n    virtual_ipaddress {\n        192.0.2.1/24\n    }\n"
                       "    track_process {\n        P\n    }\n}\n")
    assert result.ok, result.errors

    async def scenario():
        hub = TrackerHub(asyncio.get_running_loop(), lambda names: None)
        preparing = asyncio.ensure_future(hub.prepare(result.config))
        await asyncio.sleep(0)               # in its worker thread
        await hub.close()                    # SIGTERM's shutdown meanwhile
        return await preparing, hub.processes

    ahead, processes = asyncio.run(scenario())
    assert ahead is None and processes is None
