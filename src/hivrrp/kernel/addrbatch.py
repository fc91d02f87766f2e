"""VIP additions and removals as one stream of netlink requests, encoded here.

Written by hand rather than with pyroute2 because of the batch size: pyroute2
spent 100-150 us of Python per address (4,000 removals took 0.6-0.9 s at
SIGTERM, and the same on every mass takeover), while an RTM_NEWADDR is 60
bytes of struct.pack. Requests go out in chunks on a plain NETLINK_ROUTE
socket; the kernel answers only failures, plus one acknowledgement at the end
of each chunk, so every failure is known with its change and nothing has to
be checked again with a dump.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

from hivrrp.kernel.rtnl import (
    ATTR,
    HEADER,
    IFA_ADDRESS,
    IFA_F_NODAD,
    IFA_LOCAL,
    IFADDRMSG,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    RTM_DELADDR,
    RTM_NEWADDR,
    attr,
    message,
    messages,
)
from hivrrp.kernel.sockets import force_buffers


@dataclass(frozen=True, slots=True)
class Change:
    """One VIP to add or remove (options are the config's, for additions only)."""
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

    def packed(self) -> bytes:
        """The address as the kernel and the wire have it (inet_pton: a
        takeover packs thousands, ipaddress is several times slower)."""
        return socket.inet_pton(socket.AF_INET if self.family == 4 else socket.AF_INET6,
                                self.address)


@dataclass(frozen=True, slots=True, eq=False)
class Encoded:
    """Changes encoded once, ahead of the trip that sends them (a follower
    group's VIPs, at plan build, off the loop): a trip sends `data` as it is,
    where encoding 10,000 changes by hand took tens of milliseconds on the
    critical path of a mass takeover. The requests carry the sequence numbers
    first .. first + len - 1 (ENCODED_SEQ and up: never the batcher's own),
    in runs of up to CHUNK whose last request asks for the acknowledgement:
    `runs` holds (byte offset, change count) at the end of each, where a send
    may cut the unit (netlink refuses a message beyond the socket's send
    buffer). `key` names the address set (a group's additions and removals
    share it): within a trip a later unit of the same key is the last word on
    all of them."""
    changes: tuple[Change, ...]
    data: bytes
    first: int
    key: object
    add: bool
    runs: tuple[tuple[int, int], ...]

    def __len__(self) -> int:
        return len(self.changes)


# Sequence numbers from here on are pre-encoded units'; the batcher's own stay below.
ENCODED_SEQ = 0x80000000
CHUNK = 512                      # changes per acknowledged run (about 32 KiB)


def encode_all(changes: Sequence[Change], first: int, key: object) -> Encoded:
    """One Encoded of `changes` (all additions or all removals), numbered
    from `first`, acknowledged at the end of every CHUNK of them."""
    changes = tuple(changes)
    last = len(changes) - 1
    parts, runs, size = [], [], 0
    for i, change in enumerate(changes):
        ack = i == last or i % CHUNK == CHUNK - 1
        parts.append(encode(change, first + i, ack=ack))
        size += len(parts[-1])
        if ack:
            runs.append((size, i + 1))
    return Encoded(changes, b"".join(parts), first & 0xFFFFFFFF, key,
                   bool(changes) and changes[0].add, tuple(runs))


SCOPES = {"global": 0, "site": 200, "link": 253, "host": 254, "nowhere": 255}
IFA_LABEL, IFA_BROADCAST = 3, 4
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11

# Runs go out together up to this many bytes a sendmsg (the kernel handles a
# whole message in the sender's system call), so that 10,000 follower VIPs
# are two system calls, each a GIL release and reacquisition.
ENCODED_SEND = 512 << 10
SEND_BUFFER = 2 * ENCODED_SEND   # netlink refuses a message larger than its send buffer
# With progress wanted, smaller sends (about 1,600 additions of 40 bytes,
# six follower groups of 250): the loop hears of each one's addresses as
# they are in and announces them while the kernel adds the next ones. Sends
# of one group each (16 KiB) announced as early but made the trip itself
# longer (bench/takeover_path.py at 10,000, on 2 shared cores: every VIP in
# after 58 to 100 ms, median 67, in six runs, against 66 to 83, median 76).
PROGRESS_SEND = 64 << 10
RECEIVE_BUFFER = 4 << 20         # room for an error per request of a chunk
ACK_TIMEOUT = 5.0                # seconds for the kernel to answer one chunk
# Failures that leave the address as it was asked to be.
ALREADY_DONE = {True: {errno.EEXIST}, False: {errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENOENT}}


def encode(change: Change, seq: int, ack: bool = True) -> bytes:
    """One RTM_NEWADDR / RTM_DELADDR request, as `ip addr add/del` sends it."""
    family = socket.AF_INET if change.family == 4 else socket.AF_INET6
    address = change.packed()
    attrs = attr(IFA_LOCAL, address) + attr(IFA_ADDRESS, address)
    flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
    scope = ifa_flags = 0
    if change.add:
        kind = RTM_NEWADDR
        flags |= NLM_F_CREATE | NLM_F_EXCL
        scope = SCOPES.get(change.scope or "global", 0)
        if change.label:
            attrs += attr(IFA_LABEL, change.label.encode() + b"\0")
        if change.broadcast and change.family == 4:
            attrs += attr(IFA_BROADCAST, socket.inet_pton(socket.AF_INET, change.broadcast))
        if change.nodad and change.family == 6:
            ifa_flags = IFA_F_NODAD
    else:
        kind = RTM_DELADDR
    body = IFADDRMSG.pack(family, change.prefixlen, ifa_flags, scope, change.index) + attrs
    return message(kind, flags, seq, body)


def errors(data: bytes):
    """(seq, errno, kernel's text or "") of every NLMSG_ERROR in a datagram (errno 0: ack)."""
    for kind, flags, seq, body in messages(data):
        if kind == NLMSG_ERROR and len(body) >= 4:
            (code,) = struct.unpack_from("=i", body)
            # The request's header is echoed (NETLINK_CAP_ACK: without its body).
            text = _ext_ack_message(body[4 + HEADER.size:]) if flags & NLM_F_ACK_TLVS else ""
            yield seq, -code, text


def _ext_ack_message(tlvs: bytes) -> str:
    offset = 0
    while offset + ATTR.size <= len(tlvs):
        length, kind = ATTR.unpack_from(tlvs, offset)
        if length < ATTR.size:
            break
        if kind & 0x3FFF == NLMSGERR_ATTR_MSG:
            return tlvs[offset + ATTR.size:offset + length].split(b"\0", 1)[0].decode(
                errors="replace")
        offset += (length + 3) & ~3
    return ""


def request_socket(receive_buffer: int, send_buffer: int = 0,
                   protocol: int = socket.NETLINK_ROUTE) -> socket.socket:
    """A netlink socket of its own for batched requests (the VIPs', the VMACs',
    the nftables transactions): acks without the request echoed, the kernel's
    error text where it has one, and room for an answer per request of a chunk."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    try:
        sock.bind((0, 0))
        sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        try:
            sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        except OSError:
            pass  # older kernels: errors come without the kernel's text
        force_buffers(sock, receive=receive_buffer, send=send_buffer)
    except OSError:
        sock.close()
        raise
    return sock


# One sendmsg's worth: its buffers, then (first seq, changes) of each run of
# requests in it (each run's last request asks for an acknowledgement), and
# the seq whose answer ends it.
Send = tuple[list[bytes], list[tuple[int, Sequence[Change]]], int]


class AddressBatcher:
    """Applies address changes in order; used from one thread at a time."""

    send_limit = ENCODED_SEND

    def __init__(self) -> None:
        self.sock = request_socket(RECEIVE_BUFFER, SEND_BUFFER)
        self.seq = int.from_bytes(os.urandom(3), "big")
        self.stale = False      # a chunk went unanswered: its answers may still come
        # Without the privilege to force it, the send buffer is capped
        # (wmem_max), and netlink refuses a message beyond it (EMSGSIZE).
        self.send_limit = max(CHUNK * 128, min(
            ENCODED_SEND, self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) - 64))

    def apply(self, changes: Sequence[Change | Encoded],
              progress: Callable[[int], None] | None = None) -> list[tuple[Change, str]]:
        """Returns the changes that failed, with why. Encoded units go out as
        they are, the rest are encoded here; several to a system call.
        `progress(done)`, if given, after each send's answers: the first
        `done` items of `changes` are applied (or failed), in sends of at most
        PROGRESS_SEND bytes."""
        failures: list[tuple[Change, str]] = []
        ends: list[int] = []
        requests = 0
        if progress is not None:
            # Requests up to and including each item: a send's answers cover
            # every item whose requests all went out by then (an empty unit
            # with the item before it).
            ends = list(accumulate(len(c) if c.__class__ is Encoded else 1 for c in changes))
        limit = None if progress is None else min(self.send_limit, PROGRESS_SEND)
        for buffers, runs, last in self._sends(changes, limit):
            try:
                if self.stale:
                    self._discard_stale()
                self.sock.sendmsg(buffers)
                failures += self._answers(runs, last)
            except OSError as exc:
                self.stale = True
                failures += [(change, f"netlink: {exc.strerror or exc}")
                             for _first, run in runs for change in run]
            if progress is not None:
                requests += sum(len(run) for _first, run in runs)
                progress(bisect_right(ends, requests))
        return failures

    def _sends(self, changes: Sequence[Change | Encoded],
               limit: int | None = None) -> Iterator[Send]:
        """The system calls for `changes`, in order: runs of single changes
        encoded here in chunks of CHUNK, then everything packed into sends of
        up to send_limit bytes (a mass takeover interleaves each leader's
        own VIP with its followers' unit: 80 sends, each a wait for the kernel
        and for the GIL, where 2 do). A unit too big for one send is cut
        between its runs, each piece ending on an acknowledged request.

        No sequence number twice in a send: units are numbered at their
        plan's build, so a trip can hold two whose numbers meet (two plans',
        around a reload), and an answer must name one request: the one that
        ends the send is its end, and every failure before it is this send's.
        Such a unit starts a send of its own. `limit`: bytes a send, at
        most send_limit (smaller sends for progress)."""
        limit = self.send_limit if limit is None else min(limit, self.send_limit)
        buffers: list[bytes | memoryview] = []
        runs: list[tuple[int, Sequence[Change]]] = []
        size = 0
        top = 0                      # past the highest unit number in this send
        for unit in self._units(changes):
            # (The batcher's own numbers never meet: below ENCODED_SEQ, one
            # after the other. A plan's units are numbered in the order its
            # leaders usually move: their numbers only rise.)
            planned = unit.first >= ENCODED_SEQ
            if buffers and (size + len(unit.data) > limit
                            or planned and unit.first < top and _numbers_meet(runs, unit)):
                yield buffers, runs, _last_seq(runs)
                buffers, runs, size, top = [], [], 0, 0
            if planned:
                top = max(top, unit.first + len(unit))
            if len(unit.data) <= limit:
                buffers.append(unit.data)
                runs.append((unit.first, unit.changes))
                size += len(unit.data)
                continue
            for piece, first, cut in _pieces(unit, limit):
                if buffers:
                    yield buffers, runs, _last_seq(runs)
                buffers, runs, size = [piece], [(first, cut)], len(piece)
        if buffers:
            yield buffers, runs, _last_seq(runs)

    def _units(self, changes: Sequence[Change | Encoded]) -> Iterator[Encoded]:
        plain: list[Change] = []
        for item in changes:
            if item.__class__ is Encoded:
                if plain:
                    yield from self._chunks(plain)
                    plain = []
                if item.changes:
                    yield item
            else:
                plain.append(item)
        if plain:
            yield from self._chunks(plain)

    def _chunks(self, changes: list[Change]) -> Iterator[Encoded]:
        for k in range(0, len(changes), CHUNK):
            chunk = changes[k:k + CHUNK]
            if self.seq + len(chunk) > ENCODED_SEQ:
                self.seq = 0
            first = self.seq
            self.seq += len(chunk)
            # Only the last request asks for an acknowledgement: the kernel
            # handles a chunk in order, so it arrives after every error.
            yield encode_all(chunk, first, None)

    def _discard_stale(self) -> None:
        """Answers to a chunk given up on would be taken for the next one's."""
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(1 << 20)
        except (BlockingIOError, InterruptedError):
            pass
        finally:
            self.sock.setblocking(True)
            self.stale = False

    def _answers(self, runs: list[tuple[int, Sequence[Change]]],
                 last: int) -> list[tuple[Change, str]]:
        failures = []
        deadline = time.monotonic() + ACK_TIMEOUT
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OSError(errno.ETIMEDOUT, "no acknowledgement from the kernel")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            for seq, code, text in errors(data):
                if code:
                    change = _change_of(runs, seq)
                    if change is not None and code not in ALREADY_DONE[change.add]:
                        failures.append((change, os.strerror(code)
                                         + (f" ({text})" if text else "")))
                if seq == last:
                    return failures

    def close(self) -> None:
        self.sock.close()


def _last_seq(runs: list[tuple[int, Sequence[Change]]]) -> int:
    """The sequence number whose answer ends a send: its last run's last request's."""
    return (runs[-1][0] + len(runs[-1][1]) - 1) & 0xFFFFFFFF


def _numbers_meet(runs: list[tuple[int, Sequence[Change]]], unit: Encoded) -> bool:
    """Do `unit`'s sequence numbers meet those of a run already in the send?"""
    lo, hi = unit.first, unit.first + len(unit)
    return any(first < hi and lo < first + len(changes) for first, changes in runs)


def _pieces(unit: Encoded, limit: int) -> Iterator[tuple[memoryview, int, Sequence[Change]]]:
    """`unit` in pieces of whole runs, each of at most `limit` bytes (a run
    is CHUNK requests, far below any send buffer a socket gets): (its
    bytes, its first sequence number, its changes)."""
    data = memoryview(unit.data)
    start = count = 0          # where the piece being made starts: bytes, changes
    end = done = 0             # where its last whole run ends
    for run_end, run_done in unit.runs:
        if run_end - start > limit and end > start:
            yield data[start:end], (unit.first + count) & 0xFFFFFFFF, unit.changes[count:done]
            start, count = end, done
        end, done = run_end, run_done
    if end > start:
        yield data[start:end], (unit.first + count) & 0xFFFFFFFF, unit.changes[count:done]


def _change_of(runs: list[tuple[int, Sequence[Change]]], seq: int) -> Change | None:
    """The change a request's sequence number stands for, None for a late
    answer to another send."""
    for first, run in runs:
        index = (seq - first) & 0xFFFFFFFF
        if index < len(run):
            return run[index]
    return None
