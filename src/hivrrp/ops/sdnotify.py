"""systemd's notify protocol (sd_notify(3)): READY, RELOADING, STOPPING, WATCHDOG, STATUS.

A few lines over the datagram socket systemd names in $NOTIFY_SOCKET, written
here rather than with a systemd library: the protocol is one sendto() per
message, and the design keeps the daemon's dependencies to the few it has.
Without $NOTIFY_SOCKET (not under systemd, or Type=simple) every call is a
no-op, so the daemon behaves the same either way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

log = logging.getLogger("hivrrp")


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = _address(env.get("NOTIFY_SOCKET", ""))
        self.watchdog_interval = _watchdog_interval(env)
        self.sock: socket.socket | None = None
        self.watchdog: asyncio.TimerHandle | None = None
        self.failed = False
        if self.address is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self.sock is not None

    def send(self, *fields: str) -> None:
        """One message of NAME=value lines; a failure is logged once, never raised."""
        if self.sock is None:
            return
        try:
            self.sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            if not self.failed:
                self.failed = True
                log.warning("systemd notify socket: %s (further failures not logged)", exc)

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC: Type=notify-reload (systemd 253) wants it with RELOADING.
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={now_usec}", "STATUS=reloading")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def start_watchdog(self, loop: asyncio.AbstractEventLoop) -> None:
        """WATCHDOG=1 at half of WatchdogSec, from the event loop itself: a loop
        that stalls stops the pings, and systemd restarts us."""
        if self.sock is None or self.watchdog_interval is None:
            return

        def ping() -> None:
            self.send("WATCHDOG=1")
            self.watchdog = loop.call_later(self.watchdog_interval / 2, ping)

        ping()

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def _address(value: str) -> str | bytes | None:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()   # abstract namespace
    if value.startswith("/"):
        return value
    return None


def _watchdog_interval(env) -> float | None:
    """WatchdogSec in seconds when it is meant for us (WATCHDOG_PID, if set, is our PID)."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = env.get("WATCHDOG_PID")
    if usec <= 0 or (pid and pid != str(os.getpid())):
        return None
    return usec / 1e6
