"""Interfaces and addresses through pyroute2, on a thread of its own.

pyroute2's asyncio API cannot run on uvloop (no AF_NETLINK datagram
endpoints), and address changes for thousands of VIPs must not stall the
loop that sends adverts, so the synchronous IPRoute lives on one worker
thread and the daemon awaits it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import logging
import select
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hivrrp._wire import DEFAULT_MTU
from hivrrp.kernel.addrbatch import AddressBatcher, Change
from hivrrp.kernel.firewall import Firewall
from hivrrp.kernel.firewall_policy import Settings
from hivrrp.kernel.pyroute2_lean import install as lean_pyroute2
from hivrrp.kernel.pyroute2_lean import iproute_class
from hivrrp.kernel.routing import Routing
from hivrrp.kernel.rtnl import (
    ARPHRD_ETHER,
    IFA_ADDRESS,
    IFADDRMSG,
    IFINFOMSG,
    IFLA_ADDRESS,
    IFLA_IFNAME,
    IFLA_MTU,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    attributes,
    messages,
)
from hivrrp.kernel.sockets import attach_filter, borrowed, force_buffers
from hivrrp.util.ratelimit import RateLimiter
from hivrrp.util.tasks import spawn

log = logging.getLogger("hivrrp.kernel.netlink")

IFF_UP = 0x1
IFF_RUNNING = 0x40
# Removing 4,000 VIPs queues 4,000 RTM_DELADDR (about 4 MiB of socket buffer):
# more than the default buffer, so the monitor gets room for a burst of that size.
MONITOR_BUFFER = 32 << 20
CLOSE_TIMEOUT = 5.0            # seconds for the netlink thread to close its sockets
RESUBSCRIBE_DELAY = 0.05       # seconds; bounds the CPU if reading keeps failing
STOP_POLL = 0.5                # seconds: how soon the monitor thread sees stop()
RECEIVE_SIZE = 65536           # bytes per read (a notification is one datagram, ~1.5 KiB)
DRAIN_MAX = 512                # datagrams read before the loop hears of them
RTMGRP_LINK, RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x1, 0x10, 0x100
# Seconds between two looks at the no_accept tables (Firewall.check): a
# ruleset flushed behind our back lets the VIPs answer until then.
FIREWALL_CHECK_PERIOD = 3.0
FIREWALL_BUG_LOG_PERIOD = 60.0  # seconds between two tracebacks of one firewall bug

# Here, on the importing thread: the netlink and monitor threads then import
# the same lean submodules, and never the placeholder's set-up at once.
lean_pyroute2()


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    mac: bytes
    up: bool                       # administratively up and carrier present
    mtu: int = DEFAULT_MTU         # how many VIPs fit in an advert depends on it
    arphrd: int = ARPHRD_ETHER     # link type: adverts go out as frames on Ethernet only


@dataclass(frozen=True)
class Address:
    index: int
    family: int                    # 4 or 6
    address: str
    prefixlen: int
    scope: int


class Netlink:
    def __init__(self) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="netlink")
        self.ipr = None
        self.batcher: AddressBatcher | None = None
        self.firewall: Firewall | None = None    # start_firewall() makes it
        self.firewall_watch: asyncio.Task | None = None
        self.firewall_bugs = RateLimiter(FIREWALL_BUG_LOG_PERIOD)

    async def _run(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def run(self, function, *args):
        """function(*args) on the netlink thread (kernel/vmac.py's work)."""
        return await self._run(function, *args)

    async def start(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self.ipr = iproute_class()()
        self.batcher = AddressBatcher()

    async def links(self) -> dict[str, Link]:
        return await self._run(self._links)

    def _links(self) -> dict[str, Link]:
        out = {}
        for msg in self.ipr.get_links():
            name = msg.get("ifname")
            mac = msg.get("address") or "00:00:00:00:00:00"
            flags = msg.get("flags") or 0
            out[name] = Link(msg.get("index"), name, bytes.fromhex(mac.replace(":", "")),
                             bool(flags & IFF_UP) and bool(flags & IFF_RUNNING),
                             msg.get("mtu") or DEFAULT_MTU, msg.get("ifi_type", ARPHRD_ETHER))
        return out

    async def addresses(self) -> list[Address]:
        return await self._run(self._addresses)

    def _addresses(self) -> list[Address]:
        return [Address(msg.get("index"), 4 if msg.get("family") == socket.AF_INET else 6,
                        msg.get("address"), msg.get("prefixlen"), msg.get("scope"))
                for msg in self.ipr.get_addr()]

    async def apply(self, changes: list[Change], drop: Sequence[Change] = (),
                    undrop: Sequence[Change] = (),
                    progress: Callable[[int], None] | None = None) -> list[tuple[Change, str]]:
        """Apply address changes in one trip to the worker; returns the failures.
        `drop` / `undrop`: VIPs into and out of the no_accept drop sets, in the
        same trip, one transaction each: into them before the addresses change,
        out of them after (the firewall counts and logs its own failures).
        `progress(done)`: called on the loop as the trip goes, when the first
        `done` changes are applied (addrbatch.AddressBatcher.apply)."""
        report = None
        if progress is not None:
            loop = asyncio.get_running_loop()

            def report(done: int) -> None:
                try:
                    loop.call_soon_threadsafe(progress, done)
                except RuntimeError:
                    pass    # the loop is closed: nobody waits for the news
        return await self._run(self._apply, changes, drop, undrop, report)

    def _apply(self, changes: list[Change], drop: Sequence[Change],
               undrop: Sequence[Change],
               progress: Callable[[int], None] | None = None) -> list[tuple[Change, str]]:
        if drop:
            self._drops(drop, [])
        failures = []
        if changes:
            failures = (self.batcher.apply(changes) if progress is None
                        else self.batcher.apply(changes, progress))
        if undrop:
            self._drops([], undrop)
        return failures

    def _drops(self, add: Sequence[Change], remove: Sequence[Change]) -> None:
        """The firewall's own failures are its to count and log; anything else
        it raises (a bug) must not cost the trip its address changes."""
        firewall = self.firewall
        if firewall is None:
            return
        try:
            firewall.update(add, remove)
        except Exception as exc:  # noqa: BLE001 - see above
            if self.firewall_bugs.note(repr(exc), None, time.monotonic()):
                log.error("nftables: the drop set update failed (%s); the addresses are "
                          "changed all the same, the drop sets rebuilt at the next change",
                          exc or type(exc).__name__, exc_info=exc)
            firewall.in_step = False

    async def start_firewall(self, settings: Settings, families: set[int]) -> None:
        """The no_accept tables: a previous run's removed, `families`' made,
        then looked at every FIREWALL_CHECK_PERIOD."""
        def start() -> None:
            self.firewall = Firewall(settings)
            self.firewall.start(families)
        await self._run(start)
        self.firewall_watch = spawn(self._watch_firewall(), "watch the nftables tables")

    async def _watch_firewall(self) -> None:
        while True:
            await asyncio.sleep(FIREWALL_CHECK_PERIOD)
            firewall = self.firewall
            if firewall is None or not firewall.needs_check():
                continue
            try:
                # A trip of its own: between the VIPs' trips, never inside one.
                await self._run(firewall.check)
            except Exception as exc:  # noqa: BLE001 - a bug: the next look may do better
                if self.firewall_bugs.note(repr(exc), None, time.monotonic()):
                    log.error("nftables: checking the tables failed: %s",
                              exc or type(exc).__name__, exc_info=exc)

    async def stop_firewall(self) -> None:
        """The tables removed (after the VIPs)."""
        self._stop_watching()
        if self.firewall is not None:
            await self._run(self.firewall.stop)

    def _stop_watching(self) -> None:
        if self.firewall_watch is not None:
            self.firewall_watch.cancel()
            self.firewall_watch = None

    async def routing(self, add: bool, entries: list[Routing]) -> list[tuple[Routing, str]]:
        """Add or remove routes and rules; existing (add) or missing (remove) ones are fine."""
        return await self._run(self._routing, add, entries)

    def _routing(self, add: bool, entries: list[Routing]) -> list[tuple[Routing, str]]:
        from pyroute2.netlink.exceptions import NetlinkError
        failures = []
        for kind, spec in entries:
            try:
                getattr(self.ipr, kind)("add" if add else "del", **spec)
            except NetlinkError as exc:
                if (add and exc.code == errno.EEXIST) or (
                        not add and exc.code in (errno.ESRCH, errno.ENOENT)):
                    continue
                failures.append(((kind, spec), str(exc)))
        return failures

    def close(self) -> None:
        """Never raises: at exit a stuck netlink thread is reported, not fatal."""
        self._stop_watching()
        try:
            self.executor.submit(self._close).result(timeout=CLOSE_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - timeout, or whatever pyroute2 raised
            log.error("closing netlink: %s", exc or type(exc).__name__)
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _close(self) -> None:
        if self.firewall is not None:
            self.firewall.close()
        if self.batcher is not None:
            self.batcher.close()
        if self.ipr is not None:
            self.ipr.close()


class Monitor:
    """Link and address events from the kernel, posted to the event loop.

    A netlink socket bound to the link and address multicast groups, read on
    a thread of its own and decoded here (rtnl.py's framing) rather than by
    pyroute2: pyroute2 leaves about 200 cyclic objects per message, and a
    reload that makes 1,000 VMACs hears some 4,000 link messages, which the
    collection at its end (the collector rests during a reload) then walked
    for 220-280 ms with the loop held. Each batch of messages becomes one
    callback on the loop with compact tuples:
        ("link", index, name, mac, up, mtu, arphrd), ("deladdr", index, family, address),
        ("newaddr", index, family, address) only while want_new_addresses(True),
        ("resync",) after a lost message (ENOBUFS): the daemon re-reads everything,
        ("dellink", index, name) after the "link" of a deleted link (a VMAC
        deleted behind our back is made again, one set down is not).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, callback,
                 buffer_bytes: int = MONITOR_BUFFER) -> None:
        self.loop = loop
        self.callback = callback
        self.buffer_bytes = buffer_bytes
        self.stopped = False
        self.sock: socket.socket | None = None
        self.thread: threading.Thread | None = None
        self.new_addresses = False
        # The subscribed socket's descriptor, for want_new_addresses().
        self.fd: int | None = None
        # Held while fd is set, used or closed: a descriptor number closed by
        # the monitor thread may be reused at once by another socket (a VRRP
        # one), which must never get this filter.
        self.fd_lock = threading.Lock()

    def want_new_addresses(self, wanted: bool) -> None:
        """Let address additions through (while an instance waits for a source
        address) or have the kernel drop them (the usual case)."""
        with self.fd_lock:
            if wanted == self.new_addresses:
                return
            self.new_addresses = wanted
            if self.fd is not None:
                with borrowed(self.fd) as sock:
                    attach_filter(sock, self._filter())

    def _filter(self) -> list[tuple[int, int, int, int]]:
        return KEEP_ALL if self.new_addresses else DROP_NEW_ADDRESSES

    def start(self) -> None:
        ready = threading.Event()
        self.thread = threading.Thread(target=self._work, args=(ready,),
                                       name="netlink-monitor", daemon=True)
        self.thread.start()
        ready.wait(5)  # subscribed before the caller's first dump

    def _open(self) -> socket.socket:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            sock.setblocking(False)
            with self.fd_lock:
                attach_filter(sock, self._filter())
                force_buffers(sock, receive=self.buffer_bytes)
                self.fd = sock.fileno()
        except Exception:
            sock.close()
            raise
        return sock

    def _close(self) -> None:
        with self.fd_lock:
            self.fd = None
            if self.sock is not None:
                self.sock.close()   # its fd number is -1 from now on: never reused by us

    def _work(self, ready) -> None:
        try:
            self.sock = self._open()
        except Exception as exc:
            log.error("netlink monitor unavailable: %s", exc)
            return
        finally:
            ready.set()
        sock = self.sock
        while not self.stopped:
            data: list[bytes] = []
            try:
                # Woken now and then to see whether it is stopping: closing a
                # socket does not wake a thread blocked reading it.
                if not select.select([sock], [], [], STOP_POLL)[0]:
                    continue
                # Each notification is a datagram of its own: what is queued
                # goes in one callback (4,000 VIPs removed at a failover are a
                # few callbacks on the loop, not 4,000).
                while len(data) < DRAIN_MAX:
                    try:
                        data.append(sock.recv(RECEIVE_SIZE))
                    except BlockingIOError:
                        break
            except (OSError, ValueError) as exc:   # ValueError: select on a closed socket
                if self.stopped:
                    break
                if getattr(exc, "errno", None) != errno.ENOBUFS:
                    log.error("netlink monitor: %s; resynchronising", exc)
                    time.sleep(RESUBSCRIBE_DELAY)   # bounds the CPU if it keeps failing
                else:
                    log.warning("netlink monitor: %s; resynchronising", exc)
                # The socket goes on after an overrun: what comes next is newer
                # than the dump the resync makes, nothing falls in between.
                # (What was read before it is older than that dump: dropped.)
                events = [("resync",)]
            else:
                events = [e for datagram in data
                          for kind, _flags, _seq, body in messages(datagram)
                          for e in _events(kind, body)]
            if events and not self.stopped:
                self.loop.call_soon_threadsafe(self.callback, events)
        self._close()

    def stop(self) -> None:
        self.stopped = True
        self._close()       # the thread sees it within STOP_POLL


# Have the kernel drop RTM_NEWADDR notifications before they reach the monitor.
# It needs address *removals* only, but they share a multicast group with
# additions: when 4,000 VIPs move, parsing 4,000 RTM_NEWADDR messages in Python
# competed for the GIL with the VIP changes themselves. nlmsg_type is
# host-endian while BPF loads are big-endian, hence the swap.
_NEWADDR_AS_LOADED = RTM_NEWADDR if sys.byteorder == "big" else RTM_NEWADDR << 8
DROP_NEW_ADDRESSES = [(0x28, 0, 0, 4),                      # ldh [4]   nlmsg_type
                      (0x15, 0, 1, _NEWADDR_AS_LOADED),     # jeq NEWADDR
                      (0x06, 0, 0, 0),                      # ret #0    drop
                      (0x06, 0, 0, 0xFFFFFFFF)]             # ret #-1   keep
KEEP_ALL = [(0x06, 0, 0, 0xFFFFFFFF)]


def _events(kind: int, body: bytes) -> list[tuple]:
    """The tuples of one rtnetlink message (see Monitor)."""
    if kind in (RTM_NEWLINK, RTM_DELLINK) and len(body) >= IFINFOMSG.size:
        family, arphrd, index, flags, _change = IFINFOMSG.unpack_from(body)
        if family != socket.AF_UNSPEC:
            return []              # AF_BRIDGE: a bridge port's news, not the link's
        name, mac, mtu = "", b"\0" * 6, DEFAULT_MTU
        for key, payload in attributes(body, IFINFOMSG.size):
            if key == IFLA_IFNAME:
                name = payload.split(b"\0", 1)[0].decode(errors="replace")
            elif key == IFLA_ADDRESS and payload:
                mac = bytes(payload)
            elif key == IFLA_MTU and len(payload) >= 4:
                mtu = struct.unpack_from("=I", payload)[0] or DEFAULT_MTU
        up = kind == RTM_NEWLINK and bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)
        link = ("link", index, name, mac, up, mtu, arphrd)
        if kind == RTM_DELLINK:
            return [link, ("dellink", index, name)]
        return [link]
    if kind in (RTM_NEWADDR, RTM_DELADDR) and len(body) >= IFADDRMSG.size:
        family, _prefixlen, _flags, _scope, index = IFADDRMSG.unpack_from(body)
        af = socket.AF_INET if family == socket.AF_INET else socket.AF_INET6
        size = 4 if af == socket.AF_INET else 16
        address = None
        for key, payload in attributes(body, IFADDRMSG.size):
            # IFA_ADDRESS, as pyroute2's "address" (and `ip addr` for a VIP) has it.
            if key == IFA_ADDRESS and len(payload) >= size:
                address = socket.inet_ntop(af, payload[:size])
        if address is None:
            return []
        return [("deladdr" if kind == RTM_DELADDR else "newaddr", index,
                 4 if af == socket.AF_INET else 6, address)]
    return []
