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
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from hivrrp._wire import DEFAULT_MTU
from hivrrp.kernel.addrbatch import AddressBatcher, Change
from hivrrp.kernel.firewall import Firewall
from hivrrp.kernel.firewall_policy import Settings
from hivrrp.kernel.pyroute2_lean import install as lean_pyroute2
from hivrrp.kernel.pyroute2_lean import iproute_class
from hivrrp.kernel.routing import Routing
from hivrrp.kernel.rtnl import RTM_NEWADDR
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
RESUBSCRIBE_DELAY = 0.05       # seconds; bounds the CPU if subscribing keeps failing
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
                             msg.get("mtu") or DEFAULT_MTU)
        return out

    async def addresses(self) -> list[Address]:
        return await self._run(self._addresses)

    def _addresses(self) -> list[Address]:
        return [Address(msg.get("index"), 4 if msg.get("family") == socket.AF_INET else 6,
                        msg.get("address"), msg.get("prefixlen"), msg.get("scope"))
                for msg in self.ipr.get_addr()]

    async def apply(self, changes: list[Change], drop: Sequence[Change] = (),
                    undrop: Sequence[Change] = ()) -> list[tuple[Change, str]]:
        """Apply address changes in one trip to the worker; returns the failures.
        `drop` / `undrop`: VIPs into and out of the no_accept drop sets, in the
        same trip, one transaction each: into them before the addresses change,
        out of them after (the firewall counts and logs its own failures)."""
        return await self._run(self._apply, changes, drop, undrop)

    def _apply(self, changes: list[Change], drop: Sequence[Change],
               undrop: Sequence[Change]) -> list[tuple[Change, str]]:
        if drop:
            self._drops(drop, [])
        failures = self.batcher.apply(changes) if changes else []
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

    A second IPRoute bound to the multicast groups, on a thread of its own
    (its get() blocks). Each batch of messages becomes one callback on the
    loop with compact tuples:
        ("link", index, name, mac, up, mtu), ("deladdr", index, family, address),
        ("newaddr", index, family, address) only while want_new_addresses(True),
        ("resync",) after a lost message (ENOBUFS): the daemon re-reads everything.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, callback,
                 buffer_bytes: int = MONITOR_BUFFER) -> None:
        self.loop = loop
        self.callback = callback
        self.buffer_bytes = buffer_bytes
        self.stopped = False
        self.ipr = None
        self.thread: threading.Thread | None = None
        self.new_addresses = False
        # The subscribed socket's descriptor, taken on the monitor's thread:
        # pyroute2 0.9 gives every thread its own transport, so ipr.fileno()
        # called from the loop's thread opens a new, unsubscribed socket.
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

    def _open(self):
        # IPRoute() drives an event loop of its own: it must be created on
        # this thread, not on the one running uvloop.
        IPRoute = iproute_class()
        from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR, RTMGRP_LINK
        ipr = IPRoute()
        try:
            ipr.bind(groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
            fd = ipr.fileno()
            with self.fd_lock, borrowed(fd) as sock:
                attach_filter(sock, self._filter())
                force_buffers(sock, receive=self.buffer_bytes)
                self.fd = fd
        except Exception:
            _close_quietly(ipr)
            raise
        return ipr

    def _close(self, ipr) -> None:
        with self.fd_lock:
            self.fd = None
            _close_quietly(ipr)

    def _work(self, ready) -> None:
        try:
            self.ipr = self._open()
        except Exception as exc:
            log.error("netlink monitor unavailable: %s", exc)
            return
        finally:
            ready.set()
        while not self.stopped:
            try:
                messages = self.ipr.get()
            except Exception as exc:  # ENOBUFS after an overrun, or closed at exit
                if self.stopped:
                    break
                # pyroute2 keeps the error of an overrun and raises it from
                # every later get(): this loop spun at full speed (and starved
                # the daemon of the GIL) until the socket was replaced.
                log.warning("netlink monitor: %s; resubscribing and resynchronising", exc)
                self._close(self.ipr)
                time.sleep(RESUBSCRIBE_DELAY)
                try:
                    self.ipr = self._open()
                except Exception as exc:
                    log.error("netlink monitor unavailable: %s", exc)
                    return
                events = [("resync",)]  # after resubscribing: nothing falls in between
            else:
                events = [e for e in map(_event, messages) if e is not None]
            if events and not self.stopped:
                self.loop.call_soon_threadsafe(self.callback, events)
        self._close(self.ipr)

    def stop(self) -> None:
        self.stopped = True
        if self.ipr is not None:
            self._close(self.ipr)  # wakes the thread blocked in get()


def _close_quietly(ipr) -> None:
    try:
        ipr.close()
    except Exception:
        pass  # after an overrun, pyroute2's close() raises the overrun again


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


def _event(msg) -> tuple | None:
    kind = msg.get("event")
    if kind in ("RTM_NEWLINK", "RTM_DELLINK"):
        flags = msg.get("flags") or 0
        mac = msg.get("address") or "00:00:00:00:00:00"
        up = kind == "RTM_NEWLINK" and bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)
        return ("link", msg.get("index"), msg.get("ifname"), bytes.fromhex(mac.replace(":", "")),
                up, msg.get("mtu") or DEFAULT_MTU)
    if kind in ("RTM_DELADDR", "RTM_NEWADDR"):
        family = 4 if msg.get("family") == socket.AF_INET else 6
        return ("deladdr" if kind == "RTM_DELADDR" else "newaddr", msg.get("index"), family,
                msg.get("address"))
    return None
