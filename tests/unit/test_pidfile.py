"""The pid file as a lock (hivrrp.pidfile): one daemon per pid file, and a
refusal that names the holder and touches nothing."""

import os
import subprocess
import sys

import pytest

from hivrrp.pidfile import AlreadyRunning, PidFileError, PidLock


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
        [sys.executable, "-c", "import sys, time; from hivrrp.pidfile import PidLock; "
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
