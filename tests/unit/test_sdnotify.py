"""systemd's notify protocol: the messages, and the daemon sending them at start,
on SIGHUP and on SIGTERM (over stand-ins for netlink and sockets, no root)."""

import asyncio
import os
import signal
import socket

from helpers.conf import write
from helpers.fakedaemon import FakeMonitor, FakeNetlink, FakeSocket
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.config import load
from hivrrp.daemon.driver import Driver
from hivrrp.daemon.wiring import Daemon
from hivrrp.kernel.announce import Announcer
from hivrrp.ops.sdnotify import Notifier


def receiver(tmp_path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    return sock, path


def messages(sock, count):
    return [sock.recv(4096).decode() for _ in range(count)]


def test_messages_go_to_the_socket_systemd_names(tmp_path):
    sock, path = receiver(tmp_path)
    n = Notifier({"NOTIFY_SOCKET": path})
    n.ready("4000 instances")
    n.reloading()
    n.stopping()
    ready, reloading, stopping = messages(sock, 3)
    assert ready == "READY=1\nSTATUS=4000 instances"
    lines = reloading.split("\n")
    assert lines[0] == "RELOADING=1" and lines[1].startswith("MONOTONIC_USEC=")
    assert int(lines[1].split("=")[1]) > 0
    assert stopping == "STOPPING=1\nSTATUS=stopping"
    n.close()


def test_the_abstract_namespace():
    name = f"hivrrp-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2)
    n = Notifier({"NOTIFY_SOCKET": "@" + name})
    n.stopping()
    assert sock.recv(100) == b"STOPPING=1\nSTATUS=stopping"
    n.close()
    sock.close()


def test_without_systemd_nothing_is_sent_and_nothing_fails(tmp_path):
    n = Notifier({})
    assert not n.enabled
    n.ready("x")
    n.start_watchdog(None)   # no socket: not even the loop is touched
    # A socket that went away: logged once, never raised.
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "absent")})
    gone.ready("x")
    gone.stopping()
    assert gone.failed


def test_the_watchdog_pings_at_half_its_interval_only_when_meant_for_us(tmp_path):
    sock, path = receiver(tmp_path)

    async def scenario(env):
        n = Notifier(env)
        n.start_watchdog(asyncio.get_running_loop())
        await asyncio.sleep(0.25)
        n.close()

    asyncio.run(scenario({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000",
                          "WATCHDOG_PID": str(os.getpid())}))
    sock.settimeout(0.1)
    pings = []
    for _ in range(20):
        try:
            pings.append(sock.recv(100))
        except TimeoutError:
            break
    assert set(pings) == {b"WATCHDOG=1"} and 4 <= len(pings) <= 7, pings
    # WATCHDOG_PID of another process: not ours to answer.
    asyncio.run(scenario({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000",
                          "WATCHDOG_PID": "1"}))
    try:
        extra = sock.recv(100)
    except TimeoutError:
        extra = None
    assert extra is None


def test_the_daemon_says_ready_reloading_ready_stopping(tmp_path, monkeypatch):
    sock, path = receiver(tmp_path)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setattr(Driver, "open_sockets", lambda self, families, count: None)
    monkeypatch.setattr(Driver, "set_memberships", lambda self, wanted: None)
    frames: list = []

    def fake_sockets(self):   # no GARP may leave this test, whatever happens
        self.packet_socket = self.icmp6_socket = FakeSocket(frames)
    monkeypatch.setattr(Announcer, "_sockets", fake_sockets)
    conf = write(tmp_path, "keepalived.conf", instance_text("VI_1", 51, ["192.0.2.51/24"]))
    result = load(str(conf), config_id="main", check_host=False)

    async def scenario():
        daemon = Daemon(result.config, str(conf), "main",
                        netlink=FakeNetlink(LINKS, ADDRESSES), monitor=FakeMonitor())
        main = asyncio.create_task(daemon.main())
        loop = asyncio.get_running_loop()
        got = [await loop.run_in_executor(None, sock.recv, 4096)]
        daemon.lifecycle.request_reload()
        got += [await loop.run_in_executor(None, sock.recv, 4096) for _ in range(2)]
        os.kill(os.getpid(), signal.SIGTERM)     # the daemon's own handler takes it
        got.append(await loop.run_in_executor(None, sock.recv, 4096))
        assert await asyncio.wait_for(main, 10) == 0
        return [g.decode().split("\n")[0:2] for g in got]

    got = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert got[0] == ["READY=1", "STATUS=1 instance: 0 master, 1 backup, 0 fault"]
    assert got[1][0] == "RELOADING=1"
    assert got[2][0] == "READY=1"
    assert got[3] == ["STOPPING=1", "STATUS=stopping"]
