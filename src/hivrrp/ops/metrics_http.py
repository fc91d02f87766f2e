"""The metrics endpoint's HTTP server: a port scan or a stuck client cannot grow it.

prometheus-client's ThreadingWSGIServer starts a thread for every connection
and waits on it as long as the client likes (300 idle connections: 300
threads). Here a connection costs no thread until its request arrives: the
server's one thread accepts, watches up to max_waiting silent connections
(the oldest makes room for a newcomer, so a scrape still gets in while idle
ones pile up) and closes any silent for idle_timeout. A connection with data
gets a thread if one of max_serving is free, a 503 at once if not; once
served it may stay silent idle_timeout at a time and lasts deadline in all.

Every connection closed early is counted by reason (`refused`, exported as
hivrrp_metrics_connections_closed_total) and logged: the first at once, then
a summary at most every log_every seconds. None leaves a traceback.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import threading
import time
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from hivrrp.util.text import plural

log = logging.getLogger("hivrrp")

BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 23\r\nConnection: close\r\n\r\ntoo many scrapes at once\n")
# The reasons a connection is closed early, as the log and the metric name them.
IDLE = "idle"            # sent nothing for idle_timeout
CROWDED = "crowded"      # the oldest of max_waiting silent ones, for a newcomer
BUSY_REASON = "busy"     # max_serving requests already being served
STALLED = "stalled"      # went silent (or stopped reading) in the middle of its request
DEADLINE = "deadline"    # still not done after deadline seconds
FAILED = "failed"        # the connection broke
UNACCEPTED = "unaccepted"   # accept() failed (out of file descriptors)


class RefusalLog:
    """The first early close logged at once, then one summary per `every` seconds."""

    def __init__(self, every: float, clock=time.monotonic) -> None:
        self.every, self.clock = every, clock
        self.pending: collections.Counter[str] = collections.Counter()
        self.last_sender = ""
        self.logged_at: float | None = None

    def __call__(self, reason: str, sender: str) -> None:
        now = self.clock()
        quiet = self.logged_at is None or (now - self.logged_at >= self.every
                                           and not self.pending)
        if quiet:
            log.warning("metrics: closed a connection from %s: %s", sender, _EXPLAIN[reason])
            self.logged_at = now
            return
        self.pending[reason] += 1
        self.last_sender = sender
        self.flush()

    def due(self) -> float | None:
        """When flush() has a summary to write (monotonic), or None."""
        return self.logged_at + self.every if self.pending else None

    def flush(self) -> None:
        if not self.pending or self.clock() - self.logged_at < self.every:
            return
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(self.pending.items()))
        log.warning("metrics: closed %s early in the last %.0f s (%s), the last from %s",
                    plural(sum(self.pending.values()), "more connection"),
                    self.clock() - self.logged_at, reasons, self.last_sender)
        self.pending.clear()
        self.logged_at = self.clock()


_EXPLAIN = {
    IDLE: "sent no request",
    CROWDED: "too many silent connections (the oldest goes)",
    BUSY_REASON: "too many scrapes at once (503)",
    STALLED: "went silent during its request",
    DEADLINE: "took too long",
    FAILED: "the connection failed",
    UNACCEPTED: "cannot accept it (out of file descriptors?)",
}


class BoundedWSGIServer(WSGIServer):
    max_serving = 8          # requests served at once, a thread each
    max_waiting = 64         # connected, request not arrived yet: no thread
    idle_timeout = 5.0       # seconds a client may stay silent
    deadline = 30.0          # seconds a served connection may last (Prometheus gives up at 10)
    log_every = 60.0
    # The kernel's queue of connections not yet accepted (socketserver's 5 made
    # a burst of clients wait for SYN retransmits, seconds).
    request_queue_size = 128

    def __init__(self, address, handler_class) -> None:
        super().__init__(address, handler_class)
        self.socket.setblocking(False)
        self.slots = threading.BoundedSemaphore(self.max_serving)
        self.waiting: dict[socket.socket, float] = {}    # -> since (monotonic); oldest first
        # -> (deadline, sender), under self.guard; a deadline of inf: cut off already.
        self.serving: dict[socket.socket, tuple[float, object]] = {}
        self.guard = threading.Lock()
        # Every reason from the start (rate() misses a series' first increase).
        self.refused = collections.Counter(dict.fromkeys(_EXPLAIN, 0))
        self.refusal_log = RefusalLog(self.log_every)
        self._log_lock = threading.Lock()     # serving threads refuse too
        self._waker, self._wake = socket.socketpair()
        self._stopping = False

    def serve(self) -> None:
        """The server's thread: accept, watch, hand out, time out, until stop()."""
        with selectors.DefaultSelector() as selector:
            selector.register(self.socket, selectors.EVENT_READ)
            selector.register(self._waker, selectors.EVENT_READ)
            while not self._stopping:
                for key, _ in selector.select(self._timeout()):
                    if key.fileobj is self.socket:
                        self._accept(selector)
                    elif key.fileobj is self._waker:
                        self._waker.recv(64)
                    # An accept earlier in this round may have evicted it (a crowd).
                    elif key.fileobj in self.waiting:
                        selector.unregister(key.fileobj)
                        self._arrived(key.fileobj, key.data)
                self._expire(selector)
                with self._log_lock:
                    self.refusal_log.flush()
        for conn in self.waiting:
            conn.close()
        self.waiting.clear()
        with self.guard:
            for conn in self.serving:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        """Make serve() return (from any thread); then server_close()."""
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake.send(b"x")

    def server_close(self) -> None:
        super().server_close()
        self._waker.close()
        self._wake.close()

    def refuse(self, reason: str, sender) -> None:
        with self._log_lock:
            self.refused[reason] += 1
            self.refusal_log(reason, sender[0] if isinstance(sender, tuple) else str(sender))

    # -- the server's thread

    def _timeout(self) -> float | None:
        now = time.monotonic()
        with self._log_lock:
            times = [self.refusal_log.due()]
        if self.waiting:
            times.append(next(iter(self.waiting.values())) + self.idle_timeout)
        with self.guard:
            times.extend(deadline for deadline, _ in self.serving.values())
        times = [t for t in times if t is not None and t != float("inf")]
        return max(0.0, min(times) - now) if times else None

    def _accept(self, selector: selectors.BaseSelector) -> None:
        for _ in range(self.max_waiting):
            try:
                conn, sender = self.socket.accept()
            except (BlockingIOError, ConnectionAbortedError):
                return
            except OSError:           # EMFILE: it stays queued, ready; do not spin on it
                self.refuse(UNACCEPTED, "?")
                time.sleep(0.1)
                return
            if len(self.waiting) >= self.max_waiting:
                oldest = next(iter(self.waiting))
                self.refuse(CROWDED, selector.unregister(oldest).data)
                del self.waiting[oldest]
                oldest.close()
            self.waiting[conn] = time.monotonic()
            selector.register(conn, selectors.EVENT_READ, sender)

    def _arrived(self, conn: socket.socket, sender) -> None:
        """Data (or the end) on a waiting connection: serve it if a thread is free."""
        del self.waiting[conn]
        try:
            conn.setblocking(False)
            if not conn.recv(1, socket.MSG_PEEK):
                conn.close()          # connected and closed (a port check): nothing to do
                return
        except OSError:
            conn.close()
            return
        if not self.slots.acquire(blocking=False):
            self.refuse(BUSY_REASON, sender)
            with contextlib.suppress(OSError):
                conn.recv(65536)      # read first: closing over unread data resets the 503
                conn.send(BUSY)
            conn.close()
            return
        conn.setblocking(True)
        with self.guard:
            self.serving[conn] = (time.monotonic() + self.deadline, sender)
        threading.Thread(target=self._serve_one, args=(conn, sender), name="metrics-scrape",
                         daemon=True).start()

    def _expire(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        while self.waiting:
            conn, since = next(iter(self.waiting.items()))
            if now - since < self.idle_timeout:
                break
            self.refuse(IDLE, selector.unregister(conn).data)
            del self.waiting[conn]
            conn.close()
        with self.guard:
            late = [(conn, sender) for conn, (deadline, sender) in self.serving.items()
                    if deadline <= now]
            for conn, sender in late:
                # Wakes the serving thread's read or write; that thread closes it.
                self.serving[conn] = (float("inf"), sender)
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        for _, sender in late:
            self.refuse(DEADLINE, sender)

    # -- a serving thread

    def _serve_one(self, conn: socket.socket, sender) -> None:
        reason = None
        try:
            self.finish_request(conn, sender)
        except TimeoutError:
            reason = STALLED
        except OSError:
            reason = FAILED
        except Exception:             # a bug here must not kill the endpoint quietly
            log.exception("metrics: serving %s failed", sender[0])
        finally:
            with self.guard:
                deadline, _ = self.serving.pop(conn)
            self.shutdown_request(conn)
            self.slots.release()
        if reason is not None and deadline != float("inf"):    # else counted as DEADLINE
            self.refuse(reason, sender)


class QuietHandler(WSGIRequestHandler):
    """One request per connection, silent on success, errors to the server's count."""

    def setup(self) -> None:
        self.timeout = self.server.idle_timeout      # each read and write
        super().setup()

    def handle(self) -> None:
        # WSGIRequestHandler.handle, with a ServerHandler that raises what the
        # base one prints to stderr as a traceback (a client that stops reading).
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _RaisingServerHandler(self.rfile, self.wfile, self.get_stderr(),
                                        self.get_environ(), multithread=False)
        handler.request_handler = self
        handler.run(self.server.get_app())

    def log_message(self, format, *args) -> None:   # noqa: A002 (the base's name)
        pass   # a scrape every few seconds is not news; refusals are counted


class _RaisingServerHandler(ServerHandler):
    def handle_error(self) -> None:
        raise    # noqa: PLE0704 -- re-raises the error being handled, to _serve_one
