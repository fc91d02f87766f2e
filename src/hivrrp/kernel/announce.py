"""Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6): paced sending.

When to send them is announce_policy.py's. The queue and the frames are C
(hivrrp._announce): one entry per address, frames written into fixed buffers
and sent with sendmmsg, each checked against its instance's state in the
engine when it is its turn. Here: the sockets, the pacing (`interval`:
vrrp_garp_interval / vrrp_gna_interval, else SLICE frames per loop iteration
so the loop keeps serving adverts), a reload's renumbering, and the log.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import struct
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from hivrrp._announce import AnnounceQueue
from hivrrp.kernel.sockets import force_buffers
from hivrrp.util.ratelimit import RateLimiter

log = logging.getLogger("hivrrp.kernel.announce")

ETH_P_ARP = 0x0806
# Frames per loop iteration when no interval paces them: about 2 ms of the
# kernel's work on a veth (bench/takeover_path.py's `drain max`), what 256
# frames sent one by one from Python took before; adverts due meanwhile wait
# no longer than that.
SLICE = 1024
BATCH = 256                     # frames per sendmmsg
# Room for a burst in the sockets' send buffers: a frame a NIC has not sent
# yet holds about 1 KiB of it, and a full buffer makes the drain wait.
SEND_BUFFER = 4 << 20
BLOCKED_RETRY = 0.001           # seconds before trying a full send buffer again
# While `hold()` says so (a VIP trip in flight), repeats wait and only first
# frames go: a repeat's kernel work on the one other core slows the trip,
# whose next addresses the first frames of the rest wait for. At most this
# long, so that a queue of trips never starves them.
HOLD_MAX = 0.25
HOLD_POLL = 0.001               # seconds between two looks while repeats wait
BLOCKED_GIVE_UP = 1.0           # seconds of a buffer that stays full: then frames fail
ERROR_LOG_PERIOD = 60.0         # seconds between two lines about one kind of failure

# One address to announce, as the C queue reads it: engine index, link slot
# (an index into the links handed over with the records), family, a pad
# byte, the address in 16 bytes.
RECORD = struct.Struct("=iHBx16s")


def pack(entries: Iterable[tuple[int, int, int, bytes]]) -> bytes:
    """RECORDs of (engine index, link slot, family, packed address) tuples."""
    return b"".join(RECORD.pack(*entry) for entry in entries)


@dataclass(frozen=True, slots=True, eq=False)
class Block:
    """Addresses of one or more instances to announce, packed for the queue
    (at plan build, off the loop): `records` name their instances by engine
    index in `names` (that plan's index -> name list: a burst after a reload
    is renumbered by name) and their links by slot in `links` (ifindexes),
    whose MACs are looked up when a burst is queued. `family`: the first
    address's, which picks the pacing interval as for a single instance."""

    records: bytes
    links: tuple[int, ...]
    family: int
    names: Sequence[str]

    def __len__(self) -> int:
        return len(self.records) // RECORD.size


def block(entries: Iterable[tuple[int, int, int, bytes]], names: Sequence[str]) -> Block:
    """A Block of (engine index in `names`, ifindex, family, packed address) tuples."""
    slots: dict[int, int] = {}
    packed = [(index, slots.setdefault(ifindex, len(slots)), family, address)
              for index, ifindex, family, address in entries]
    return Block(pack(packed), tuple(slots), packed[0][2] if packed else 4, names)


def arp_request(mac: bytes, sender: bytes, target: bytes,
                target_mac: bytes = b"\0" * 6) -> bytes:
    """A broadcast ARP request from `sender` at `mac` asking for `target`."""
    ethernet = b"\xff" * 6 + mac + struct.pack("!H", ETH_P_ARP)
    arp = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, sender, target_mac, target)
    return ethernet + arp


class Announcer:
    """Frames on the wire, paced; each one checked when it is due.

    Queued entries carry engine indexes: those of the index space `names`
    (a plan's index -> name list). When a reload swaps the plan they are
    renumbered by name, so that each frame is still checked against its own
    instance's state; a removed instance's frames are dropped."""

    def __init__(self, current_plan: Callable[[], object],
                 links_by_index: Callable[[], Mapping[int, object]] = dict,
                 hold: Callable[[], bool] = lambda: False) -> None:
        self.current_plan = current_plan
        self.links_by_index = links_by_index
        self.hold = hold
        self._held_since: float | None = None
        self.queue = AnnounceQueue(BATCH)
        self.names: Sequence[str] | None = None     # the queue's index space
        # (index space, plan, its renumbering into the plan): a refresh chain
        # that outlived a reload renumbers its block once, not every period.
        self._renumbered: tuple[Sequence[str], object, array] | None = None
        self.packet_socket: socket.socket | None = None
        self.icmp6_socket: socket.socket | None = None
        self.failures = RateLimiter(ERROR_LOG_PERIOD)
        self._draining = False
        self._blocked_since: float | None = None
        self._errors_logged = 0

    @property
    def sent(self) -> int:
        return self.queue.sent

    @property
    def first(self) -> int:
        """Frames that were an address's first of its burst."""
        return self.queue.first

    @property
    def errors(self) -> int:
        return self.queue.errors

    @property
    def dropped(self) -> int:
        """Frames of instances no longer master when due."""
        return self.queue.dropped

    def _sockets(self) -> None:
        if self.packet_socket is None:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            sock.setblocking(False)
            force_buffers(sock, send=SEND_BUFFER)
            self.packet_socket = sock
        if self.icmp6_socket is None:
            sock = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setblocking(False)
            force_buffers(sock, send=SEND_BUFFER)
            self.icmp6_socket = sock

    def announce(self, loop: asyncio.AbstractEventLoop, name: str, ifindex: int, mac: bytes,
                 addresses: list[tuple[int, bytes]], *, repeat: int,
                 interval: float = 0.0) -> None:
        """Queue `repeat` announcements of each (family, packed) address of
        instance `name` on link `ifindex`, round by round with the rest."""
        plan = self.current_plan()
        index = plan.index.get(name) if plan is not None else None
        if index is None or repeat <= 0 or not addresses:
            return
        records = pack((index, 0, family, address) for family, address in addresses)
        self._add(loop, plan, records, None, array("i", [ifindex]), mac, repeat, interval)

    def announce_block(self, loop: asyncio.AbstractEventLoop, what: Block, *, repeat: int,
                       interval: float = 0.0) -> None:
        """Queue `repeat` announcements of every address of `what` (many
        instances', a leader's followers), packed at plan build: the MACs of
        its links are the only per-burst work, the rest is C."""
        plan = self.current_plan()
        if plan is None or repeat <= 0 or not len(what):
            return
        links = self.links_by_index()
        ifindexes, macs = array("i"), bytearray()
        for index in what.links:
            link = links.get(index)
            ifindexes.append(index if link is not None else 0)   # gone: nothing queued
            macs += link.mac if link is not None else bytes(6)
        mapping = None if what.names is plan.names else self._renumbering(what.names, plan)
        self._add(loop, plan, what.records, mapping, ifindexes, bytes(macs), repeat, interval)

    def _add(self, loop: asyncio.AbstractEventLoop, plan, records: bytes,
             mapping: array | None, ifindexes: array, macs: bytes, repeat: int,
             interval: float) -> None:
        if self.names is not plan.names:
            self._rebase(plan)
        if self.queue.add(records, ifindexes, macs, repeat, mapping) and not self._draining:
            self._draining = True
            loop.call_soon(self._drain, loop, interval)

    def _renumbering(self, names: Sequence[str], plan) -> array:
        """Engine index in `names` -> index in `plan` (-1: not there)."""
        cached = self._renumbered
        if cached is None or cached[0] is not names or cached[1] is not plan:
            index = plan.index
            cached = (names, plan, array("i", [index.get(name, -1) for name in names]))
            self._renumbered = cached
        return cached[2]

    def _rebase(self, plan) -> None:
        """The queue renumbered from its index space to `plan`'s (None: the
        queue forgotten). Only a reload during a burst pays for it."""
        if len(self.queue):
            if self.names is not None and plan is not None:
                self.queue.remap(self._renumbering(self.names, plan))
            else:
                self.queue.clear()
        self.names = plan.names if plan is not None else None
        self._renumbered = None

    def _drain(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        try:
            self._drain_once(loop, interval)
        except BaseException:
            # A bug: the loop logs it; the next announcement starts a drain
            # again rather than finding one marked as running forever.
            self._idle()
            raise

    def _idle(self) -> None:
        """No drain runs until the next announcement. The hold start goes
        too: no drain would see the trip end (hold() false), and a later
        trip's repeats would be measured from this one's start."""
        self._draining = False
        self._held_since = None

    def _drain_once(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        plan = self.current_plan()
        if (plan.names if plan is not None else None) is not self.names:
            self._rebase(plan)
        if plan is None or not len(self.queue):
            self._idle()
            return
        try:
            self._sockets()
        except OSError as exc:
            log.error("cannot open announcement sockets: %s", exc)
            self.queue.clear()
            self._idle()
            return
        budget = 1 if interval > 0 else SLICE
        now = loop.time()
        give_up = (self._blocked_since is not None
                   and now - self._blocked_since >= BLOCKED_GIVE_UP)
        holding = self._holding(now)
        packet, icmp6 = self.packet_socket, self.icmp6_socket
        if isinstance(packet, socket.socket) and isinstance(icmp6, socket.socket):
            self.queue.drain(plan.engine, packet.fileno(), icmp6.fileno(), budget,
                             give_up=give_up, first_only=holding)
        else:
            self._hand_over(plan, budget, holding)
        if self.queue.errors != self._errors_logged or self.failures.entries:
            self._errors_logged = self.queue.errors
            self._log_failures(now)
        if self.queue.blocked:
            if self._blocked_since is None:
                self._blocked_since = now
            loop.call_later(BLOCKED_RETRY, self._drain, loop, interval)
            return
        self._blocked_since = None
        if len(self.queue):
            if holding and not self.queue.waiting_first:
                loop.call_later(HOLD_POLL, self._drain, loop, interval)
            elif interval > 0:
                loop.call_later(interval, self._drain, loop, interval)
            else:
                loop.call_soon(self._drain, loop, interval)
        else:
            self._idle()

    def _holding(self, now: float) -> bool:
        """Do repeats wait now (hold(), for at most HOLD_MAX)?"""
        if not self.hold():
            self._held_since = None
            return False
        if self._held_since is None:
            self._held_since = now
        return now - self._held_since < HOLD_MAX

    def _hand_over(self, plan, budget: int, first_only: bool) -> None:
        """Sockets that are not the kernel's (tests' recorders) get each
        frame the queue would have sent, by sendto."""
        frames: list[tuple[int, int, bytes]] = []
        self.queue.drain(plan.engine, -1, -1, budget, capture=frames, first_only=first_only)
        for family, ifindex, frame in frames:
            if family == 4:
                self.packet_socket.sendto(frame, (ifindex, ETH_P_ARP))
            else:
                self.icmp6_socket.sendto(frame, ("ff02::1", 0, 0, ifindex))

    def _log_failures(self, now: float) -> None:
        links = self.links_by_index()
        for code, ifindex, family, count in self.queue.take_errors():
            link = links.get(ifindex)
            where = link.name if link is not None else f"interface index {ifindex}"
            kind = "gratuitous ARP" if family == 4 else "neighbour advertisement"
            if self.failures.note((code, ifindex, family), None, now, count):
                log.warning("%s on %s failed: %s (%s; later failures of the kind "
                            "summarised)", kind, where, os.strerror(code),
                            errno.errorcode.get(code, code))
        for summary in self.failures.due(now):
            code, ifindex, family = summary.key
            link = links.get(ifindex)
            log.warning("%s on %s failed %d more times in %.0f s: %s",
                        "gratuitous ARP" if family == 4 else "neighbour advertisement",
                        link.name if link is not None else f"interface index {ifindex}",
                        summary.repeats, summary.seconds, os.strerror(code))

    def close(self) -> None:
        self.queue.clear()
        for sock in (self.packet_socket, self.icmp6_socket):
            if sock is not None:
                sock.close()
