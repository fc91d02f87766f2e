"""The one ordered queue from the reactor's address actions to netlink.

Whatever piles up while a trip to the netlink thread is under way goes in the
next trip, in one stream of requests: a mass takeover of 4,000 instances is a
handful of trips, not 4,000. Within a trip only the last word on each address
and each route counts (a flap inside one trip ends as it should), route
removals go before the address changes and route additions after them, and
announcements wait until the addresses they announce are in place. The
no_accept drop sets change in the same trip: additions before the addresses
(a new master's VIP never answers unfiltered), removals after them (nor does
a leaving one's), each one transaction however many instances moved.

With `progressive` (the daemon's Netlink), a trip that adds no routes
announces each instance as soon as the parts of the trip up to its
announcement are in the kernel, while the netlink thread adds the next ones:
a mass takeover's first gratuitous ARPs go out during the trip, not after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_right
from collections.abc import Awaitable, Callable
from itertools import accumulate

from hivrrp.daemon.plan import Plan
from hivrrp.daemon.reactor import Action, Announce, SetDrops, SetRoutes, SetVips
from hivrrp.kernel.addrbatch import Change, Encoded
from hivrrp.kernel.firewall_policy import Holder, holder
from hivrrp.kernel.netlink import Address
from hivrrp.kernel.routing import Routing
from hivrrp.util.tasks import spawn
from hivrrp.util.text import plural

log = logging.getLogger("hivrrp")

# apply_vips(changes) or, when the drop sets change too, apply_vips(changes,
# drop=..., undrop=...): one trip either way (kernel.netlink.Netlink.apply).
# `changes` may hold Encoded units (a follower group's whole set). A
# progressive queue may add progress=callback: called on the loop with how
# many of `changes`, from the first, are in the kernel.
ApplyVips = Callable[..., Awaitable[list[tuple[Change, str]]]]
ApplyRoutes = Callable[[bool, list[Routing]], Awaitable[list[tuple[Routing, str]]]]


def leftovers(plan: Plan, addresses: list[Address]) -> list[Change]:
    """The removals of `plan`'s VIPs that are on their interfaces already.

    Each with the prefix length the kernel has: a VIP whose prefix was edited
    in the file since the previous run added it is still that run's address,
    and a removal with the file's prefix would be refused (EADDRNOTAVAIL, which
    reads as "already gone") and leave it up."""
    present: dict[tuple[int, str], list[int]] = {}
    for a in addresses:
        present.setdefault((a.index, a.address), []).append(a.prefixlen)
    stale = []
    for inst in plan.instances.values():
        for c in inst.vips:
            for prefixlen in present.get((c.index, c.address), ()):
                if prefixlen != c.prefixlen:
                    log.info("%s/%d is %s/%d of the configuration with another prefix length: "
                             "removed as a leftover too", c.address, prefixlen, c.address,
                             c.prefixlen)
                stale.append(Change(False, c.index, c.family, c.address, prefixlen))
    return stale


async def remove_leftovers(apply_vips: ApplyVips, plan: Plan,
                           addresses: list[Address]) -> tuple[int, list[str]]:
    """VIPs still on the interfaces (a previous run crashed) go away first:
    how many were found, and the kernel's reasons for those it kept."""
    stale = leftovers(plan, addresses)
    if not stale:
        return 0, []
    log.info("removing %s left over from a previous run", plural(len(stale), "VIP"))
    failures = await apply_vips(stale)
    for change, error in failures:
        log.warning("cannot remove %s: %s", change.address, error)
    return len(stale), [error for _change, error in failures]


class Batch:
    """One trip's worth of actions, reduced to their net effect.

    The VIP changes are parts applied in order: runs of single changes (a
    dict each, the last word per address) and follower groups' Encoded units,
    kept whole (a mass takeover queues 40 of them, not 10,000 changes). The
    kernel applying them in order ends where the last word says; a unit
    right after a unit of the same address set replaces it."""

    def __init__(self) -> None:
        self.parts: list[dict[tuple[int, str], Change] | Encoded] = []
        self.drops: dict[Holder, tuple[bool, Change]] = {}
        self.routes: dict[str, tuple[bool, Routing]] = {}
        self.announce: list[Announce] = []
        # For each announcement, how many parts were queued before it: the
        # addresses it announces are in them (an instance's SetVips come
        # before its Announce), so once those are in it may go.
        self.after: list[int] = []

    @property
    def vips(self) -> list[Change | Encoded]:
        """The VIP changes in order, a unit as one item."""
        out: list[Change | Encoded] = []
        for part in self.parts:
            if part.__class__ is Encoded:
                out.append(part)
            else:
                out.extend(part.values())
        return out

    def vip_count(self) -> int:
        return sum(len(part) for part in self.parts)

    def add(self, action: Action) -> None:
        if isinstance(action, SetVips):
            for change in action.changes:
                last = self.parts[-1] if self.parts else None
                if change.__class__ is Encoded:
                    if last.__class__ is Encoded and last.key is change.key:
                        self.parts[-1] = change
                    else:
                        self.parts.append(change)
                    continue
                if last.__class__ is not dict:
                    last = {}
                    self.parts.append(last)
                key = (change.index, change.address)
                last.pop(key, None)   # re-inserted last: the order of the final word
                last[key] = change
        elif isinstance(action, SetDrops):
            for change in action.changes:
                self.drops[holder(change)] = (action.add, change)
        elif isinstance(action, SetRoutes):
            for entry in action.entries:
                key = repr(entry)       # specs are dicts: their repr is the identity
                self.routes.pop(key, None)
                self.routes[key] = (action.add, entry)
        elif isinstance(action, Announce):
            self.announce.append(action)
            self.after.append(len(self.parts))

    def __bool__(self) -> bool:
        return bool(self.parts or self.drops or self.routes or self.announce)

    def route_changes(self, add: bool) -> list[Routing]:
        return [entry for is_add, entry in self.routes.values() if is_add == add]

    def drop_changes(self, add: bool) -> list[Change]:
        return [change for is_add, change in self.drops.values() if is_add == add]

    def part_ends(self) -> list[int]:
        """How many items of `vips` there are up to and including each part."""
        return list(accumulate(1 if part.__class__ is Encoded else len(part)
                               for part in self.parts))


class Announcements:
    """A trip's announcements, each handed over once the parts queued
    before it are in the kernel (progress()), the rest at the trip's end."""

    def __init__(self, batch: Batch, announce: Callable[[Announce], None]) -> None:
        self.items, self.after = batch.announce, batch.after
        self.ends = batch.part_ends()
        self.announce = announce
        self.next = 0

    def progress(self, done: int) -> None:
        """The first `done` items of the batch's `vips` are in the kernel."""
        parts = bisect_right(self.ends, done)
        while self.next < len(self.items) and self.after[self.next] <= parts:
            self.next += 1
            self.announce(self.items[self.next - 1])

    def rest(self) -> None:
        while self.next < len(self.items):
            self.next += 1
            self.announce(self.items[self.next - 1])


class VipQueue:
    def __init__(self, apply_vips: ApplyVips, apply_routes: ApplyRoutes,
                 announce: Callable[[Announce], None], progressive: bool = False) -> None:
        self.apply_vips = apply_vips
        self.apply_routes = apply_routes
        self.announce = announce
        self.progressive = progressive     # apply_vips takes progress=
        self.pending = Batch()
        self.task: asyncio.Task | None = None
        self.failures = 0
        self.changes = {"add": 0, "remove": 0}     # applied (the kernel said yes)

    def submit(self, actions: list[Action]) -> None:
        for action in actions:
            self.pending.add(action)
        if self.pending and self.task is None:
            self.task = spawn(self._run(), "apply VIPs")

    async def idle(self) -> None:
        """Returns once everything submitted so far has been applied."""
        while self.task is not None:
            await asyncio.shield(self.task)

    async def drain(self, timeout: float) -> None:
        """idle(), but at most `timeout` seconds (at exit)."""
        try:
            await asyncio.wait_for(self.idle(), timeout)
        except TimeoutError:
            log.error("VIPs and routes not all removed within %.0f s: exiting anyway", timeout)

    async def _run(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, Batch()
                announcements = Announcements(batch, self.announce)
                try:
                    await self._apply(batch, announcements)
                except Exception:
                    # A bug or a dead netlink thread: say so, keep serving later batches.
                    log.exception("applying %s and %s failed",
                                  plural(batch.vip_count(), "VIP change"),
                                  plural(len(batch.routes), "route change"))
                announcements.rest()
        finally:
            self.task = None

    async def _apply(self, batch: Batch, announcements: Announcements) -> None:
        await self._routes(False, batch.route_changes(False))
        if batch.parts or batch.drops:
            changes = batch.vips
            started = time.monotonic()
            extra = {}
            if batch.drops:
                extra.update(drop=batch.drop_changes(True), undrop=batch.drop_changes(False))
            # keepalived announces after the routes too: a trip that adds
            # some announces at its end.
            if self.progressive and batch.announce and not batch.route_changes(True):
                extra["progress"] = announcements.progress
            failed = await self.apply_vips(changes, **extra)
            count = 0
            for change in changes:
                count += len(change) if change.__class__ is Encoded else 1
                self.changes["add" if change.add else "remove"] += (
                    len(change) if change.__class__ is Encoded else 1)
            for change, error in failed:
                self.changes["add" if change.add else "remove"] -= 1
                self.failures += 1
                log.error("cannot %s %s/%d: %s", "add" if change.add else "remove",
                          change.address, change.prefixlen, error)
            if count >= 100:
                log.info("%s applied in %.3f s", plural(count, "VIP change"),
                         time.monotonic() - started)
        await self._routes(True, batch.route_changes(True))

    async def _routes(self, add: bool, entries: list[Routing]) -> None:
        if entries:
            for (kind, spec), error in await self.apply_routes(add, entries):
                self.failures += 1
                log.error("cannot %s %s %s: %s", "add" if add else "remove", kind, spec, error)
