"""Adverts that did not go out as they should, in the log: once per kind, then a count.

The packet path (_io.FramePath) and the raw sockets (_io.PacketIO) count
the sends the kernel refused in C and keep the last one's errno, interface
(and for the raw socket its destination); FramePath also counts the adverts
over their link's MTU that it left to the raw socket (which fragments them)
and keeps the last one's interface and length. After each send the driver
hands them here: a few counters compared per send, nothing per advert. A
kind (socket, errno, interface; or oversize, interface, MTU) is logged when
first seen, with what it means; while it goes on, ratelimit.RateLimiter
makes one line of its count every SUMMARY_PERIOD (at debug level for the
oversize ones: they stay until a reload and say nothing new). New events
are put on the kind of the last one: C keeps one, and a socket that refuses
one advert mostly refuses its neighbours in the batch for the same reason.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from typing import NamedTuple

from hivrrp.kernel.sendpath import refusal
from hivrrp.util.ratelimit import RateLimiter
from hivrrp.util.text import plural

log = logging.getLogger("hivrrp")

SUMMARY_PERIOD = 60.0      # seconds: at most one count per kind in this
MAX_KINDS = 1_000          # kinds followed at once (interfaces x errnos)

PACKET = "the packet socket"
RAW = "the raw IP socket"


class Refused(NamedTuple):
    socket: str
    errno: int
    ifindex: int
    destination: bytes | None      # the raw socket's (a unicast peer's says most)


class Oversize(NamedTuple):
    ifindex: int
    mtu: int
    length: int                    # the last advert's, IP header included


class SendLog:
    def __init__(self, clock: Callable[[], float], ifname: Callable[[int], str],
                 on_refused: Callable[[Refused], None] | None = None) -> None:
        self.clock, self.ifname = clock, ifname
        self.on_refused = on_refused     # told every refusal, logged or not
        self.limiter = RateLimiter(SUMMARY_PERIOD, MAX_KINDS)
        self.counted: dict[object, int] = {}   # source -> its send_errors already said
        self.next_summary = 0.0

    def after_send(self, frames, senders) -> None:
        """Say what `frames` (a FramePath or None) and `senders` (PacketIOs)
        refused since the last call."""
        if frames is not None:
            self._check(frames, PACKET, None)
            if frames.raw_oversize != self.counted.get((frames, Oversize), 0):
                self._oversize(frames)
        for io in senders:
            self._check(io, RAW, io.last_error_destination)
        if self.limiter.entries:
            now = self.clock()
            if now >= self.next_summary:
                self.next_summary = now + 1.0   # due() looks at every kind: not every send
                self._summaries(now)

    def _check(self, source, socket: str, destination: bytes | None) -> None:
        errors = source.send_errors
        before = self.counted.get(source, 0)
        if errors == before:
            return
        self.counted[source] = errors
        kind = Refused(socket, source.last_errno, source.last_error_ifindex, destination)
        if self.on_refused is not None:
            self.on_refused(kind)
        if self.limiter.note(kind[:3], kind, self.clock(), errors - before):
            log.warning("interface %s: %s refused %s (lost): %s", self.ifname(kind.ifindex),
                        socket, _adverts(kind, errors - before), refusal(kind.errno))

    def _oversize(self, frames) -> None:
        before = self.counted.get((frames, Oversize), 0)
        self.counted[frames, Oversize] = frames.raw_oversize
        index = frames.last_oversize_ifindex
        link = frames.link(index)
        kind = Oversize(index, link[1] if link is not None else 0, frames.last_oversize_length)
        if self.limiter.note(kind[:2], kind, self.clock(), frames.raw_oversize - before):
            log.info("interface %s: adverts of %d bytes are over its MTU %d: they go through "
                     "the raw IP socket, which fragments them (a reload or rebuild sizes them "
                     "for the MTU)", self.ifname(index), kind.length, kind.mtu)

    def _summaries(self, now: float, everything: bool = False) -> None:
        for _key, repeats, kind, seconds in self.limiter.due(now, everything):
            if isinstance(kind, Oversize):
                log.debug("interface %s: %s over its MTU %d went through the raw IP socket "
                          "in %.0f s", self.ifname(kind.ifindex), plural(repeats, "more advert"),
                          kind.mtu, seconds)
                continue
            log.warning("interface %s: %s refused %s in %.0f s: %s", self.ifname(kind.ifindex),
                        kind.socket, _adverts(kind, repeats, "more"), seconds,
                        refusal(kind.errno))

    def close(self) -> None:
        """The counts not said yet: the last word at exit."""
        self._summaries(self.clock(), everything=True)


def _adverts(kind: Refused, count: int, more: str = "") -> str:
    adverts = "an advert" if count == 1 and not more else plural(count, f"{more} advert".strip())
    if kind.destination is None:
        return adverts
    return f"{adverts} to {ipaddress.ip_address(kind.destination)}"
