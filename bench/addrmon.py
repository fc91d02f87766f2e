"""When did each VIP appear? A netlink address monitor in a router's namespace.

Polling the address table (a dump every 20 ms, as the lab does) cannot time a
takeover of 10,000 VIPs that may finish in tens of milliseconds: each dump of
10,000 addresses costs milliseconds itself, and the answer is only as fine as
the poll. Here a thread listens to the namespace's RTNLGRP_IPV4_IFADDR
notifications and stamps every RTM_NEWADDR/RTM_DELADDR with the monotonic
time its datagram was read. Netlink gives no kernel timestamp (SO_TIMESTAMPNS
brings no control message on a netlink socket), so a stamp is when the
monitor read the message: at most the reader's scheduling delay late.
"""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hivrrp.kernel.rtnl import IFADDRMSG, RTM_DELADDR, RTM_NEWADDR, attributes, messages
from hivrrp.tools.lab.nsaddr import socket_in_netns

RTMGRP_IPV4_IFADDR = 0x10
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFA_F_SECONDARY = 0x01
SO_RCVBUFFORCE = 33
RECEIVE_BUFFER = 64 << 20   # 10,000 notifications are ~10 MB of skbs; room for a slow reader
READ_SIZE = 1 << 20


@dataclass(frozen=True)
class Change:
    """One address notification: added (True) or removed, and the address's key."""
    added: bool
    ifindex: int
    address: str
    prefixlen: int
    flags: int
    scope: int


def changes(datagram: bytes) -> Iterator[Change]:
    """The IPv4 address changes in one netlink datagram; other messages skipped."""
    for kind, _flags, _seq, body in messages(datagram):
        if kind not in (RTM_NEWADDR, RTM_DELADDR) or len(body) < IFADDRMSG.size:
            continue
        family, prefixlen, flags, scope, index = IFADDRMSG.unpack_from(body)
        if family != socket.AF_INET:
            continue
        found = {k: v for k, v in attributes(body, IFADDRMSG.size)
                 if k in (IFA_ADDRESS, IFA_LOCAL) and len(v) == 4}
        raw = found.get(IFA_LOCAL) or found.get(IFA_ADDRESS)
        if raw is None:
            continue
        yield Change(kind == RTM_NEWADDR, index, socket.inet_ntoa(raw), prefixlen, flags, scope)


def is_vip(change: Change, prefixlen: int = 16) -> bool:
    """The lab's VIPs: secondary global addresses in the segment's /16."""
    return (change.prefixlen == prefixlen and bool(change.flags & IFA_F_SECONDARY)
            and change.scope == 0)


def timeline(events: Iterable[tuple[float, Change]], since: float, expected: int,
             present: Iterable[tuple[int, str]] = ()) -> dict:
    """From stamped VIP changes: seconds after `since` until the first VIP
    new since then appeared, and until `expected` VIPs were present at once
    (None if never). `present`: the VIPs held before the first event."""
    held = set(present)
    first = done = None
    if len(held) >= expected:
        done = 0.0
    for stamp, change in events:
        key = (change.ifindex, change.address)
        if change.added:
            if key not in held and stamp >= since and first is None:
                first = stamp - since
            held.add(key)
        else:
            held.discard(key)
        if done is None and len(held) >= expected and stamp >= since:
            done = stamp - since
    return {"first_s": None if first is None else round(first, 4),
            "all_s": None if done is None else round(done, 4), "held": len(held)}


class AddressMonitor:
    """Stamps the VIP notifications of namespace `ns` from start() to stop()."""

    def __init__(self, ns: str, prefixlen: int = 16) -> None:
        self.prefixlen = prefixlen
        self.sock = socket_in_netns(ns)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        self.sock.bind((0, RTMGRP_IPV4_IFADDR))
        self.sock.settimeout(0.05)           # so stop() is seen within 50 ms
        self.events: list[tuple[float, Change]] = []
        self.overruns = 0                    # ENOBUFS: notifications the kernel dropped
        self.held: set[tuple[int, str]] = set()
        self._wanted = 0
        self._reached = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._read, name="addrmon", daemon=True)

    def start(self) -> AddressMonitor:
        self._thread.start()
        return self

    def wait_for(self, expected: int, timeout: float) -> bool:
        """True once `expected` VIPs are held at once (counted from start())."""
        self._wanted = expected
        if len(self.held) >= expected:
            self._reached.set()
        return self._reached.wait(timeout)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self.sock.close()

    def _read(self) -> None:
        while not self._stopping.is_set():
            try:
                data = self.sock.recv(READ_SIZE)
            except socket.timeout:
                continue
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.overruns += 1
                    continue
                return
            stamp = time.monotonic()
            for change in changes(data):
                if not is_vip(change, self.prefixlen):
                    continue
                self.events.append((stamp, change))
                key = (change.ifindex, change.address)
                if change.added:
                    self.held.add(key)
                else:
                    self.held.discard(key)
            if self._wanted and len(self.held) >= self._wanted:
                self._reached.set()

