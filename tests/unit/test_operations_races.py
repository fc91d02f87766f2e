"""Operations (control socket, metrics, systemd, drops by interface) under
interleavings a race review found, each fixed: the tests fail without the fix."""

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import threading
import time

from hivrrp._engine import Engine
from hivrrp._wire import RxBatch, encode, ipv4_packet

from helpers.fakedaemon import settle, started
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.ops.control import ControlServer, answer
from hivrrp.ops.metrics import Metrics
from hivrrp.ops.sdnotify import Notifier

# ---- from a race review (control_two_daemons): what went wrong before the fix.
# Two daemons with the same control path (the default /run/hivrrp/control.sock,
# e.g. one per network namespace, or a manual `hivrrp run` next to the service):
# the second unlinks the first's LIVE socket and binds its own; when the second
# exits it unlinks the path again. The first keeps running with no control socket
# at all (hivrrp status / reload / set-priority: "is hivrrp running?").
TEXT = instance_text("VI_1", 51, ["192.0.2.51/24"], priority=150)


def ask(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(b'{"command": "status"}\n')
        return json.loads(s.makefile().readline())


def test_a_second_daemon_does_not_take_or_remove_a_live_socket(tmp_path, monkeypatch):
    path = str(tmp_path / "ctl" / "control.sock")

    async def scenario():
        d1 = await started(tmp_path,
                           TEXT, LINKS, ADDRESSES, monkeypatch)
        first = ControlServer(d1, path)
        await first.start()
        loop = asyncio.get_running_loop()
        assert (await loop.run_in_executor(None, ask, path))["ok"]
        second = ControlServer(d1, path)     # another daemon, same default path
        try:
            await second.start()
        except OSError:
            return                           # refusing to start is a fine answer
        await second.close()                 # the second one exits
        # The first daemon is still running: its socket must still be there.
        assert os.path.exists(path), "the running daemon's control socket was removed"
        assert (await loop.run_in_executor(None, ask, path))["ok"]
        await first.close()

    asyncio.run(asyncio.wait_for(scenario(), 20))


# ---- from a race review (metrics_links_race): what went wrong before the fix.
# DaemonCollector builds interface names with links.table.by_index(), a
# Python dict comprehension over LinkTable.links, on the metrics server's thread.
# The loop adds a key to that dict for every new interface (RTM_NEWLINK: a VLAN,
# veth, VRF... created). The GIL may pass to the loop in the middle of the
# comprehension: "dictionary changed size during iteration", the scrape is a 500.
# (Many links and a short switch interval make the window easy to hit; on a busy
# host with hundreds of interfaces it is the same race, rarer.)


def test_scrape_while_interfaces_appear(tmp_path, monkeypatch, caplog):
    links = dict(LINKS)
    async def scenario():
        d = await started(tmp_path, TEXT, links, ADDRESSES, monkeypatch)
        # A host with a few thousand interfaces (VLANs): the comprehension is long.
        for k in range(3000):
            d.links.table.handle([("link", 100 + k, f"vlan{k}", b"\2" * 6, True)], d.plan)
        metrics = Metrics(d)
        statuses = []
        done = threading.Event()

        def scraper():
            while not done.is_set() and len(statuses) < 400:
                metrics.app({"PATH_INFO": "/metrics"},
                            lambda status, headers: statuses.append(status))

        thread = threading.Thread(target=scraper)
        old = sys.getswitchinterval()
        sys.setswitchinterval(1e-5)
        try:
            thread.start()
            k = 3000
            while thread.is_alive() and not any(s.startswith("500") for s in statuses):
                # What linkwatch does on the loop for each RTM_NEWLINK of a new interface.
                d.links.table.handle([("link", 100 + k, f"vlan{k}", b"\2" * 6, True)], d.plan)
                k += 1
                if k % 50 == 0:
                    await asyncio.sleep(0)
            done.set()
            thread.join()
        finally:
            sys.setswitchinterval(old)
        return statuses

    with caplog.at_level(logging.ERROR, logger="hivrrp"):
        statuses = asyncio.run(asyncio.wait_for(scenario(), 120))
    failed = [s for s in statuses if not s.startswith("200")]
    assert not failed, (failed, [r.exc_text.splitlines()[-1] for r in caplog.records
                                 if r.exc_text][:1])


# ---- from a race review (reload_after_stopping): what went wrong before the fix.
# After SIGTERM (STOPPING=1 sent, stop future set) the daemon's shutdown first
# closes the control socket and then waits for the metrics server's thread
# (server.shutdown(): up to serve_forever's 0.5 s poll). lifecycle.stopping is
# only set by the third step, so meanwhile a SIGHUP or a control-socket
# `reload` is accepted: a reload task starts during shutdown, and systemd is
# sent RELOADING=1 after STOPPING=1.


class SlowMetrics:
    """Stands in for MetricsServer: close() blocks like server.shutdown() does."""
    def close(self):
        time.sleep(0.3)


def test_no_reload_once_stopping(tmp_path, monkeypatch):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.setblocking(False)

    async def scenario():
        d = await started(tmp_path, TEXT, LINKS, ADDRESSES, monkeypatch)
        d.systemd = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
        d.metrics = SlowMetrics()
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        d.request_stop(stop, signal.SIGTERM)              # SIGTERM: STOPPING=1
        shutdown = asyncio.create_task(d.shutdown())
        await asyncio.sleep(0.1)                          # inside _close_metrics
        reply = answer(d, json.dumps({"command": "reload"}).encode())   # hivrrp reload
        d.lifecycle.request_reload()                                    # or a SIGHUP
        await shutdown
        return reply

    reply = asyncio.run(asyncio.wait_for(scenario(), 20))
    messages = []
    while True:
        try:
            messages.append(listener.recv(4096).decode().split("\n")[0])
        except BlockingIOError:
            break
    assert messages[0] == "STOPPING=1"
    assert "RELOADING=1" not in messages, messages
    assert reply["ok"] is False, reply


# ---- from a race review (set_priority_rebuild): what went wrong before the fix.
# set-priority promises "runtime only: the configured priority comes back at
# the next reload or restart". An automatic rebuild (an interface re-created with
# a new index, a source address appearing: linkwatch -> request_rebuild) rebuilds
# every engine from the running config and carry() does not carry base_priority,
# so the operator's priority silently reverts with no reload and no log line.
TWO = (instance_text("VI_1", 51, ["192.0.2.51/24"], priority=150)
       + instance_text("VI_2", 52, ["198.51.100.52/24"], interface="eth1", priority=100))


def test_runtime_priority_survives_a_rebuild(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, TWO, LINKS, ADDRESSES, monkeypatch)
        reply = answer(d, json.dumps({"command": "set-priority", "instance": "VI_1",
                                      "priority": 200}).encode())
        assert reply["ok"], reply
        d.lifecycle.request_rebuild("address 198.51.100.7 appeared")   # what linkwatch does
        await settle(d)
        return d.plan.engine.base_priority(d.plan.index["VI_1"])

    assert asyncio.run(asyncio.wait_for(scenario(), 20)) == 200


# ---- from a race review (if_drops_ifindex0): what went wrong before the fix.
# An instance whose interface is missing at build time sits on ifindex 0; the
# engine's interface table then has key 0, which interface_drops() maps over the
# 'other' row (row 0): drops from interfaces no instance uses vanish from the
# export (hivrrp_receive_errors{interface="other"}).
def arrive(engine, vrid, ifindex):
    message = encode(version=2, vrid=vrid, priority=100, interval=1,
                     addresses=["192.0.2.51"], src="192.0.2.9", dst="224.0.0.18")
    batch = RxBatch(1)
    batch.add_ipv4(ipv4_packet(message, "192.0.2.9", "224.0.0.18"), ifindex=ifindex)
    engine.receive(batch, 1_000_000)


def test_other_row_survives_an_instance_on_a_missing_interface():
    engine = Engine(2, now=0)
    engine.add_instance(vrid=51, ifindex=2, src="192.0.2.1", addresses=["192.0.2.51"])
    engine.add_instance(vrid=52, ifindex=0, src="0.0.0.0", addresses=["192.0.2.52"])  # missing link
    arrive(engine, 51, 7)        # interface 7: no instance there
    assert engine.global_counters()["unknown_vrid"] == 1
    assert engine.interface_drops() == {0: {"unknown_vrid": 1}}
