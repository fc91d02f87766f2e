"""The pid file as a lock (hivrrp.ops.pidfile): one daemon per pid file, and a
refusal that names the holder and touches nothing."""

import os
import subprocess
import sys

import pytest

from hivrrp.ops import pidfile
from hivrrp.ops.pidfile import AlreadyRunning, PidFileError, PidLock


def test_the_holder_writes_its_pid_and_a_second_one_is_refused_naming_it(tmp_path):
    path = str(tmp_path / "run" / "hivrrp.pid")
    with PidLock(path):
        assert open(path).read() == f"{os.getpid()}\n"
        with pytest.raises(AlreadyRunning) as refused:
            PidLock(path).acquire()
        assert refused.value.pid == os.getpid()
        assert f"pid {os.getpid()}" in str(refused.value) and path in str(refused.value)
    assert not os.path.exists(path)


def test_a_leftover_of_a_killed_daemon_is_taken_over(tmp_path):
    path = tmp_path / "hivrrp.pid"
    path.write_text("999999\n")             # its lock died with it
    with PidLock(str(path)):
        assert path.read_text() == f"{os.getpid()}\n"


def test_another_process_holding_it_is_named(tmp_path):
    path = str(tmp_path / "hivrrp.pid")
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from hivrrp.ops.pidfile import PidLock; "
                               "PidLock(sys.argv[1]).acquire(); print('held', flush=True); "
                               "time.sleep(30)", path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(AlreadyRunning) as refused:
            PidLock(path).acquire()
        assert refused.value.pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
    with PidLock(path):                      # the lock died with its holder
        pass


def test_a_symlink_or_a_directory_is_never_used(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("precious\n")
    link = tmp_path / "hivrrp.pid"
    link.symlink_to(target)
    with pytest.raises(PidFileError, match="symbolic link"):
        PidLock(str(link)).acquire()
    assert target.read_text() == "precious\n" and link.is_symlink()
    (tmp_path / "dir.pid").mkdir()
    with pytest.raises(PidFileError):
        PidLock(str(tmp_path / "dir.pid")).acquire()


def test_only_its_own_file_is_removed(tmp_path):
    path = tmp_path / "hivrrp.pid"
    lock = PidLock(str(path)).acquire()
    path.unlink()                            # someone removed it and another daemon
    path.write_text("12345\n")               # made its own meanwhile
    lock.release()
    assert path.read_text() == "12345\n"


def test_hivrrp_run_refuses_before_reading_or_touching_anything(tmp_path):
    path = str(tmp_path / "hivrrp.pid")
    with PidLock(path):
        run = subprocess.run([sys.executable, "-m", "hivrrp", "run", "-f",
                              str(tmp_path / "missing.conf"), "--pid-file", path,
                              "--control", "none"], capture_output=True, text=True, timeout=30)
    assert run.returncode == 1
    assert f"already running in this network namespace (pid {os.getpid()}" in run.stderr
    assert "missing.conf" not in run.stderr          # refused before the configuration


def test_the_namespace_lock_refuses_a_daemon_with_another_pid_file(tmp_path):
    """A namespace may have two names (two pid file paths), or a daemon may be
    given another --pid-file: the lock named after the namespace itself holds."""
    from hivrrp.ops.pidfile import DaemonLocks
    first = DaemonLocks(str(tmp_path / "a" / "hivrrp.pid"), str(tmp_path / "ns.lock")).acquire()
    try:
        with pytest.raises(AlreadyRunning) as refused:
            DaemonLocks(str(tmp_path / "b" / "hivrrp.pid"), str(tmp_path / "ns.lock")).acquire()
        # It names the running daemon's pid file, and took nothing of its own.
        assert refused.value.path == str(tmp_path / "a" / "hivrrp.pid")
        assert refused.value.pid == os.getpid()
        assert not (tmp_path / "b" / "hivrrp.pid").exists()
    finally:
        first.release()
    assert not (tmp_path / "ns.lock").exists() and not (tmp_path / "a" / "hivrrp.pid").exists()


def test_a_pid_file_held_from_another_namespace_says_so(tmp_path, monkeypatch):
    """Two namespaces whose names cannot be found share the default pid file;
    their namespace locks differ. The refusal must not claim 'this namespace'."""
    from hivrrp.ops.pidfile import DaemonLocks
    shared = str(tmp_path / "hivrrp.pid")
    first = DaemonLocks(shared, str(tmp_path / "ns-a.lock")).acquire()
    # The holder as a process of another namespace (we cannot be in two here).
    monkeypatch.setattr(pidfile, "_same_namespace", lambda pid: False)
    try:
        with pytest.raises(AlreadyRunning) as refused:
            DaemonLocks(shared, str(tmp_path / "ns-b.lock")).acquire()
        assert "of another network namespace" in str(refused.value)
        assert "own --pid-file and --control" in str(refused.value)
        assert not (tmp_path / "ns-b.lock").exists()      # given back
    finally:
        first.release()


def test_a_directory_removed_by_the_last_daemon_meanwhile_is_made_again(tmp_path, monkeypatch):
    """makedirs saw the directory, then its last daemon removed it before
    makedirs' own check: FileExistsError, and a start refused for nothing."""
    import hivrrp.ops.pidfile as pidfile
    real, calls = os.makedirs, []

    def racing(path, mode=0o777, exist_ok=False):
        calls.append(path)
        if len(calls) == 1:
            raise FileExistsError(17, "File exists", path)
        return real(path, mode, exist_ok)

    monkeypatch.setattr(pidfile.os, "makedirs", racing)
    path = str(tmp_path / "netns" / "X" / "hivrrp.pid")
    with PidLock(path):
        assert calls.count(os.path.dirname(path)) == 2
        assert open(path).read().startswith(str(os.getpid()))
