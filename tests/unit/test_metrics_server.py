"""The metrics endpoint's server on 127.0.0.1 under clients that hold
connections: idle ones, a crowd of them, more requests than threads, one that
dribbles. Threads stay bounded, the server closes what it must on time and
says so, and a real scrape still gets through."""

import asyncio
import logging
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from helpers.fakedaemon import started
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.ops.metrics import MetricsServer
from hivrrp.ops.metrics_http import BoundedWSGIServer, RefusalLog

LIMITS = BoundedWSGIServer      # its caps and timeouts (the fixture shortens the timeouts)
TEXT = instance_text("VI_1", 51, ["192.0.2.51/24"], priority=150)


@pytest.fixture
def endpoint(tmp_path, monkeypatch):
    """A MetricsServer on 127.0.0.1 over a fake daemon; yields (server, port, connect)."""
    monkeypatch.setattr(BoundedWSGIServer, "idle_timeout", 1.0)
    monkeypatch.setattr(BoundedWSGIServer, "deadline", 3.0)
    loop = asyncio.new_event_loop()
    daemon = loop.run_until_complete(started(tmp_path, TEXT, LINKS, ADDRESSES, monkeypatch))
    daemon.metrics = metrics = MetricsServer(daemon, "127.0.0.1", 0)
    metrics.start()
    port = metrics.server.server_address[1]
    clients = []

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        clients.append(sock)
        return sock

    try:
        yield metrics, port, connect
    finally:
        for sock in clients:
            sock.close()
        metrics.close()
        loop.close()


def scrape(port: int) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def closed_by_server(sock: socket.socket, within: float) -> float | None:
    """Seconds until the server closed `sock` (EOF or reset), None if not within `within`."""
    start = time.monotonic()
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(65536):
                break
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return time.monotonic() - start


def test_idle_connections_take_no_thread_are_closed_on_time_and_a_scrape_gets_in(
        endpoint, caplog):
    metrics, port, connect = endpoint
    server = metrics.server
    threads = threading.active_count()
    n = LIMITS.max_waiting + 36         # 100: well above any cap
    with caplog.at_level(logging.WARNING, logger="hivrrp"):
        opened = time.monotonic()
        idle = [connect() for _ in range(n)]
        # The oldest 36 made room for the newest: closed at once, not after the timeout.
        crowded = [closed_by_server(s, 0.5) for s in idle[:36]]
        assert all(t is not None for t in crowded), crowded
        time.sleep(0.1)
        assert threading.active_count() <= threads, "a thread per idle connection"
        status, body = scrape(port)              # while 63 idle clients are connected
        assert status == 200 and b"hivrrp_instance_state{" in body
        # Every remaining one is closed by the server within its idle timeout.
        rest = [closed_by_server(s, 3.0) for s in idle[36:]]
        assert all(t is not None for t in rest), rest
        assert time.monotonic() - opened < LIMITS.idle_timeout + 1.5
    # The scrape's own connection made room too: 37 crowded out.
    assert server.refused["crowded"] == 37 and server.refused["idle"] == n - 37
    assert threading.active_count() <= threads
    # Logged once, not 100 times: the rest waits for the summary.
    lines = [r.getMessage() for r in caplog.records if "metrics: closed" in r.getMessage()]
    assert lines == ["metrics: closed a connection from 127.0.0.1: too many silent "
                     "connections (the oldest goes)"]
    # And counted where Prometheus sees it.
    status, body = scrape(port)
    assert b'hivrrp_metrics_connections_closed_total{reason="idle"} 63.0' in body


def test_requests_beyond_the_thread_cap_get_a_503_at_once(endpoint):
    metrics, port, connect = endpoint
    server = metrics.server
    threads = threading.active_count()
    # Requests that start and never finish: each holds a serving thread.
    stalled = []
    for _ in range(LIMITS.max_serving + 4):
        sock = connect()
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        stalled.append(sock)
        time.sleep(0.05)
    assert threading.active_count() <= threads + LIMITS.max_serving
    for sock in stalled[LIMITS.max_serving:]:
        sock.settimeout(1.0)
        assert sock.recv(100).startswith(b"HTTP/1.0 503"), "not refused at once"
    assert scrape(port)[0] == 503                          # every thread is taken
    for sock in stalled[:LIMITS.max_serving]:
        assert closed_by_server(sock, LIMITS.idle_timeout + 2) is not None
    assert server.refused["stalled"] == LIMITS.max_serving
    assert server.refused["busy"] == 4 + 1
    assert scrape(port)[0] == 200                          # the threads are back
    assert threading.active_count() <= threads + 1


def test_a_dribbling_client_is_cut_at_the_deadline(endpoint):
    metrics, port, connect = endpoint
    server = metrics.server
    sock = connect()
    start = time.monotonic()
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 60
    sent = 0
    # One byte every 0.3 s: never idle_timeout (1 s) silent, never done.
    while time.monotonic() - start < LIMITS.deadline + 2 and sent < len(request):
        try:
            sock.sendall(request[sent:sent + 1])
        except OSError:
            break
        sent += 1
        time.sleep(0.3)
    assert closed_by_server(sock, 1.0) is not None
    assert time.monotonic() - start < LIMITS.deadline + 1.5
    assert server.refused["deadline"] == 1 and server.refused["failed"] == 0


def test_a_client_that_stops_reading_is_cut_without_a_traceback(endpoint, monkeypatch,
                                                                  capfd):
    metrics, port, connect = endpoint
    monkeypatch.setattr(metrics, "render", lambda: [b"#" * (64 << 20)])   # no buffer holds it
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    try:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.recv(100)                    # the answer starts; then nobody reads
        assert wait(lambda: metrics.server.refused["stalled"] == 1, LIMITS.idle_timeout + 3)
    finally:
        sock.close()
    assert wait(lambda: not metrics.server.serving, 2)         # its thread is free again
    assert "Traceback" not in capfd.readouterr().err


def wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_a_connection_closed_without_a_request_costs_nothing(endpoint):
    metrics, port, connect = endpoint
    for _ in range(20):
        connect().close()          # a port check
    time.sleep(0.3)
    assert sum(metrics.server.refused.values()) == 0
    assert scrape(port)[0] == 200


def test_refusals_are_logged_once_then_summarised(caplog):
    now = [100.0]
    refusals = RefusalLog(60.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="hivrrp"):
        refusals("idle", "192.0.2.9")
        for k in range(30):
            now[0] += 1
            refusals("busy" if k % 3 else "idle", f"192.0.2.{k}")
            refusals.flush()
        assert refusals.due() == 160.0
        now[0] = 160.0
        refusals.flush()
        refusals.flush()
        now[0] = 500.0
        refusals("idle", "192.0.2.7")      # quiet for long: logged at once again
    assert [r.getMessage() for r in caplog.records] == [
        "metrics: closed a connection from 192.0.2.9: sent no request",
        "metrics: closed 30 more connections early in the last 60 s (busy 20, idle 10), "
        "the last from 192.0.2.29",
        "metrics: closed a connection from 192.0.2.7: sent no request"]


def test_a_crowd_sending_requests_never_kills_the_server(endpoint):
    """An accept that evicted the oldest waiting connection for a newcomer, in
    the same select() round as that connection's own request, unregistered it
    twice: the server's only thread died and the endpoint hung for good."""
    metrics, port, connect = endpoint
    for round_ in range(3):
        crowd = []
        for k in range(LIMITS.max_waiting + 40):
            sock = connect()
            # Some send a partial request, so they wait with data ready to read.
            if k % 2:
                sock.sendall(b"GET /met")
            crowd.append(sock)
        assert wait(lambda: metrics.thread.is_alive() is False or scrape(port)[0] == 200, 5)
        assert metrics.thread.is_alive(), f"round {round_}: the server thread died"
        for sock in crowd:
            sock.close()
    assert scrape(port)[0] == 200
