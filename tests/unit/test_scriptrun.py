"""scriptrun: one external command, run and always cleaned up, on both loops."""

import asyncio
import os
import pwd
import signal
import time

import pytest

from helpers.scripts import alive
from hivrrp.notify import scriptrun

uvloop = pytest.importorskip("uvloop")


@pytest.fixture(params=["asyncio", "uvloop"])
def run_loop(request):
    return asyncio.run if request.param == "asyncio" else uvloop.run


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def wait_for_file(path, limit=2.0):
    deadline = time.monotonic() + limit
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.01)
    return path.read_text()


def test_exit_status_and_arguments_are_reported_exactly(tmp_path, run_loop):
    out = tmp_path / "args"
    cmd = script(tmp_path, "s.sh", f'printf "%s|" "$@" > {out}\nexit "$1"\n')
    ok = run_loop(scriptrun.run([cmd, "0", "two words", ""], 2))
    assert out.read_text() == "0|two words||"
    assert ok == scriptrun.Outcome(ok=True, returncode=0)
    bad = run_loop(scriptrun.run([cmd, "3"], 2))
    assert (bad.ok, bad.returncode, bad.signal, bad.timed_out, bad.error) == (False, 3, None, False, None)


def test_child_has_its_own_process_group_and_null_stdio(tmp_path, run_loop):
    out = tmp_path / "facts"
    cmd = script(tmp_path, "s.sh",
                 # $(...) so that readlink's own redirection is not what we see
                 'fds="$(readlink /proc/$$/fd/0 /proc/$$/fd/1 /proc/$$/fd/2)"\n'
                 f'cut -d" " -f1,5 /proc/$$/stat > {out}\n'
                 f'echo "$fds" >> {out}\n')
    assert run_loop(scriptrun.run([cmd], 2)).ok
    first, *fds = out.read_text().splitlines()
    pid, pgid = first.split()
    assert pid == pgid and int(pgid) != os.getpgid(0)
    assert fds == ["/dev/null"] * 3
    assert not alive(int(pid))            # reaped, not left a zombie


def test_timeout_terminates_the_whole_process_group(tmp_path, run_loop):
    pids = tmp_path / "pids"
    cmd = script(tmp_path, "s.sh", f"sleep 100 &\necho $$ $! > {pids}\nwait\n")
    started = time.monotonic()
    outcome = run_loop(scriptrun.run([cmd], 0.3))
    assert time.monotonic() - started < 1.5
    assert (outcome.ok, outcome.timed_out, outcome.signal) == (False, True, signal.SIGTERM)
    shell, child = map(int, pids.read_text().split())
    deadline = time.monotonic() + 1
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(shell) and not alive(child)


def test_a_script_ignoring_sigterm_is_killed_after_the_grace(tmp_path, run_loop, monkeypatch):
    monkeypatch.setattr(scriptrun, "KILL_GRACE", 0.3)
    pid = tmp_path / "pid"
    cmd = script(tmp_path, "s.sh", f"trap '' TERM\necho $$ > {pid}\nwhile :; do sleep 0.05; done\n")
    started = time.monotonic()
    outcome = run_loop(scriptrun.run([cmd], 0.2))
    assert 0.45 <= time.monotonic() - started < 1.5
    assert (outcome.timed_out, outcome.signal, outcome.ok) == (True, signal.SIGKILL, False)
    assert not alive(int(pid.read_text()))


def test_cancelling_the_caller_kills_the_group_and_propagates(tmp_path, run_loop):
    pids = tmp_path / "pids"
    cmd = script(tmp_path, "s.sh", f"sleep 100 &\necho $$ $! > {pids}\nwait\n")

    async def scenario():
        task = asyncio.create_task(scriptrun.run([cmd], 30))
        while not (pids.exists() and pids.read_text().strip()):
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    started = time.monotonic()
    assert run_loop(scenario()) is True
    assert time.monotonic() - started < 2
    shell, child = map(int, pids.read_text().split())
    deadline = time.monotonic() + 1
    while (alive(shell) or alive(child)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not alive(shell) and not alive(child)


@pytest.mark.parametrize("argv, names, needle", [
    (["/nonexistent/notify.sh"], None, "/nonexistent/notify.sh: no such file"),
    (["no-such-command-hivrrp"], None, "no-such-command-hivrrp: no such file"),
    (["true"], ("no-such-user-hivrrp", None), "unknown user 'no-such-user-hivrrp'"),
    (["true"], ("root", "no-such-group-hivrrp"), "unknown group"),
    ([], None, "empty command"),
    (["tr\0ue"], None, "NUL byte"),    # uvloop alone would run "tr"
])
def test_a_command_that_cannot_start_is_an_error_outcome(argv, names, needle, run_loop):
    identity = scriptrun.resolve(*names) if names else None
    outcome = run_loop(scriptrun.run(argv, 1, identity=identity))
    assert outcome.ok is False and outcome.returncode is None and not outcome.timed_out
    assert needle in outcome.error


def test_a_file_without_execute_permission_is_an_error_outcome(tmp_path, run_loop):
    path = tmp_path / "s.sh"
    path.write_text("#!/bin/sh\n")
    path.chmod(0o644)
    outcome = run_loop(scriptrun.run([str(path)], 1))
    assert not outcome.ok and outcome.returncode is None
    assert outcome.error == f"{path}: permission denied (not executable?)"


def test_environment_is_the_one_given(tmp_path, run_loop):
    cmd = script(tmp_path, "s.sh", 'test "$HIVRRP_X" = yes && test -z "$HOME"\n')
    assert run_loop(scriptrun.run([cmd], 2, env={"HIVRRP_X": "yes", "PATH": "/usr/bin:/bin"})).ok
    assert not run_loop(scriptrun.run([cmd], 2, env={"PATH": "/usr/bin:/bin"})).ok


@pytest.mark.skipif(os.geteuid() != 0, reason="switching user needs root")
def test_runs_as_the_user_with_supplementary_groups_reset(run_loop):
    nobody = pwd.getpwnam("nobody")
    check = (f'test "$(id -u)" = {nobody.pw_uid} && test "$(id -g)" = {nobody.pw_gid} '
             f'&& test "$(id -G)" = {nobody.pw_gid}')
    as_nobody = scriptrun.resolve("nobody", None)
    assert as_nobody == scriptrun.Identity(nobody.pw_uid, nobody.pw_gid, (nobody.pw_gid,))
    assert run_loop(scriptrun.run(["/bin/sh", "-c", check], 2, identity=as_nobody)).ok
    # The same check fails as root, so the assertion above can fail.
    assert not run_loop(scriptrun.run(["/bin/sh", "-c", check], 2)).ok
    as_root_group = f'test "$(id -u)" = {nobody.pw_uid} && test "$(id -G)" = 0'
    assert run_loop(scriptrun.run(["/bin/sh", "-c", as_root_group], 2,
                                  identity=scriptrun.resolve("nobody", "root"))).ok
