"""vrrp_script trackers with real child processes (hivrrp.tracking.scripts)."""

import asyncio
import logging
import os
import shlex

import pytest
import uvloop

from hivrrp.config.diagnostics import Where
from hivrrp.config.model import Script, VrrpScript
from hivrrp.notify import scriptsec
from hivrrp.tracking.scripts import ScriptTrackers, _Script

HERE = Where("keepalived.conf", 1)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request):
    runner = asyncio.run if request.param == "asyncio" else uvloop.run
    return lambda coro: runner(asyncio.wait_for(coro, 10))


def sh(code: str, **kw) -> VrrpScript:
    # Short intervals keep the tests quick; a timeout of its own keeps a
    # loaded machine from turning a slow start into a timed-out failure.
    kw.setdefault("timeout", 5)
    argv = ["/bin/sh", "-c", code]
    return VrrpScript(kw.pop("name", "chk"), HERE, Script(shlex.join(argv), argv), **kw)


def planned(tmp_path, codes, **kw) -> VrrpScript:
    """A script whose n-th run writes n to `count` and exits with the n-th
    line of `plan` (0 once the plan is used up)."""
    (tmp_path / "plan").write_text("".join(f"{c}\n" for c in codes))
    return sh(f'cd {shlex.quote(str(tmp_path))}; n=$(( $(cat count 2>/dev/null || echo 0) + 1 )); '
              f'echo $n > count.new; mv count.new count; c=$(sed -n "${{n}}p" plan); '
              f'exit ${{c:-0}}', **kw)


def runs(tmp_path) -> int:
    try:
        return int((tmp_path / "count").read_text())
    except FileNotFoundError:
        return 0


async def until(pred, limit=3.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while not pred():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


def test_rise_and_fall_counted_per_run(run, tmp_path):
    # Run 1 succeeds (first result decides: up), runs 2-4 fail (down at the
    # third failure), runs 5-6 succeed (up at the second success).
    vs = planned(tmp_path, [0, 1, 1, 1, 0, 0], interval=0.03, rise=2, fall=3)

    async def scenario():
        reports = []
        trackers = ScriptTrackers(asyncio.get_running_loop(),
                                  lambda name, up: reports.append((name, up, runs(tmp_path))))
        trackers.configure({"chk": vs})
        assert trackers.status("chk") is None
        await until(lambda: runs(tmp_path) >= 9)
        status = trackers.status("chk")
        await trackers.close()
        return reports, status

    reports, status = run(scenario())
    assert reports == [("chk", True, 1), ("chk", False, 4), ("chk", True, 6)]
    assert status is True


def test_first_failure_reports_down(run):
    async def scenario():
        reports = []
        trackers = ScriptTrackers(asyncio.get_running_loop(),
                                  lambda *r: reports.append(r))
        trackers.configure({"chk": sh("exit 3", interval=0.05, rise=4, fall=4)})
        await until(lambda: reports)
        await trackers.close()
        return reports

    assert run(scenario()) == [("chk", False)]


def test_hanging_script_killed_at_timeout_and_not_doubled(run, tmp_path, caplog):
    starts = tmp_path / "starts"
    vs = sh(f"echo x >> {shlex.quote(str(starts))}; exec sleep 30",
            interval=0.1, timeout=0.5, fall=1)

    async def scenario():
        loop = asyncio.get_running_loop()
        reports = []
        trackers = ScriptTrackers(loop, lambda *r: reports.append((loop.time(), r)))
        t0 = loop.time()
        trackers.configure({"chk": vs})
        await until(lambda: reports)
        # Four intervals went by while the first run hung: still one start.
        started_before = starts.read_text().count("x")
        await until(lambda: starts.read_text().count("x") >= 2)
        await trackers.close()
        return t0, reports, started_before

    with caplog.at_level(logging.INFO, logger="hivrrp"):
        t0, reports, started_before = run(scenario())
    (when, report), = reports
    assert report == ("chk", False)
    assert 0.45 <= when - t0 < 1.5
    assert started_before == 1
    skips = [r for r in caplog.records if "still running, skipping" in r.getMessage()]
    # Once per hung run (the second run was closed before it could hang long).
    assert 1 <= len(skips) <= 2
    assert any("timed out" in r.getMessage() for r in caplog.records)


def test_unchanged_reconfigure_keeps_counters(run, tmp_path):
    vs = planned(tmp_path, [0], interval=0.05, fall=3)

    async def scenario():
        reports = []
        trackers = ScriptTrackers(asyncio.get_running_loop(), lambda *r: reports.append(r))
        trackers.configure({"chk": vs})
        await until(lambda: reports)
        # Same script from a re-read config: another line, another weight.
        again = planned(tmp_path, [0], interval=0.05, fall=3, weight=-20)
        again.where = Where("keepalived.conf", 40)
        before = runs(tmp_path)
        trackers.configure({"chk": again})
        assert trackers.status("chk") is True
        await until(lambda: runs(tmp_path) >= before + 3)
        await trackers.close()
        return reports

    assert run(scenario()) == [("chk", True)]


def test_changed_reconfigure_restarts_the_script_but_keeps_its_status(run, tmp_path):
    # keepalived's clear_diff_script carries a script's status across a reload
    # by name: a failing weighted script keeps its penalty, a healthy one its
    # bonus, until `fall` (or `rise`) results of the new definition say otherwise.
    runs = tmp_path / "runs"

    async def scenario():
        reports = []

        def report(name, up):   # with how many failed runs there were by then
            count = len(runs.read_text().split()) if runs.exists() else 0
            reports.append((name, up, count))

        trackers = ScriptTrackers(asyncio.get_running_loop(), report)
        trackers.configure({"chk": sh("exit 0", interval=0.05)})
        await until(lambda: reports == [("chk", True, 0)])
        trackers.configure({"chk": sh(f"echo x >> {runs}; exit 1", interval=0.05, fall=3)})
        assert trackers.status("chk") is True
        await until(lambda: len(reports) == 2)
        await trackers.close()
        return reports

    assert run(scenario()) == [("chk", True, 0), ("chk", False, 3)]


def test_removed_script_child_is_killed(run, tmp_path):
    pidfile = tmp_path / "pid"
    vs = sh(f"echo $$ > {shlex.quote(str(pidfile))}; exec sleep 30", interval=5)

    def alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    async def scenario():
        reports = []
        trackers = ScriptTrackers(asyncio.get_running_loop(), lambda *r: reports.append(r))
        trackers.configure({"chk": vs})
        await until(lambda: pidfile.exists() and pidfile.read_text().strip())
        pid = int(pidfile.read_text())
        assert alive(pid)
        trackers.configure({})
        await until(lambda: not alive(pid))
        assert trackers.status("chk") is None
        await trackers.close()
        return reports

    assert run(scenario()) == []


def test_close_kills_running_children(run, tmp_path):
    pidfile = tmp_path / "pid"
    vs = sh(f"echo $$ > {shlex.quote(str(pidfile))}; exec sleep 30", interval=5)

    async def scenario():
        loop = asyncio.get_running_loop()
        trackers = ScriptTrackers(loop, lambda *r: None)
        trackers.configure({"chk": vs})
        await until(lambda: pidfile.exists() and pidfile.read_text().strip())
        t0 = loop.time()
        await trackers.close()
        assert loop.time() - t0 < 2
        with pytest.raises(ProcessLookupError):
            os.kill(int(pidfile.read_text()), 0)

    run(scenario())


def test_insecure_script_never_runs(run, tmp_path, caplog):
    starts = tmp_path / "starts"
    vs = sh(f"touch {shlex.quote(str(starts))}", interval=0.02)

    async def scenario():
        reports = []
        trackers = ScriptTrackers(asyncio.get_running_loop(), lambda *r: reports.append(r),
                                  secure=lambda script: script.argv[0] != "/bin/sh")
        trackers.configure({"chk": vs})
        trackers.configure({"chk": vs})      # logged once, not at every reload
        await asyncio.sleep(0.15)
        assert trackers.disabled == {"chk"}
        assert trackers.status("chk") is False
        await trackers.close()
        return reports

    with caplog.at_level(logging.INFO, logger="hivrrp"):
        assert run(scenario()) == []
    assert not starts.exists()
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs.count("Disabling track script chk: refused by script security; "
                      "instances tracking it ignore it") == 1


def test_a_missing_script_is_disabled_as_not_found_not_as_refused(run, tmp_path, caplog):
    # Issue 18 point 9: keepalived says "Disabling track script chk since not
    # found/accessible"; "refused by script security" sent operators looking
    # at permissions for a script that is not there.
    missing = str(tmp_path / "missing.sh")
    vs = VrrpScript("chk", HERE, Script(missing, [missing]))
    report = scriptsec.check_scripts([vs.script], enabled=False, script_user="root")
    assert report.messages == [f"script {missing!r} disabled: {missing} not found"]

    async def scenario():
        trackers = ScriptTrackers(asyncio.get_running_loop(), lambda *r: None,
                                  secure=report.allows)
        trackers.configure({"chk": vs})
        assert trackers.disabled == {"chk"}
        await trackers.close()

    with caplog.at_level(logging.INFO, logger="hivrrp"):
        run(scenario())
    msgs = [r.getMessage() for r in caplog.records]
    assert msgs == [f"Disabling track script chk: {missing} not found; "
                    "instances tracking it ignore it"]


@pytest.mark.skipif(os.geteuid() != 0, reason="ownership checks need root")
def test_an_insecure_script_is_said_to_be_refused_by_script_security(run, tmp_path, caplog):
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir()
    unsafe.chmod(0o777)
    path = unsafe / "chk.sh"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    vs = VrrpScript("chk", HERE, Script(str(path), [str(path)], "root"))
    report = scriptsec.check_scripts([vs.script], enabled=True)

    async def scenario():
        trackers = ScriptTrackers(asyncio.get_running_loop(), lambda *r: None,
                                  secure=report.allows)
        trackers.configure({"chk": vs})
        await trackers.close()

    with caplog.at_level(logging.INFO, logger="hivrrp"):
        run(scenario())
    assert [r.getMessage() for r in caplog.records] == [
        f"Disabling track script chk: refused by script security: directory {unsafe} is "
        "writable by non-root users (mode 0777); instances tracking it ignore it"]


def test_failing_security_check_fails_closed(run):
    def broken(script):
        raise OSError("stat failed")

    async def scenario():
        trackers = ScriptTrackers(asyncio.get_running_loop(), lambda *r: None, secure=broken)
        trackers.configure({"chk": sh("exit 0")})
        assert trackers.disabled == {"chk"}
        await trackers.close()

    run(scenario())


def test_start_error_counts_as_failure(run, tmp_path):
    argv = [str(tmp_path / "missing")]
    vs = VrrpScript("chk", HERE, Script(argv[0], argv), interval=0.05, timeout=5)

    async def scenario():
        reports = []
        trackers = ScriptTrackers(asyncio.get_running_loop(), lambda *r: reports.append(r))
        trackers.configure({"chk": vs})
        await until(lambda: reports)
        await trackers.close()
        return reports

    assert run(scenario()) == [("chk", False)]


def test_timeout_zero_means_interval():
    vs = sh("exit 0", interval=2.5, timeout=0)
    assert _Script(None, vs).timeout == 2.5
    assert _Script(None, sh("exit 0", interval=2.5, timeout=1)).timeout == 1
