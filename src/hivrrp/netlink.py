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
import os
import socket
import threading
import time
from dataclasses import dataclass

from hivrrp.routing import Routing

log = logging.getLogger("hivrrp.netlink")

IFF_UP = 0x1
IFF_RUNNING = 0x40
SO_RCVBUFFORCE = 33
# Removing 4,000 VIPs queues 4,000 RTM_DELADDR (about 4 MiB of socket buffer):
# more than the default buffer, so the monitor gets room for a burst of that size.
MONITOR_BUFFER = 32 << 20
RESUBSCRIBE_DELAY = 0.05       # seconds; bounds the CPU if subscribing keeps failing


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    mac: bytes
    up: bool                       # administratively up and carrier present


@dataclass(frozen=True)
class Address:
    index: int
    family: int                    # 4 or 6
    address: str
    prefixlen: int
    scope: int


@dataclass(frozen=True)
class Change:
    add: bool
    index: int
    family: int
    address: str
    prefixlen: int
    label: str | None = None
    scope: str | None = None
    broadcast: str | None = None
    nodad: bool = False

    def removal(self) -> Change:
        """The change that takes this address away again."""
        return Change(False, self.index, self.family, self.address, self.prefixlen)


SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
IFA_F_NODAD = 0x02
BATCH = 128


def _message(change: Change):
    """An RTM_NEWADDR/RTM_DELADDR request for nlm_request_batch."""
    from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
    from pyroute2.netlink.rtnl import RTM_DELADDR, RTM_NEWADDR
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET if change.family == 4 else socket.AF_INET6
    msg["prefixlen"] = change.prefixlen
    msg["index"] = change.index
    attrs = [("IFA_LOCAL", change.address), ("IFA_ADDRESS", change.address)]
    if change.add:
        msg["scope"] = SCOPES.get(change.scope or "global", 0)
        if change.label:
            attrs.append(("IFA_LABEL", change.label))
        if change.broadcast and change.family == 4:
            attrs.append(("IFA_BROADCAST", change.broadcast))
        if change.nodad and change.family == 6:
            msg["flags"] = IFA_F_NODAD
    msg["attrs"] = attrs
    msg["header"]["type"] = RTM_NEWADDR if change.add else RTM_DELADDR
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | (
        NLM_F_CREATE | NLM_F_EXCL if change.add else 0)
    return msg


class Netlink:
    def __init__(self) -> None:
        self.executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="netlink")
        self.ipr = None

    async def _run(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, function, *args)

    async def start(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        from pyroute2 import IPRoute
        self.ipr = IPRoute()

    async def links(self) -> dict[str, Link]:
        return await self._run(self._links)

    def _links(self) -> dict[str, Link]:
        out = {}
        for msg in self.ipr.get_links():
            name = msg.get("ifname")
            mac = msg.get("address") or "00:00:00:00:00:00"
            flags = msg.get("flags") or 0
            out[name] = Link(msg.get("index"), name, bytes.fromhex(mac.replace(":", "")),
                             bool(flags & IFF_UP) and bool(flags & IFF_RUNNING))
        return out

    async def addresses(self) -> list[Address]:
        return await self._run(self._addresses)

    def _addresses(self) -> list[Address]:
        return [Address(msg.get("index"), 4 if msg.get("family") == socket.AF_INET else 6,
                        msg.get("address"), msg.get("prefixlen"), msg.get("scope"))
                for msg in self.ipr.get_addr()]

    async def apply(self, changes: list[Change]) -> list[tuple[Change, str]]:
        """Apply address changes in one trip to the worker; returns the failures."""
        return await self._run(self._apply, changes)

    def _apply(self, changes: list[Change]) -> list[tuple[Change, str]]:
        """Batched requests, one sendmsg per BATCH changes.

        Measured in a namespace: 4,000 addresses take 0.55 s this way against
        1.1 s one request-response at a time. Batches of more than a few hundred
        messages can leave pyroute2 waiting for acknowledgements forever, hence
        the bound. Errors inside a batch are not reported: verify() finds them.
        """
        if len(changes) <= 2:
            return [f for c in changes if (f := self._one(c)) is not None]
        for k in range(0, len(changes), BATCH):
            chunk = changes[k:k + BATCH]
            try:
                for _ in self.ipr.nlm_request_batch([_message(c) for c in chunk], noraise=True):
                    pass
            except Exception as exc:
                log.warning("batched address change failed (%s); verify() will retry", exc)
        return []

    async def verify(self, changes: list[Change]) -> list[tuple[Change, str]]:
        """Compare the kernel's addresses with the last change of each address
        and redo, one by one, what did not happen; returns the failures."""
        return await self._run(self._verify, changes)

    def _verify(self, changes: list[Change]) -> list[tuple[Change, str]]:
        final = {(c.index, c.address): c for c in changes}  # the last change of each wins
        present = {(a.index, a.address) for a in self._addresses()}
        failures = []
        for key, change in final.items():
            if (key in present) != change.add:
                failure = self._one(change)
                if failure is not None:
                    failures.append(failure)
        return failures

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

    def _one(self, change: Change) -> tuple[Change, str] | None:
        from pyroute2.netlink.exceptions import NetlinkError
        spec = {"index": change.index, "address": change.address, "prefixlen": change.prefixlen}
        if change.add:
            if change.label:
                spec["label"] = change.label
            if change.scope:
                spec["scope"] = SCOPES.get(change.scope, 0)
            if change.broadcast and change.family == 4:
                spec["broadcast"] = change.broadcast
            if change.nodad and change.family == 6:
                spec["flags"] = IFA_F_NODAD
        try:
            self.ipr.addr("add" if change.add else "del", **spec)
        except NetlinkError as exc:
            # Already there / already gone is the state we wanted.
            if (change.add and exc.code == errno.EEXIST) or (
                    not change.add and exc.code == errno.EADDRNOTAVAIL):
                return None
            return (change, str(exc))
        return None

    def close(self) -> None:
        if self.ipr is not None:
            self.executor.submit(self.ipr.close).result(timeout=5)
        self.executor.shutdown(wait=True)


class Monitor:
    """Link and address events from the kernel, posted to the event loop.

    A second IPRoute bound to the multicast groups, on a thread of its own
    (its get() blocks). Each batch of messages becomes one callback on the
    loop with compact tuples:
        ("link", index, name, mac, up), ("deladdr", index, family, address),
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

    def start(self) -> None:
        ready = threading.Event()
        self.thread = threading.Thread(target=self._work, args=(ready,),
                                       name="netlink-monitor", daemon=True)
        self.thread.start()
        ready.wait(5)  # subscribed before the caller's first dump

    def _open(self):
        # IPRoute() drives an event loop of its own: it must be created on
        # this thread, not on the one running uvloop.
        from pyroute2 import IPRoute
        from pyroute2.netlink.rtnl import RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR, RTMGRP_LINK
        ipr = IPRoute()
        try:
            ipr.bind(groups=RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR)
            drop_new_addresses(ipr.fileno())
            force_receive_buffer(ipr.fileno(), self.buffer_bytes)
        except Exception:
            _close_quietly(ipr)
            raise
        return ipr

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
                _close_quietly(self.ipr)
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
        _close_quietly(self.ipr)

    def stop(self) -> None:
        self.stopped = True
        if self.ipr is not None:
            _close_quietly(self.ipr)  # wakes the thread blocked in get()


def _close_quietly(ipr) -> None:
    try:
        ipr.close()
    except Exception:
        pass  # after an overrun, pyroute2's close() raises the overrun again


def force_receive_buffer(fd: int, size: int) -> None:
    """SO_RCVBUFFORCE (root may exceed net.core.rmem_max) on a socket we do not own."""
    duplicate = socket.socket(fileno=os.dup(fd))
    try:
        duplicate.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    finally:
        duplicate.close()


def drop_new_addresses(fd: int) -> None:
    """Have the kernel drop RTM_NEWADDR notifications before they reach us.

    The monitor needs address *removals* only, but they share a multicast
    group with additions: when 4,000 VIPs move, parsing 4,000 RTM_NEWADDR
    messages in Python competed for the GIL with the VIP changes themselves.
    nlmsg_type is host-endian while BPF loads are big-endian, hence the swap.
    """
    import sys

    from hivrrp.sockets import attach_filter

    RTM_NEWADDR = 20
    value = RTM_NEWADDR if sys.byteorder == "big" else (RTM_NEWADDR << 8)
    program = [(0x28, 0, 0, 4),            # ldh [4]     nlmsg_type
               (0x15, 0, 1, value),        # jeq NEWADDR
               (0x06, 0, 0, 0),            # ret #0      drop
               (0x06, 0, 0, 0xFFFFFFFF)]   # ret #-1     keep
    duplicate = socket.socket(fileno=os.dup(fd))
    try:
        attach_filter(duplicate, program)
    finally:
        duplicate.close()


def _event(msg) -> tuple | None:
    kind = msg.get("event")
    if kind in ("RTM_NEWLINK", "RTM_DELLINK"):
        flags = msg.get("flags") or 0
        mac = msg.get("address") or "00:00:00:00:00:00"
        up = kind == "RTM_NEWLINK" and bool(flags & IFF_UP) and bool(flags & IFF_RUNNING)
        return ("link", msg.get("index"), msg.get("ifname"), bytes.fromhex(mac.replace(":", "")),
                up)
    if kind == "RTM_DELADDR":
        family = 4 if msg.get("family") == socket.AF_INET else 6
        return ("deladdr", msg.get("index"), family, msg.get("address"))
    return None
