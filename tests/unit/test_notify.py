"""Notifier: keepalived's notify scripts and FIFO lines, ordered and bounded."""

import asyncio
import fcntl
import logging
import os
import time

import pytest

from helpers.scripts import alive, make
from hivrrp.config.model import Script
from hivrrp.notify import scriptsec
from hivrrp.notify.notifier import Notifier

uvloop = pytest.importorskip("uvloop")


@pytest.fixture(params=["asyncio", "uvloop"])
def run_loop(request):
    return asyncio.run if request.param == "asyncio" else uvloop.run


def recorder(tmp_path, name):
    """A script appending its arguments as one line to <name>.log."""
    return make(tmp_path, name + ".sh", f'echo "$*" >> {tmp_path / (name + ".log")}\n')


def lines(tmp_path, name):
    path = tmp_path / (name + ".log")
    return path.read_text().splitlines() if path.exists() else []


def read_fifo(fd):
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return data.decode()
        if not chunk:
            return data.decode()
        data += chunk


def test_scripts_get_keepalived_arguments_and_fifo_gets_exact_lines(tmp_path, run_loop):
    fifo = tmp_path / "fifo"
    scripts = {"fault": recorder(tmp_path, "fault"), "master": recorder(tmp_path, "master"),
               "any": recorder(tmp_path, "any")}
    group_scripts = {"master": recorder(tmp_path, "gmaster"), "any": recorder(tmp_path, "gany")}

    async def scenario():
        n = Notifier(fifo_paths=[str(fifo)])
        assert fifo.is_fifo()               # created by us
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            n.instance("VI_1", "FAULT", 244, scripts)
            n.group("G1", "MASTER", group_scripts)
            n.rx_lower_priority("VI_1", 100, recorder(tmp_path, "rxlow"))
            n.priority_changed("VI_1", "MASTER", 90)
            n.priority_changed("VI_1", "BACKUP", 80)
            n.instance("VI_1", "DELETED", 80, scripts)      # no notify_deleted: FAULT
            n.instance("VI_2", "DELETED", 70, {}, notify_deleted=True)
            n.instance("VI_3", "SLEEPING", 1, scripts)      # refused, not notified
            await n.close(5)
            return read_fifo(reader), n.runs
        finally:
            os.close(reader)

    text, runs = run_loop(scenario())
    assert text == ('INSTANCE "VI_1" FAULT 244\n'
                    'GROUP "G1" MASTER 0\n'
                    'INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100\n'
                    'INSTANCE "VI_1" MASTER_PRIORITY 90\n'
                    'INSTANCE "VI_1" BACKUP_PRIORITY 80\n'
                    'INSTANCE "VI_1" FAULT 80\n'
                    'INSTANCE "VI_2" DELETED 70\n')
    assert lines(tmp_path, "any") == ["INSTANCE VI_1 FAULT 244", "INSTANCE VI_1 FAULT 80"]
    assert lines(tmp_path, "fault") == ["", ""]             # own scripts get no arguments
    assert lines(tmp_path, "master") == []
    assert lines(tmp_path, "gmaster") == [""]
    assert lines(tmp_path, "gany") == ["GROUP G1 MASTER 0"]
    assert lines(tmp_path, "rxlow") == [""]
    assert runs == {"ok": 7}
    assert not fifo.exists()                                # we created it, we remove it


def test_events_of_one_instance_run_in_order_across_concurrent_instances(tmp_path, run_loop):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    # Later events sleep less (0.08 s down to 0.01 s) and slots are plenty,
    # so running each event as it comes would reorder an instance's lines.
    generic = make(tmp_path, "g.sh", f'sleep 0.0$(( 9 - $4 ))\necho $4 >> {log_dir}/$2\n')

    async def scenario():
        n = Notifier(concurrency=16)
        for seq in range(1, 9):
            for inst in range(3):
                n.instance(f"VI_{inst}", "MASTER" if seq % 2 else "BACKUP", seq, {"any": generic})
        await n.close(10)
        return n.runs

    started = time.monotonic()
    assert run_loop(scenario()) == {"ok": 24}
    elapsed = time.monotonic() - started
    for inst in range(3):
        assert (log_dir / f"VI_{inst}").read_text().split() == [str(s) for s in range(1, 9)]
    assert elapsed > 0.36            # each instance's 8 sleeps ran one after another


def test_no_more_processes_than_the_bound_at_once(tmp_path):
    markers = tmp_path / "running"
    markers.mkdir()
    counts = tmp_path / "counts"
    generic = make(tmp_path, "g.sh",
                   f"touch {markers}/$2\nls {markers} | wc -l >> {counts}\nsleep 0.1\nrm {markers}/$2\n")

    async def scenario():
        n = Notifier(concurrency=3)
        for inst in range(20):
            n.instance(f"VI_{inst}", "MASTER", 100, {"any": generic})
        await n.close(10)
        return n.runs

    started = time.monotonic()
    assert asyncio.run(scenario()) == {"ok": 20}
    seen = [int(c) for c in counts.read_text().split()]
    assert len(seen) == 20
    assert 2 <= max(seen) <= 3
    assert time.monotonic() - started > 0.6        # 20 runs of 0.1 s, 3 at a time


def test_an_overflowing_backlog_drops_the_oldest_events(tmp_path, caplog):
    generic = make(tmp_path, "g.sh", f'sleep 0.05\necho "$4" >> {tmp_path}/seq\n')

    async def scenario():
        n = Notifier(backlog=3)
        for seq in range(1, 11):
            n.instance("VI_1", "BACKUP", seq, {"any": generic})
        await n.close(5)
        return n.runs

    assert asyncio.run(scenario()) == {"dropped": 7, "ok": 3}
    assert (tmp_path / "seq").read_text().split() == ["8", "9", "10"]
    assert caplog.text.count("notify backlog over 3 events") == 1


def test_a_hung_script_times_out_and_the_queue_moves_on(tmp_path, run_loop):
    pid_file = tmp_path / "pid"
    hung = make(tmp_path, "hung.sh", f"echo $$ > {pid_file}\nsleep 100\n")

    async def scenario():
        n = Notifier(timeout=0.3)
        n.instance("VI_1", "MASTER", 100, {"master": hung})
        n.instance("VI_1", "BACKUP", 100, {"backup": recorder(tmp_path, "backup")})
        await n.close(5)
        return n.runs

    started = time.monotonic()
    assert run_loop(scenario()) == {"timed_out": 1, "ok": 1}
    assert time.monotonic() - started < 2
    assert lines(tmp_path, "backup") == [""]
    assert not alive(int(pid_file.read_text()))


def test_failed_and_missing_scripts_are_counted_not_raised(tmp_path, caplog):
    failing = make(tmp_path, "fail.sh", "exit 3\n")
    missing = Script(command="/nonexistent/notify.sh", argv=["/nonexistent/notify.sh"])

    async def scenario():
        n = Notifier()
        n.instance("VI_1", "MASTER", 100, {"master": failing, "any": missing})
        await n.close(5)
        return n.runs

    assert asyncio.run(scenario()) == {"failed": 1, "error": 1}
    assert "/nonexistent/notify.sh: no such file" in caplog.text
    assert "exit status 3" in caplog.text


def test_an_insecure_script_is_never_run_and_logged_once(tmp_path, caplog):
    bad = make(tmp_path, "bad.sh", f"touch {tmp_path}/ran\n", mode=0o777)
    good = recorder(tmp_path, "good")
    report = scriptsec.check_scripts([bad, good], enabled=True, script_user="root")
    assert report.messages == [(f"script {bad.command!r} disabled: "
                                f"{bad.argv[0]} is writable by non-root users (mode 0777)")]

    async def scenario():
        n = Notifier(secure=report.allows)
        n.instance("VI_1", "MASTER", 100, {"master": bad, "any": good})
        n.instance("VI_1", "MASTER", 99, {"master": bad, "any": good})
        await n.close(5)
        return n.runs

    assert asyncio.run(scenario()) == {"refused": 2, "ok": 2}
    assert not (tmp_path / "ran").exists()
    assert lines(tmp_path, "good") == ["INSTANCE VI_1 MASTER 100", "INSTANCE VI_1 MASTER 99"]
    assert caplog.text.count(f"{bad.argv[0]}: refused by script security: ") == 1


def test_a_missing_notify_script_is_said_to_be_not_found(tmp_path, caplog):
    missing = Script(command=f"{tmp_path}/gone.sh", argv=[f"{tmp_path}/gone.sh"])
    report = scriptsec.check_scripts([missing], enabled=True, script_user="root")

    async def scenario():
        n = Notifier(secure=report.allows)
        n.instance("VI_1", "MASTER", 100, {"master": missing})
        await n.close(5)
        return n.runs

    assert asyncio.run(scenario()) == {"refused": 1}
    assert f"{tmp_path}/gone.sh not found" in caplog.text
    assert "script security" not in caplog.text


def test_close_kills_what_is_still_running_and_drops_the_rest(tmp_path):
    pid_file = tmp_path / "pid"
    hung = make(tmp_path, "hung.sh", f"echo $$ > {pid_file}\nsleep 100\n")

    async def scenario():
        n = Notifier(timeout=60)
        n.instance("VI_1", "MASTER", 100, {"master": hung})
        n.instance("VI_1", "STOP", 100, {"stop": hung})
        while not (pid_file.exists() and pid_file.read_text().strip()):
            await asyncio.sleep(0.01)
        await n.close(0.2)
        n.instance("VI_1", "MASTER", 100, {"master": hung})   # after close: ignored
        return n.runs

    started = time.monotonic()
    assert asyncio.run(scenario()) == {"killed": 1, "dropped": 1}
    assert time.monotonic() - started < 2
    assert not alive(int(pid_file.read_text()))


def test_a_full_fifo_drops_whole_lines_and_counts_them(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    async def scenario():
        n = Notifier(fifo_paths=[str(fifo)])
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            # ~36 bytes a line: more than the pipe holds.
            for i in range(fcntl.fcntl(reader, fcntl.F_GETPIPE_SZ) // 30):
                n.priority_changed("VI_1", "BACKUP", i % 255)
            text = read_fifo(reader)
            n.priority_changed("VI_1", "MASTER", 7)    # room again after reading
            text += read_fifo(reader)
            await n.close(1)
            return text, n.fifo_dropped, i + 1
        finally:
            os.close(reader)

    text, dropped, sent = asyncio.run(scenario())
    got = text.splitlines()
    assert dropped > 0 and len(got) == sent + 1 - dropped
    assert all(line.startswith('INSTANCE "VI_1" BACKUP_PRIORITY ') for line in got[:-1])
    assert got[-1] == 'INSTANCE "VI_1" MASTER_PRIORITY 7'
    assert fifo.exists()                          # not ours: left in place


def test_fifo_script_gets_the_fifo_path_reads_lines_and_stops_at_close(tmp_path, run_loop):
    fifo = tmp_path / "fifo"
    out = tmp_path / "out"
    reader = make(tmp_path, "reader.sh", f'echo $$ > {tmp_path}/pid\necho "$1" > {tmp_path}/arg\n'
                                         f'cat "$1" > {out}\n')

    async def scenario():
        n = Notifier(fifo_paths=[str(fifo)], fifo_script=reader)
        n.instance("VI_1", "MASTER", 100, {})
        n.group("G1", "BACKUP", {})
        deadline = time.monotonic() + 2
        while out.stat().st_size == 0 if out.exists() else True:
            assert time.monotonic() < deadline, "fifo script never read"
            await asyncio.sleep(0.01)
        await n.close(1)

    started = time.monotonic()
    run_loop(scenario())
    assert time.monotonic() - started < 2.5
    assert (tmp_path / "arg").read_text() == f"{fifo}\n"
    assert out.read_text() == 'INSTANCE "VI_1" MASTER 100\nGROUP "G1" BACKUP 0\n'
    assert not alive(int((tmp_path / "pid").read_text()))


def test_a_broken_fifo_path_is_a_logged_error_not_a_crash(tmp_path, caplog):
    regular = tmp_path / "file"
    regular.write_text("keep\n")

    async def scenario():
        n = Notifier(fifo_paths=[str(regular), str(tmp_path / "no" / "dir" / "fifo")])
        n.instance("VI_1", "MASTER", 100, {})
        await n.close(1)

    asyncio.run(scenario())
    assert regular.read_text() == "keep\n"
    assert f"notify fifo {regular} exists and is not a FIFO" in caplog.text
    assert "cannot create notify fifo" in caplog.text
    assert caplog.records and all(r.name == "hivrrp" for r in caplog.records
                                  if r.levelno >= logging.WARNING)
