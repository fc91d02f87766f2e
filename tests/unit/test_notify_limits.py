"""Notify scripts at scale: no timeout by default (as keepalived), a warning
for a long run, a configurable bound and timeout, the running/queued gauge."""

import asyncio
import collections
import logging
import os
import selectors
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.conf import load_text
from helpers.fakedaemon import started
from helpers.plans import ADDRESSES, LINKS, instance_text
from helpers.scripts import alive, make
from hivrrp.config.model import Script
from hivrrp.notify import notifier as notify
from hivrrp.notify import scriptrun
from hivrrp.notify.events import Notifications, security_of
from hivrrp.notify.notifier import Notifier
from hivrrp.ops.metrics import Metrics

# The fake clock: loop time runs this much faster than real time.
SPEED = 100.0


def notifications(loop, cfg) -> Notifications:
    # The daemon judges the scripts off the loop first (security_off_loop).
    return Notifications(loop, cfg, security_of(cfg))


class _FastSelector(selectors.DefaultSelector):
    def select(self, timeout=None):
        return super().select(None if timeout is None else timeout / SPEED)


class FastClockLoop(asyncio.SelectorEventLoop):
    """An asyncio loop whose clock runs SPEED times faster than the real one:
    timers (asyncio.timeout, call_later) fire early in real time, while child
    processes run in real time. A 0.3 s script lasts 30 s of loop time."""

    def __init__(self):
        super().__init__(_FastSelector())
        self._origin = time.monotonic()

    def time(self):
        return self._origin + (time.monotonic() - self._origin) * SPEED


def run_fast(coro):
    with asyncio.Runner(loop_factory=FastClockLoop) as runner:
        return runner.run(asyncio.wait_for(coro, 60 * SPEED))


GLOBAL = "global_defs {{\n{}}}\n"


def config(tmp_path, global_lines=""):
    result = load_text(tmp_path, GLOBAL.format(global_lines)
                       + instance_text("VI_1", 51, ["192.0.2.51/24"]))
    assert result.ok, result.errors
    return result.config


# --- timeout and warning --------------------------------------------------------------


def test_the_default_is_no_timeout_a_script_past_the_old_10s_runs_to_its_end(tmp_path, caplog):
    pid_file = tmp_path / "pid"
    slow = make(tmp_path, "slow.sh", f"echo $$ > {pid_file}\nsleep 0.4\n")
    quick = make(tmp_path, "quick.sh", "true\n")

    async def scenario():
        loop = asyncio.get_running_loop()
        n = notifications(loop, config(tmp_path)).notifier
        begun = loop.time()
        n.instance("VI_1", "MASTER", 100, {"master": slow})
        n.instance("VI_2", "MASTER", 100, {"master": quick})
        await n.close(100 * SPEED)
        return n.runs, loop.time() - begun

    caplog.set_level(logging.WARNING, logger="hivrrp")
    runs, lasted = run_fast(scenario())
    assert lasted > 35          # loop seconds: past the old 10 s kill and the 30 s warning
    assert runs == {"ok": 2}    # not killed
    # Warned once, naming the instance, the command and its pid; not for the quick one.
    warnings = [r.getMessage() for r in caplog.records if "still running" in r.getMessage()]
    pid = int(pid_file.read_text())
    assert warnings == [(f"notify_master of INSTANCE VI_1: {slow.command} (pid {pid}) still "
                         "running after 30s; no timeout is set, so it is not killed "
                         "(its instance's later notifies wait)")]


def test_the_warning_delay_is_a_parameter(tmp_path, caplog):
    slow = make(tmp_path, "slow.sh", "sleep 0.3\n")

    async def scenario():
        n = Notifier(warn_after=0.05)
        n.instance("VI_1", "BACKUP", 100, {"any": slow})
        await n.close(5)
        return n.runs

    assert asyncio.run(scenario()) == {"ok": 1}
    assert caplog.text.count("still running after 0.05s") == 1
    assert f"{slow.command} INSTANCE VI_1 BACKUP 100 (pid " in caplog.text


def test_a_configured_timeout_kills_the_script_and_its_instance_moves_on(tmp_path):
    pid_file = tmp_path / "pid"
    hung = make(tmp_path, "hung.sh", f"echo $$ > {pid_file}\nexec sleep 100\n")
    after = make(tmp_path, "after.sh", f"echo ran > {tmp_path}/after\n")

    async def scenario():
        cfg = config(tmp_path, "    hivrrp_notify_script_timeout 0.3\n")
        assert cfg.global_defs.notify_script_timeout == 0.3
        n = notifications(asyncio.get_running_loop(), cfg).notifier
        n.instance("VI_1", "MASTER", 100, {"master": hung})
        n.instance("VI_1", "BACKUP", 100, {"backup": after})
        await n.close(5)
        return n.runs

    begun = time.monotonic()
    assert asyncio.run(scenario()) == {"timed_out": 1, "ok": 1}
    assert time.monotonic() - begun < 3
    assert (tmp_path / "after").read_text() == "ran\n"
    assert not alive(int(pid_file.read_text()))


@pytest.mark.parametrize("lines, timeout, bound", [
    ("", None, 64),
    ("    hivrrp_notify_script_timeout 0\n", None, 64),      # 0: none, explicitly
    ("    hivrrp_notify_script_timeout 2.5\n    hivrrp_notify_script_concurrency 256\n",
     2.5, 256),
])
def test_keywords_and_their_defaults(tmp_path, lines, timeout, bound):
    g = config(tmp_path, lines).global_defs
    assert (g.notify_script_timeout, g.notify_script_concurrency) == (timeout, bound)


@pytest.mark.parametrize("line, needle", [
    ("hivrrp_notify_script_concurrency 0", "out of range 1..65535"),
    ("hivrrp_notify_script_timeout -1", "out of range 0..86400"),
    ("hivrrp_notify_script_timeout soon", "not a number of seconds"),
])
def test_bad_values_are_config_errors(tmp_path, line, needle):
    result = load_text(tmp_path, GLOBAL.format(f"    {line}\n")
                       + instance_text("VI_1", 51, ["192.0.2.51/24"]))
    assert not result.ok
    assert any(needle in e.message for e in result.errors), result.errors


def test_hivrrp_only_keywords_are_prefixed_and_listed():
    from hivrrp.config import keywords
    from hivrrp.config.sections.global_defs import GLOBAL_HANDLERS
    ours = {k for k in GLOBAL_HANDLERS if k.startswith("hivrrp_")}
    assert ours == keywords.HIVRRP_GLOBAL
    assert {"hivrrp_notify_script_timeout", "hivrrp_notify_script_concurrency"} <= ours


# --- the bound, per-instance order, the gauge --------------------------------------------


class FakeRuns:
    """Stands in for scriptrun.run: each run waits until released; records
    what runs at once and in which order each instance's runs start."""

    def __init__(self):
        self.running = 0
        self.most = 0
        self.at_start: list[int] = []      # how many ran (itself included) as each started
        self.started: dict[str, list[str]] = collections.defaultdict(list)
        self.gate = asyncio.Event()
        self.gate.set()
        self.pause = 0.0

    async def __call__(self, argv, timeout, *, identity=None, env=None, started=None):
        self.running += 1
        self.most = max(self.most, self.running)
        self.at_start.append(self.running)
        self.started[argv[2]].append(argv[4])     # notify's INSTANCE name STATE priority
        try:
            await self.gate.wait()
            await asyncio.sleep(self.pause)
        finally:
            self.running -= 1
        return scriptrun.Outcome(ok=True, returncode=0)


GENERIC = Script(command="/bin/true", argv=["/bin/true"])  # passes script security


def fail_over(n, count):
    """`count` instances become MASTER at once, each with the generic notify."""
    for inst in range(count):
        n.instance(f"VI_{inst}", "MASTER", 100, {"any": GENERIC})


async def until_running(fake, count):
    for _ in range(500):
        if fake.running == count:
            return
        await asyncio.sleep(0.001)


def test_the_configured_bound_is_honoured_and_each_instance_keeps_its_order(tmp_path,
                                                                               monkeypatch):
    fake = FakeRuns()
    fake.pause = 0.002
    monkeypatch.setattr(notify.scriptrun, "run", fake)

    async def scenario():
        cfg = config(tmp_path, "    hivrrp_notify_script_concurrency 5\n")
        n = notifications(asyncio.get_running_loop(), cfg).notifier
        for priority in range(1, 9):
            for inst in range(40):
                n.instance(f"VI_{inst}", "MASTER", priority, {"any": GENERIC})
        await n.close(30)
        return n.runs

    assert asyncio.run(scenario()) == {"ok": 320}
    assert fake.most == 5
    assert all(seq == [str(p) for p in range(1, 9)] for seq in fake.started.values())
    assert len(fake.started) == 40


def test_a_reload_resizes_the_bound_and_changes_the_timeout(tmp_path, monkeypatch):
    fake = FakeRuns()
    monkeypatch.setattr(notify.scriptrun, "run", fake)
    timeouts = []

    async def recording(argv, timeout, **kw):
        timeouts.append(timeout)
        return await fake(argv, timeout, **kw)
    monkeypatch.setattr(notify.scriptrun, "run", recording)

    async def scenario():
        loop = asyncio.get_running_loop()
        wiring = notifications(loop, config(tmp_path, "    hivrrp_notify_script_concurrency 4\n"))
        n = wiring.notifier
        fake.gate.clear()
        fail_over(n, 20)
        await asyncio.sleep(0.05)
        seen = [(n.running, n.queued)]
        reloaded = config(tmp_path, "    hivrrp_notify_script_concurrency 10\n"
                                    "    hivrrp_notify_script_timeout 7\n")
        wiring.configure(reloaded, security_of(reloaded))
        await asyncio.sleep(0.05)
        seen.append((n.running, n.queued))
        fake.gate.set()
        await n.close(5)
        return seen

    assert asyncio.run(scenario()) == [(4, 16), (10, 10)]
    assert fake.most == 10
    assert timeouts[:4] == [None] * 4 and set(timeouts[4:]) == {7.0}


def test_shrinking_the_bound_waits_for_running_scripts_then_holds(monkeypatch):
    fake = FakeRuns()
    monkeypatch.setattr(notify.scriptrun, "run", fake)

    async def scenario():
        n = Notifier(concurrency=6)
        fake.gate.clear()
        fail_over(n, 30)
        await asyncio.sleep(0.05)
        assert (n.running, n.queued) == (6, 24)
        n.set_limits(2, None)           # the 6 running go on; the next start when 1 is left
        fake.pause = 0.01               # long enough for the next runs to overlap
        fake.gate.set()
        await n.close(5)
        return n.runs

    assert asyncio.run(scenario()) == {"ok": 30}
    assert fake.at_start[:6] == [1, 2, 3, 4, 5, 6]
    assert max(fake.at_start[6:]) == 2


def test_scripts_start_one_per_loop_turn_so_forks_do_not_add_up_to_one_stall(monkeypatch):
    fake = FakeRuns()
    turns = []
    turn = [0]

    def tick():
        turn[0] += 1
        asyncio.get_running_loop().call_soon(tick)

    async def recording(argv, timeout, **kw):
        turns.append(turn[0])
        return await fake(argv, timeout, **kw)
    monkeypatch.setattr(notify.scriptrun, "run", recording)

    async def scenario():
        tick()
        n = Notifier(concurrency=50)
        fake.gate.clear()
        fail_over(n, 50)
        await until_running(fake, 50)
        fake.gate.set()
        await n.close(5)
        return n.runs

    assert asyncio.run(scenario()) == {"ok": 50}
    assert fake.most == 50                      # all 50 ran at once: the bound allowed it
    assert len(set(turns)) == 50                # but no two started in the same loop turn


def test_a_mass_failover_makes_tasks_for_the_bound_not_for_every_instance(monkeypatch):
    fake = FakeRuns()
    monkeypatch.setattr(notify.scriptrun, "run", fake)

    async def scenario():
        n = Notifier(concurrency=8)
        fake.gate.clear()
        before = len(asyncio.all_tasks())
        fail_over(n, 2000)
        await until_running(fake, 8)
        tasks = len(asyncio.all_tasks()) - before
        counts = (n.running, n.queued)
        fake.gate.set()
        await n.close(30)
        return tasks, counts, n.runs

    tasks, counts, runs = asyncio.run(scenario())
    assert counts == (8, 1992)
    assert tasks <= 8 * 2          # each running event: its own task and its script's
    assert runs == {"ok": 2000}


def scrape_gauge(metrics) -> dict[str, float]:
    body = b"".join(metrics.app({"PATH_INFO": "/metrics"}, lambda status, headers: None))
    return {s.labels["state"]: s.value
            for family in text_string_to_metric_families(body.decode())
            if family.name == "hivrrp_notify_scripts" for s in family.samples}


def test_the_gauge_counts_running_and_queued_scripts(tmp_path, monkeypatch):
    fake = FakeRuns()
    monkeypatch.setattr(notify.scriptrun, "run", fake)
    own = Script(command="/bin/true own", argv=["/bin/true", "own", "INSTANCE", "x", "MASTER"])

    async def scenario():
        d = await started(tmp_path, instance_text("VI_1", 51, ["192.0.2.51/24"]), LINKS,
                          ADDRESSES, monkeypatch)
        n = d.notifications.notifier
        n.set_limits(3, None)
        metrics = Metrics(d)
        seen = [scrape_gauge(metrics)]
        fake.gate.clear()
        # Five instances with two scripts an event (3 slots: 3 run, 7 wait), and a
        # second event of VI_0 queued behind its first.
        for inst in range(5):
            n.instance(f"VI_{inst}", "MASTER", 100, {"master": own, "any": GENERIC})
        n.instance("VI_0", "BACKUP", 100, {"any": GENERIC})
        await asyncio.sleep(0.05)
        seen.append(scrape_gauge(metrics))
        fake.gate.set()
        for _ in range(100):
            if n.running == n.queued == 0:
                break
            await asyncio.sleep(0.01)
        seen.append(scrape_gauge(metrics))
        await d.shutdown()
        return seen

    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == [
        {"running": 0, "queued": 0}, {"running": 3, "queued": 8}, {"running": 0, "queued": 0}]


def test_the_gauge_drops_to_zero_when_close_gives_up(tmp_path, monkeypatch):
    fake = FakeRuns()
    monkeypatch.setattr(notify.scriptrun, "run", fake)

    async def scenario():
        n = Notifier(concurrency=2, backlog=2)
        fake.gate.clear()
        for seq in range(5):            # 3 dropped by the backlog, counted out of "queued"
            for inst in range(4):
                n.instance(f"VI_{inst}", "MASTER", seq, {"any": GENERIC})
        await asyncio.sleep(0.05)
        during = (n.running, n.queued)
        await n.close(0.05)
        return during, (n.running, n.queued), n.runs

    during, after, runs = asyncio.run(scenario())
    assert during == (2, 6)
    assert after == (0, 0)
    assert runs == {"dropped": 12 + 6, "killed": 2}


# --- the FIFO ---------------------------------------------------------------------------


def test_a_mass_failover_fits_in_the_fifo_with_no_reader_yet(tmp_path):
    fifo = tmp_path / "fifo"

    async def scenario():
        n = Notifier(fifo_paths=[str(fifo)])
        for i in range(10000):          # 10,000 instances' lines, 30-32 bytes each
            n.instance(f"VI_{i}", "MASTER", 100, {})
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            data = b""
            while data.count(b"\n") < 10000:
                try:
                    data += os.read(reader, 1 << 16)
                except BlockingIOError:     # all there was: lines were dropped
                    break
        finally:
            os.close(reader)
        await n.close(1)
        return data.decode().splitlines(), n.fifo_dropped

    lines, dropped = asyncio.run(scenario())
    assert dropped == 0
    assert lines[0] == 'INSTANCE "VI_0" MASTER 100' and lines[-1] == 'INSTANCE "VI_9999" MASTER 100'
