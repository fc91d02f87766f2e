"""Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6).

The frames and their paced sending; when to send them is announce_policy.py's.
Frames are spaced by `interval` (vrrp_garp_interval / vrrp_gna_interval);
with thousands of VIPs moving at once they go out in slices so the event
loop keeps serving adverts. Rare work, so plain Python.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections import deque
from collections.abc import Callable

log = logging.getLogger("hivrrp.kernel.announce")

ETH_P_ARP = 0x0806
FRAMES_PER_SLICE = 256          # per loop iteration, across all interfaces
ND_NA_FLAGS = 0xA0000000        # Router | Override (RFC 4861 4.4; VRRP masters are routers)


def arp_request(mac: bytes, sender: bytes, target: bytes,
                target_mac: bytes = b"\0" * 6) -> bytes:
    """A broadcast ARP request from `sender` at `mac` asking for `target`."""
    ethernet = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, sender, target_mac, target)
    return ethernet + arp


def garp_frame(mac: bytes, address: bytes) -> bytes:
    """ARP request announcing `address` at `mac` (what keepalived and arping -U send)."""
    return arp_request(mac, address, address, target_mac=b"\xff" * 6)


def na_message(mac: bytes, address: bytes) -> bytes:
    """ICMPv6 neighbour advertisement for `address` with our link-layer address.

    The kernel fills in the checksum of raw ICMPv6 sockets.
    """
    header = struct.pack("!BBHI16s", 136, 0, 0, ND_NA_FLAGS, address)
    return header + struct.pack("!BB6s", 2, 1, mac)  # option 2: target link-layer address


class Announcer:
    """Frames on the wire, paced; each one checked when it is due.

    `wanted(name)` is asked before every frame: an instance that left MASTER
    since its burst was queued must not point hosts at us any more.
    """

    def __init__(self, wanted: Callable[[str], bool]) -> None:
        self.wanted = wanted
        # (name, ifname, ifindex, family, mac, address, frames still to send)
        self.queue: deque[tuple[str, str, int, int, bytes, bytes, int]] = deque()
        self.packet_socket: socket.socket | None = None
        self.icmp6_socket: socket.socket | None = None
        self.sent = 0
        self.errors = 0
        self.dropped = 0               # frames of instances no longer master when due
        self._draining = False

    def _sockets(self) -> None:
        if self.packet_socket is None:
            self.packet_socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            self.packet_socket.setblocking(False)
        if self.icmp6_socket is None:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setblocking(False)
            self.icmp6_socket = sock

    def announce(self, loop: asyncio.AbstractEventLoop, name: str, ifname: str, ifindex: int,
                 mac: bytes, addresses: list[tuple[int, bytes]], *, repeat: int,
                 interval: float = 0.0) -> None:
        """Queue `repeat` announcements of each address for instance `name`.

        Round by round: every queued address gets its first frame before any
        gets its second. With 4,000 VIPs moving at once, the last VIP's first
        frame then goes out after 4,000 frames rather than 16,000, and the
        queue holds one entry per address, not one per frame."""
        if repeat <= 0 or not addresses:
            return
        for family, address in addresses:
            self.queue.append((name, ifname, ifindex, family, mac, address, repeat))
        if not self._draining:
            self._draining = True
            loop.call_soon(self._drain, loop, interval)

    def announce_many(self, loop: asyncio.AbstractEventLoop,
                      frames: list[tuple[str, str, int, int, bytes, bytes]], *, repeat: int,
                      interval: float = 0.0) -> None:
        """announce() for many instances' addresses at once (a leader's
        followers): (name, ifname, ifindex, family, mac, address) each, in
        the same rounds as the rest of the queue."""
        if repeat <= 0 or not frames:
            return
        self.queue.extend([(*frame, repeat) for frame in frames])
        if not self._draining:
            self._draining = True
            loop.call_soon(self._drain, loop, interval)

    def _drain(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        try:
            self._sockets()
        except OSError as exc:
            log.error("cannot open announcement sockets: %s", exc)
            self.queue.clear()
            self._draining = False
            return
        budget = 1 if interval > 0 else FRAMES_PER_SLICE
        while self.queue and budget:
            name, ifname, ifindex, family, mac, address, left = self.queue.popleft()
            if not self.wanted(name):
                self.dropped += left
                continue
            budget -= 1
            if left > 1:
                self.queue.append((name, ifname, ifindex, family, mac, address, left - 1))
            try:
                if family == 4:
                    self.packet_socket.sendto(garp_frame(mac, address), (ifname, ETH_P_ARP))
                else:
                    self.icmp6_socket.sendto(na_message(mac, address), ("ff02::1", 0, 0, ifindex))
                self.sent += 1
            except OSError as exc:
                self.errors += 1
                log.debug("announcement on %s failed: %s", ifname, exc)
        if self.queue:
            if interval > 0:
                loop.call_later(interval, self._drain, loop, interval)
            else:
                loop.call_soon(self._drain, loop, interval)
        else:
            self._draining = False

    def close(self) -> None:
        self.queue.clear()
        for sock in (self.packet_socket, self.icmp6_socket):
            if sock is not None:
                sock.close()
