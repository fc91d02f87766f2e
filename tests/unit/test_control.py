"""The control socket over stand-ins (no namespaces): answers, bad requests,
root only, and the daemon carrying on through all of it."""

import asyncio
import json
import logging
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile

from helpers.fakedaemon import started
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.ops.control import MAX_LINE, ControlServer, answer

TEXT = (instance_text("VI_1", 51, ["192.0.2.51/24"], priority=150)
        + instance_text("VI_2", 52, ["198.51.100.52/24"], interface="eth1", priority=255))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def ask(daemon, request) -> dict:
    line = request if isinstance(request, bytes) else json.dumps(request).encode()
    return answer(daemon, line)


def test_status_rows_and_set_priority_by_name(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, TEXT, LINKS, ADDRESSES, monkeypatch)
        rows = ask(d, {"command": "status"})["result"]
        assert [(r["instance"], r["interface"], r["vrid"], r["state"], r["base_priority"],
                 r["priority"], r["vips"]) for r in rows] == [
            ("VI_1", "eth0", 51, "BACKUP", 150, 150, ["192.0.2.51/24"]),
            ("VI_2", "eth1", 52, "MASTER", 255, 255, ["198.51.100.52/24"])]
        assert rows[1]["master"] == "198.51.100.1" and rows[1]["last_transition"] > 1e9
        reply = ask(d, {"command": "set-priority", "instance": "VI_1", "priority": 255})
        assert reply["ok"] and reply["result"]["was"] == 150
        assert "runtime only" in reply["result"]["note"]
        # Base 255 makes it the address owner: master at once.
        assert d.plan.state("VI_1") == "MASTER"
        dumped = ask(d, {"command": "dump"})["result"]
        assert dumped["instances"][0]["counters"]["became_master"] == 1
        assert dumped["instances"][0]["base_priority"] == 255
    run(scenario())


def test_bad_requests_get_errors_and_change_nothing(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, TEXT, LINKS, ADDRESSES, monkeypatch)
        before = d.plan.states()
        bad = [b"garbage\n", b"\xff\xfe\n", b"[1, 2]\n", b'{"command": 7}\n',
               {"command": "shutdown"},
               {"command": "set-priority", "instance": "VI_1", "priority": "high"},
               {"command": "set-priority", "instance": "VI_1", "priority": 0},
               {"command": "set-priority", "instance": "VI_1", "priority": True},
               {"command": "set-priority", "instance": ["VI_1"], "priority": 100},
               {"command": "set-priority", "instance": "nope", "priority": 100}]
        replies = [ask(d, request) for request in bad]
        assert all(r["ok"] is False and r["error"] for r in replies), replies
        assert "unknown command 'shutdown'" in replies[4]["error"]
        assert "no instance 'nope'" in replies[9]["error"]
        assert d.plan.states() == before
        assert d.plan.engine.base_priority(d.plan.index["VI_1"]) == 150
    run(scenario())


def test_the_socket_is_root_only_and_survives_abuse(tmp_path, monkeypatch):
    # Under /tmp, not tmp_path: pytest's directories are closed to other users,
    # and the test must reach the socket as one.
    top = tempfile.mkdtemp(prefix="hivrrp-ctl-")
    path = os.path.join(top, "ctl", "control.sock")

    async def scenario():
        d = await started(tmp_path, TEXT, LINKS, ADDRESSES, monkeypatch)
        server = ControlServer(d, path)
        await server.start()
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        loop = asyncio.get_running_loop()

        def exchange(payload: bytes) -> list[dict]:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(5)
                sock.connect(path)
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                data = b""
                while chunk := sock.recv(65536):
                    data += chunk
            return [json.loads(line) for line in data.splitlines()]

        # Two requests on one connection, the second without a newline.
        replies = await loop.run_in_executor(
            None, exchange, b'{"command": "status"}\n{"command": "nope"}')
        assert replies[0]["ok"] and len(replies[0]["result"]) == 2
        assert replies[1] == {"ok": False,
                              "error": "unknown command 'nope' (status, dump, set-priority, "
                                       "reload)"}
        huge = await loop.run_in_executor(None, exchange, b"x" * (MAX_LINE + 10))
        assert huge == [{"ok": False, "error": f"request over {MAX_LINE} bytes"}]
        # A non-root client: the file mode stops it at connect(); with the mode
        # opened up, the peer-credentials check still refuses it.
        code = ("import socket, sys, os; os.setgid(65534); os.setuid(65534)\n"
                "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
                "try:\n    s.connect(sys.argv[1])\nexcept PermissionError:\n"
                "    print('EACCES'); sys.exit()\n"
                # The refusal may come, and the socket close, before we send.
                "try:\n    s.sendall(b'{\"command\": \"status\"}\\n')\n"
                "except BrokenPipeError:\n    pass\n"
                "print(s.recv(4096).decode())")

        def as_nobody() -> str:
            # The system's interpreter: the venv's may live under a 0700 /root.
            python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
            return subprocess.run([python, "-c", code, path], capture_output=True,
                                  text=True, timeout=10).stdout.strip()

        os.chmod(top, 0o755)
        os.chmod(os.path.dirname(path), 0o755)
        assert await loop.run_in_executor(None, as_nobody) == "EACCES"   # the socket's 0600
        os.chmod(path, 0o666)
        refused = json.loads(await loop.run_in_executor(None, as_nobody))
        assert refused == {"ok": False, "error": "permission denied: root only"}
        assert server.refused == 1
        # Still serving.
        again = await loop.run_in_executor(None, exchange, b'{"command": "status"}\n')
        assert again[0]["ok"]
        await server.close()
        assert not os.path.exists(path)
    try:
        run(scenario())
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_status_and_dump_are_built_off_the_loop(tmp_path, monkeypatch):
    """The rows of 10,000 instances and their JSON took ~150 ms of the loop:
    the server only snapshots there (bench/control.py measures the stall)."""
    import threading

    from hivrrp.ops import control
    built_on: list[str] = []
    real_rows = control.rows_of

    def recording_rows(snap):
        built_on.append(threading.current_thread().name)
        return real_rows(snap)

    monkeypatch.setattr(control, "rows_of", recording_rows)

    async def scenario():
        d = await started(tmp_path, TEXT, LINKS, ADDRESSES, monkeypatch)
        replies = [json.loads(await control.respond(d, json.dumps({"command": c}).encode()))
                   for c in ("status", "dump")]
        return threading.current_thread().name, replies

    loop_thread, (status, dumped) = run(scenario())
    assert len(built_on) == 2 and loop_thread not in built_on, built_on
    assert [r["instance"] for r in status["result"]] == ["VI_1", "VI_2"]
    assert status["daemon"]["pid"] == os.getpid() and status["daemon"]["config_file"]
    assert [r["instance"] for r in dumped["result"]["instances"]] == ["VI_1", "VI_2"]


def test_the_piecewise_encoding_is_the_same_json():
    from hivrrp.ops.control import SMALL, encode
    value = {"ok": True, "result": {"instances": [{"n": k, "v": [k, str(k)], 7: None}
                                                  for k in range(SMALL * 3)],
                                    "empty": {}, "few": [1, 2], "text": 'a"b\n'},
             "nested": {"deeper": {"deepest": {"list": list(range(SMALL + 1))}}}}
    line = encode(value)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == json.loads(json.dumps(value))
def test_start_removes_only_a_leftover_socket(tmp_path, monkeypatch):
    """Whatever else sits at the control path (a file, a symlink, a directory)
    is an error and stays as it was; a dead socket is replaced."""
    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(tmp_path / "dead.sock"))        # bound, never listening: a leftover
    stale.close()
    (tmp_path / "target").write_text("keep me\n")

    def regular():
        path.write_text("keep me\n")

    def symlink_to_file():
        path.symlink_to(tmp_path / "target")

    def symlink_to_dead_socket():
        path.symlink_to(tmp_path / "dead.sock")

    def dangling_symlink():
        path.symlink_to(tmp_path / "nowhere")

    def directory():
        path.mkdir()
        (path / "inside").write_text("keep me\n")

    def snapshot():
        st = os.lstat(path)
        link = os.readlink(path) if os.path.islink(path) else None
        content = (path / "inside").read_text() if path.is_dir() else None
        if path.is_file() and link is None:
            content = path.read_text()
        return st.st_ino, st.st_mode, link, content

    async def scenario():
        d = await started(tmp_path, TEXT, LINKS, ADDRESSES, monkeypatch)
        for make, kind in ((regular, "a regular file"), (symlink_to_file, "a symbolic link"),
                           (symlink_to_dead_socket, "a symbolic link"),
                           (dangling_symlink, "a symbolic link"), (directory, "a directory")):
            make()
            before = snapshot()
            server = ControlServer(d, str(path))
            try:
                await server.start()
            except OSError as exc:
                assert f"is {kind}, not a socket" in str(exc), exc
            else:
                await server.close()
                raise AssertionError(f"started over {kind}")
            assert snapshot() == before, make.__name__
            assert (tmp_path / "target").read_text() == "keep me\n"
            assert os.path.exists(tmp_path / "dead.sock")
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        # A socket left by a killed run is replaced by a live one.
        os.rename(tmp_path / "dead.sock", path)
        server = ControlServer(d, str(path))
        await server.start()
        assert stat.S_ISSOCK(os.lstat(path).st_mode) and os.lstat(path).st_ino == server.inode
        await server.close()
        assert not os.path.lexists(path)
    run(scenario())


def test_a_deeply_nested_request_is_an_error_without_a_traceback(tmp_path, monkeypatch,
                                                                  caplog):
    async def scenario():
        d = await started(tmp_path, TEXT, LINKS, ADDRESSES, monkeypatch)
        with caplog.at_level(logging.DEBUG):
            replies = [ask(d, line) for line in (b"[" * 100000, b"[" * 60000 + b"\n",
                                                 b'{"a": ' * 30000)]
            ok = ask(d, {"command": "status"})
        return replies, ok

    replies, ok = run(scenario())
    assert all(r == {"ok": False, "error": "not JSON: nested too deeply"} for r in replies), replies
    assert ok["ok"]
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


def test_status_says_when_the_daemon_is_in_another_namespace(monkeypatch):
    # Where a namespace's name cannot be found (no /run/netns entry, pid 1's
    # namespace unreadable), two namespaces share the default socket: status
    # must not pass one namespace's daemon off as this shell's.
    from click.testing import CliRunner

    from hivrrp import cli
    from hivrrp.ops.control import netns_id

    ours = netns_id()
    assert ours and ours.count(":") == 1

    def reply_from(namespace_id):
        return {"ok": True, "result": [], "daemon": {"pid": 42, "netns_id": namespace_id}}

    for theirs, warned in ((ours, False), ("4:4026532999", True)):
        monkeypatch.setattr(cli, "ask", lambda *a, theirs=theirs, **k: reply_from(theirs))
        result = CliRunner().invoke(cli.main, ["status", "--socket", "/nonexistent"])
        assert result.exit_code == 0, result.output
        assert ("runs in another network namespace" in result.stderr) is warned, result.stderr
