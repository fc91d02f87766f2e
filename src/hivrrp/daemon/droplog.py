"""Dropped adverts in the log: what, why and from whom, without a line per advert.

The engine keeps one record per kind of drop (instance, or interface for
drops no instance owns; reason; sender) and counts the repeats on it in C.
Every POLL_PERIOD this takes the new records and logs each kind at once, in
keepalived's words where keepalived has some; every TICK_POLLS polls it takes
the repeat counts too, and ratelimit.RateLimiter turns them into one summary
per kind at most every SUMMARY_PERIOD seconds while the drops go on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Callable
from typing import NamedTuple

from hivrrp.util.ratelimit import RateLimiter, Summary
from hivrrp.util.text import plural

log = logging.getLogger("hivrrp")

POLL_PERIOD = 1.0          # seconds: a new kind of drop is logged within this
TICK_POLLS = 10            # polls between takes of the repeat counts
SUMMARY_PERIOD = 60.0      # seconds: at most one summary per kind in this
LOG_EACH_UP_TO = 32        # lines of one take logged one by one; more: one per reason
LOG_NAMES_SHOWN = 8
MAX_KINDS = 20_000         # kinds of drop followed at once (forged senders are many)
UNRECORDED = ("unrecorded",)   # the limiter's key for drops the engine kept no record of
# Drops that say nothing is wrong here: adverts of another VRRP group on a
# shared LAN. Logged, but not as a warning, and their summaries only at
# debug level: they would say the same every minute for good.
ROUTINE = frozenset({"unknown_vrid"})


class Drop(NamedTuple):
    """One kind of dropped advert, in names (the engine's indexes die with a reload)."""
    scope: str | int           # the instance's name, or the ifindex for drops of no instance
    reason: str                # a label of _engine.DROP_RECORD_REASONS
    sender: bytes | None       # packed address; None when the packet was too broken to say
    detail: tuple[int, int]
    address: bytes | None      # by reason: our VIP missing from the advert, its destination
    version: int
    vrid: int


def drop_of(scope: str | int, record: tuple) -> Drop:
    """An engine.take_drops() record as a Drop of `scope`."""
    _instance, _ifindex, reason, sender, _count, detail0, detail1, address, version, vrid = record
    return Drop(scope, reason, sender, (detail0, detail1), address, version, vrid)


def _address(packed: bytes | None) -> str:
    return "an unknown sender" if packed is None else str(ipaddress.ip_address(packed))


def _length(d: Drop, s: str, got: int, want: int) -> str:
    if not want:
        return f"truncated packet from {s}, {got} bytes"
    return (f"vrrp packet from {s} too {'long' if got > want else 'short'}, "
            f"length {got} and expect {want}")


def _version(d: Drop, s: str, got: int, want: int) -> str:
    if not want:   # no instance to compare with
        return f"advert from {s} with VRRP version {got}, not 2 or 3 (or 2 over IPv6)"
    return f"wrong VRRP version from {s}. Received {got} and expect {want}"


# reason -> text(drop, sender, received, expected); keepalived's words
# (vrrp.c vrrp_check_packet) where it has some, always with the sender.
_TEXTS: dict[str, Callable[[Drop, str, int, int], str]] = {
    "auth_failure": lambda d, s, got, want: f"received an invalid passwd from {s}!",
    "auth_type_mismatch":
        lambda d, s, got, want: f"received a {got} auth from {s}, expecting {want}!",
    "auth_invalid_type": lambda d, s, got, want: f"Invalid auth type from {s}: {got}",
    "address_count": lambda d, s, got, want: (
        f"received an unexpected ip number count {got} from {s}, expected {want}!"),
    "address_list": lambda d, s, got, want: (
        f"ip address associated with VRID {d.vrid} not present in advert from {s}: "
        f"{_address(d.address)}"),
    "interval_mismatch": lambda d, s, got, want: (
        f"advertisement interval mismatch with {s} mine={want} sec rcv'd={got} sec"),
    "interval": lambda d, s, got, want: f"advertisement interval 0 from {s}",
    "version_mismatch": _version,
    "version": _version,
    "not_peer": lambda d, s, got, want: f"unicast source address {s} not a unicast peer",
    "not_group": lambda d, s, got, want: (
        f"advert from {s} sent to {_address(d.address)}, not to our multicast group"),
    "ttl": lambda d, s, got, want: (
        f"invalid TTL/HL from {s}. Received {got} and expect "
        + (str(want) if want == 255 else f"at least {want}")),
    "type": lambda d, s, got, want: f"Invalid packet type from {s}. {got} and expect {want}",
    "checksum": lambda d, s, got, want: f"Invalid VRRPv{got} checksum from {s}",
    "length": _length,
    "follow_mismatch": lambda d, s, got, want: (
        f"master by its leader, heard an advert for VRID {d.vrid} from {s} (priority {got}, "
        f"ours {want}): another router is master of it too; kept (a follower obeys its "
        "leader only: does that router run hivrrp with the same `follow`?)"),
    "owner": lambda d, s, got, want: (
        f"Dropping packet(s) from {s} since we are address owner"),
    "unknown_vrid": lambda d, s, got, want: (
        f"advert from {s} for VRID {d.vrid}, which no instance has here"),
    "vrid": lambda d, s, got, want: f"advert from {s} with VRID 0",
    "ip_header": lambda d, s, got, want: f"unusable IP header from {s}",
    "protocol": lambda d, s, got, want: f"not a VRRP packet (IP protocol) from {s}",
}


def describe(drop: Drop, ifname: Callable[[int], str]) -> str:
    """The log line for a kind of drop, named by instance or interface."""
    text = _TEXTS.get(drop.reason)
    s = _address(drop.sender)
    line = (text(drop, s, *drop.detail) if text is not None
            else f"advert from {s} dropped ({drop.reason})")
    if isinstance(drop.scope, str):
        return f"({drop.scope}) {line}"
    return f"{ifname(drop.scope)}: {line}"


def level_of(drop: Drop, summary: bool = False) -> int:
    if drop.reason in ROUTINE:
        return logging.DEBUG if summary else logging.INFO
    return logging.WARNING


def lines_of(drops: list[Drop], text: Callable[[Drop], str],
             summary: bool = False) -> list[tuple[int, str]]:
    """(level, line) for the drops of one take: a line each, or for more than
    LOG_EACH_UP_TO one line per reason with the first drop's text and the
    others' scopes (a peer misconfigured for 4,000 instances is one line,
    not 4,000, and only that one line's text is built)."""
    if len(drops) <= LOG_EACH_UP_TO:
        return [(level_of(drop, summary), text(drop)) for drop in drops]
    by_reason: dict[str, list[Drop]] = {}
    for drop in drops:
        by_reason.setdefault(drop.reason, []).append(drop)
    out = []
    for reason, group in by_reason.items():
        line = text(group[0])
        if len(group) > 1:
            # Each scope once: one instance with many senders is one name.
            scopes = list(dict.fromkeys(str(drop.scope) for drop in group[1:]))
            others = scopes[:LOG_NAMES_SHOWN]
            more = len(scopes) - len(others)
            line += (f"; and {len(group) - 1} more of this kind ({reason}): "
                     f"{', '.join(others)}{f' and {more} more' if more else ''} "
                     "(each at debug level)")
        out.append((level_of(group[0], summary), line))
    return out


class DropLog:
    """Takes an engine's drop records and logs them, rate-limited.

    `plan()` is the running plan (its engine and names), `interfaces()` the
    links by ifindex, `clock()` the time in seconds."""

    def __init__(self, plan: Callable, interfaces: Callable[[], dict],
                 clock: Callable[[], float]) -> None:
        self.plan = plan
        self.interfaces = interfaces
        self.clock = clock
        self.limiter = RateLimiter(SUMMARY_PERIOD, MAX_KINDS)
        self.refused = 0               # drops of kinds beyond MAX_KINDS, not reported yet
        self.refused_said: float | None = None
        self.polls = 0
        self.handle: asyncio.TimerHandle | None = None
        self._names: dict[int, str] | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.handle = loop.call_later(POLL_PERIOD, self.poll)

    def close(self, plan=None) -> None:
        """Stop polling; with the running `plan`, log what its engine still
        holds and every pending summary first: the last drops before a
        SIGTERM would be lost otherwise."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        if plan is not None:
            self.take(plan, everything=True)
            self.summarise(everything=True)

    def poll(self) -> None:
        self.handle = self.loop.call_later(POLL_PERIOD, self.poll)
        self.polls += 1
        tick = self.polls % TICK_POLLS == 0
        plan = self.plan()
        if plan is not None:
            self.take(plan, everything=tick)
        if tick:
            self.summarise()

    def take(self, plan, everything: bool = False) -> None:
        """Take `plan`'s engine's records (all, with `everything`: before a
        reload retires the engine, its counts too) and log the new kinds."""
        records, unrecorded = plan.engine.take_drops(everything)
        if not records and not unrecorded:
            return
        now = self.clock()
        names, note = plan.names, self.limiter.note
        fresh = []
        # Most records are of kinds already said (a peer wrong for 10,000
        # instances gives 10,000 a take): no Drop for them, only for the text.
        for record in records:
            scope = names[record[0]] if record[0] >= 0 else record[1]
            if note((scope, record[2], record[3]), (scope, record), now, record[4]):
                fresh.append(drop_of(scope, record))
        self._names = None
        self.emit(fresh, self.describe)
        # The first line says how many; only the later ones are repeats.
        if unrecorded and self.limiter.note(UNRECORDED, None, now,
                                            unrecorded if UNRECORDED in self.limiter else 1):
            log.warning("%s not itemised in the log: more kinds of drop at once than are kept "
                        "(the counters count them all)", plural(unrecorded, "dropped advert"))
        self.report_overflow(now)

    def summarise(self, everything: bool = False) -> None:
        """Summaries of the kinds whose period is over (every TICK_POLLS polls;
        all of them with `everything`)."""
        now = self.clock()
        by_drop: dict[Drop, Summary] = {}
        for summary in self.limiter.due(now, everything):
            if summary.key == UNRECORDED:
                log.warning("%s not itemised in the log in the last %.0f s",
                            plural(summary.repeats, "more dropped advert"), summary.seconds)
            else:
                by_drop[drop_of(*summary.item)] = summary
        self._names = None
        self.emit(list(by_drop), lambda drop: self.summary_text(drop, by_drop[drop]),
                  summary=True)
        self.report_overflow(now)

    def emit(self, drops: list[Drop], text: Callable[[Drop], str],
             summary: bool = False) -> None:
        for level, line in lines_of(drops, text, summary):
            log.log(level, "%s", line)
        if len(drops) > LOG_EACH_UP_TO and log.isEnabledFor(logging.DEBUG):
            for drop in drops:
                log.debug("%s", text(drop))

    def describe(self, drop: Drop) -> str:
        return describe(drop, self.ifname)

    def summary_text(self, drop: Drop, summary: Summary) -> str:
        return (f"{describe(drop, self.ifname)} ({summary.repeats} more in the last "
                f"{summary.seconds:.0f} s)")

    def report_overflow(self, now: float) -> None:
        self.refused += self.limiter.take_overflow()
        if self.refused and (self.refused_said is None
                             or now - self.refused_said >= SUMMARY_PERIOD):
            log.warning("%s not logged: %d kinds of drop followed already "
                        "(the counters count them all)", plural(self.refused, "dropped advert"),
                        MAX_KINDS)
            self.refused, self.refused_said = 0, now

    def ifname(self, ifindex: int) -> str:
        if self._names is None:
            self._names = {index: link.name for index, link in self.interfaces().items()}
        return self._names.get(ifindex, f"interface {ifindex}")
