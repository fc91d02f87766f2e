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

With `progressive` (the daemon's Netlink), a trip that adds no routes hands
each announcement on as soon as every address change queued before it is in
the kernel, while the netlink thread adds the next ones: a mass takeover's
first gratuitous ARPs go out during the trip, not after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_right
from collections.abc import Awaitable, Callable, Sequence

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

    VIP changes keep the last word on each address, in the order of the last
    words (one dict), whether they came one by one or as a follower group's
    Encoded unit, which is kept whole (a mass takeover queues 40 of them, not
    10,000 changes) and stands for its address set: a later unit of the same
    set replaces it, so a leader's MASTER -> BACKUP -> MASTER within a trip
    sends its followers' additions once and no removal (a removal is not
    free: routes with a VIP as prefsrc go, and without promote_secondaries
    the primary's removal takes other masters' secondaries with it). Where
    single changes and a unit meet on an address (a follower's own event
    beside its group's), `unit_of` (the running plan's) tells whose it is,
    and vips() keeps the later word only."""

    def __init__(self, unit_of: Callable[[Change], object | None] | None = None) -> None:
        # (ifindex, address) -> its last change; a unit's key -> its last unit
        self.words: dict[object, Change | Encoded] = {}
        self.units = 0                 # Encoded among the words
        self.unit_of = unit_of
        self.drops: dict[Holder, tuple[bool, Change]] = {}
        self.routes: dict[str, tuple[bool, Routing]] = {}
        self.announce: list[Announce] = []
        self.reasserted: set[object] = set()   # keys whose last word is a SetVips.reassert's
        # When each word came (a count of the changes added): a key's first
        # and last, and for each announcement the count at its coming (its
        # instance's changes came before it), for Announcements.start().
        self.stamp = 0
        self.first: dict[object, int] = {}
        self.last: dict[object, int] = {}
        self.after: list[int] = []
        # (stamp, plan): `plan` became the running one with every change of
        # the reload that installed it at or before `stamp` (a reload
        # dispatches its actions, then installs its plan; VipQueue._mark).
        self.marks: list[tuple[int, Plan]] = []
        self.settled = False           # vips dropped or cut a word (see _settled)

    @property
    def vips(self) -> list[Change | Encoded]:
        """The VIP changes in order, a unit as one item."""
        words = list(self.words.values())
        if not self.units or self.unit_of is None or self.units == len(words):
            return words
        return self._settled(words)

    def _settled(self, words: list[Change | Encoded]) -> list[Change | Encoded]:
        """`words` with each address's last word only, where single changes
        and units overlap: a single change before its address's unit goes; a
        unit's word on an address a later single change has is left out of
        the unit (sent as single changes then: rare, and off the fast path)."""
        at = {word.key: k for k, word in enumerate(words) if word.__class__ is Encoded}
        skip: set[int] = set()
        carved: dict[object, set[tuple[int, str]]] = {}
        for k, word in enumerate(words):
            if word.__class__ is Encoded:
                continue
            unit = at.get(self.unit_of(word))
            if unit is None:
                continue
            if unit > k or words[unit].add == word.add:
                skip.add(k)        # the unit has the last word, or says the same
            else:
                carved.setdefault(words[unit].key, set()).add((word.index, word.address))
        self.settled = bool(skip or carved)
        out: list[Change | Encoded] = []
        for k, word in enumerate(words):
            if k in skip:
                continue
            gone = carved.get(word.key) if word.__class__ is Encoded else None
            if gone is None:
                out.append(word)
            else:
                out += [c for c in word.changes if (c.index, c.address) not in gone]
        return out

    def vip_count(self) -> int:
        return sum(len(w) if w.__class__ is Encoded else 1 for w in self.words.values())

    def add(self, action: Action) -> None:
        if isinstance(action, SetVips):
            words = self.words
            for change in action.changes:
                key = _key(change)
                # Re-inserted last: the order of the final word.
                if words.pop(key, None) is None and change.__class__ is Encoded:
                    self.units += 1
                words[key] = change
                if action.reassert:
                    self.reasserted.add(key)
                else:
                    self.reasserted.discard(key)
                self.stamp += 1
                self.first.setdefault(key, self.stamp)
                self.last[key] = self.stamp
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
            self.after.append(self.stamp)

    def __bool__(self) -> bool:
        return bool(self.words or self.drops or self.routes or self.announce)

    def route_changes(self, add: bool) -> list[Routing]:
        return [entry for is_add, entry in self.routes.values() if is_add == add]

    def drop_changes(self, add: bool) -> list[Change]:
        return [change for is_add, change in self.drops.values() if is_add == add]


class Announcements:
    """A trip's announcements, handed on in order, each once the changes it
    waits for are in the kernel (start() and progress()), the rest at the
    trip's end (rest()).

    One handed on during the trip first tells `place` the newest plan whose
    reload's changes all came before it (they are in now): its bursts send
    what that plan and the running one agree on (AnnouncePolicy)."""

    def __init__(self, batch: Batch, announce: Callable[[Announce], None],
                 place: Callable[[Plan], None] = lambda plan: None) -> None:
        self.items = batch.announce
        self.announce = announce
        self.place = place
        self.next = 0
        self.needs: list[int] = []     # for each: how many of the trip's items first
        self.plans: list[Plan | None] = []   # for each: the plan in place then, if new

    def start(self, batch: Batch) -> Callable[[int], None]:
        """The items of batch.vips (its words, in order: not settled) each
        announcement needs: every word whose address had a change before the
        announcement came, at its last change's place (a flap after the
        announcement moved it later: the address is in only then)."""
        marks = [batch.last[key] for key in batch.words]   # rising: the words' order
        firsts = iter(batch.first.items())                 # in the order first seen
        waiting = next(firsts, None)
        latest = 0
        plans = iter(batch.marks)                          # rising stamps
        plan_mark = next(plans, None)
        plan = None
        for stamp in batch.after:
            while waiting is not None and waiting[1] <= stamp:
                latest = max(latest, batch.last[waiting[0]])
                waiting = next(firsts, None)
            while plan_mark is not None and plan_mark[0] <= stamp:
                plan = plan_mark[1]
                plan_mark = next(plans, None)
            self.needs.append(bisect_right(marks, latest))
            self.plans.append(plan)
        return self.progress

    def progress(self, done: int) -> None:
        """The first `done` items of the trip are in the kernel."""
        while self.next < len(self.needs) and self.needs[self.next] <= done:
            self.next += 1
            plan = self.plans[self.next - 1]
            if plan is not None:
                self.place(plan)
            self.announce(self.items[self.next - 1])

    def rest(self) -> None:
        while self.next < len(self.items):
            self.next += 1
            self.announce(self.items[self.next - 1])


def _key(item: Change | Encoded) -> object:
    """A word's key in Batch.words."""
    return item.key if item.__class__ is Encoded else (item.index, item.address)


class VipQueue:
    def __init__(self, apply_vips: ApplyVips, apply_routes: ApplyRoutes,
                 announce: Callable[[Announce], None],
                 current_plan: Callable[[], Plan | None] = lambda: None,
                 progressive: bool = False) -> None:
        self.apply_vips = apply_vips
        self.apply_routes = apply_routes
        self.announce = announce
        self.progressive = progressive     # apply_vips takes progress=
        self.current_plan = current_plan
        self.pending = Batch(self._unit_of)
        self.task: asyncio.Task | None = None
        # The plan whose masters' addresses are in place: the last completed
        # trip's (every action queued before a trip was taken is in it, and
        # a reload dispatches its actions before it installs the new plan),
        # or one whose reload's changes a trip in flight has put in since.
        self.placed: Plan | None = None
        self.seen: Plan | None = None      # the running plan at the last _mark
        # The trip in flight's items and how many are in (its progress), for
        # on_the_way(); and that set as last worked out, with what it was of.
        self.inflight_batch: Batch | None = None
        self.inflight: Sequence[Change | Encoded] | None = None   # its items once sent
        self.inflight_done = 0
        self.trips = 0                  # trips taken: with the stamps, what on_the_way() saw
        self._away: tuple[tuple, frozenset[tuple[int, bytes]]] = ((), frozenset())
        self.failures = 0
        self.changes = {"add": 0, "remove": 0}     # applied (the kernel said yes)

    def submit(self, actions: list[Action]) -> None:
        if self.task is None:
            # Idle: everything submitted before is in place, under the plan
            # that was running then. A plan installed since (a reload with no
            # VIP change of its own) is not: these actions may be its new
            # masters' (a follower it added takes its leader's MASTER), and
            # their VIPs are on their way. _mark() records it, so the trip
            # moves to it as it goes (Announcements).
            current = self.current_plan()
            self.placed = self.seen if self.seen is not None and current is not self.seen \
                else current
        self._mark(self.pending)
        for action in actions:
            self.pending.add(action)
        if self.pending and self.task is None:
            self.task = spawn(self._run(), "apply VIPs")

    def _mark(self, batch: Batch) -> None:
        """A plan installed since the last look: its reload's changes are
        all in `batch` or before it, so far (Batch.marks)."""
        plan = self.current_plan()
        if plan is not self.seen:
            # The first plan is no reload's: nothing before it to tell apart.
            after_another = self.seen is not None
            self.seen = plan
            if plan is not None and after_another:
                if not batch:
                    # Nothing between the marks: only the newest counts, and
                    # reloads that change no VIP must not keep every old plan.
                    batch.marks.clear()
                batch.marks.append((batch.stamp, plan))

    def settled(self) -> None:
        """A reload has queued everything it causes (its new engine's first
        events included). With nothing on its way, its plan is in place: the
        next takeover is a plain one (no mark, no filtering, its fast path)."""
        self._mark(self.pending)
        if self.task is None and not self.pending:
            self.pending.marks.clear()
            self.placed = self.current_plan()

    @property
    def inflight_marked(self) -> bool:
        """A plan was installed around the trip in flight's changes."""
        return self.inflight_batch is not None and bool(self.inflight_batch.marks)

    def on_the_way(self) -> frozenset[tuple[int, bytes]]:
        """(ifindex, packed address) of every VIP addition queued or in
        flight and not in the kernel yet: no announcement may name one,
        whichever plan is in place (a reload's new masters' VIPs come after
        its plan's install). Worked out once per change of the queue."""
        pending = self.pending
        if not (self.inflight_marked or pending.marks) or (
                self.task is None and not pending.words):
            # No reload around the VIPs on their way: each announcement waits
            # for its own changes (Announcements), and a takeover's bursts
            # keep their packed fast path (no Python per address here).
            return frozenset()
        key = (self.trips, pending.stamp, self.inflight_done, self.inflight is None)
        if self._away[0] != key:
            away: set[tuple[int, bytes]] = set()
            sources = [(pending.words.items(), pending.reasserted)]
            batch = self.inflight_batch
            if batch is not None:
                items = (batch.words.items() if self.inflight is None else
                         ((_key(item), item) for item in self.inflight[self.inflight_done:]))
                sources.append((items, batch.reasserted))
            for items, reasserted in sources:
                for word_key, item in items:
                    if item.add and word_key not in reasserted:
                        for c in (item.changes if item.__class__ is Encoded else (item,)):
                            away.add((c.index, c.packed()))
            self._away = (key, frozenset(away))
        return self._away[1]

    def _place(self, plan: Plan) -> None:
        self.placed = plan

    def _unit_of(self, change: Change) -> object | None:
        plan = self.current_plan()
        return None if plan is None else plan.unit_key(change)

    def in_place(self) -> Plan | None:
        """The plan whose masters' VIPs are on the interfaces now: the running
        one when nothing is on its way to netlink, else the one the last
        completed trip was taken under, or a newer one whose reload's
        changes the trip in flight has put in (Announcements)."""
        if self.task is None or self.placed is None:
            return self.current_plan()
        return self.placed

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
                batch, self.pending = self.pending, Batch(self._unit_of)
                plan = self.current_plan()
                self._mark(batch)
                self.trips += 1
                self.inflight_batch, self.inflight, self.inflight_done = batch, None, 0
                announcements = Announcements(batch, self.announce, self._place)
                try:
                    await self._apply(batch, announcements)
                except Exception:
                    # A bug or a dead netlink thread: say so, keep serving later batches.
                    log.exception("applying %s and %s failed",
                                  plural(batch.vip_count(), "VIP change"),
                                  plural(len(batch.routes), "route change"))
                self.placed = plan
                self.inflight_batch, self.inflight = None, None
                announcements.rest()
            # A reload made during the trip with nothing of its own to queue:
            # nothing is on its way, its mark would only slow the next takeover.
            self.pending.marks.clear()
        finally:
            self.task = None

    async def _apply(self, batch: Batch, announcements: Announcements) -> None:
        await self._routes(False, batch.route_changes(False))
        if batch.words or batch.drops:
            changes = batch.vips
            started = time.monotonic()
            extra = {}
            if batch.drops:
                extra.update(drop=batch.drop_changes(True), undrop=batch.drop_changes(False))
            # keepalived announces after the routes too: a trip that adds
            # some announces at its end, and so does one whose single changes
            # and units met (rare: its items are not its words).
            self.inflight = changes
            if (self.progressive and batch.announce and not batch.route_changes(True)
                    and not batch.settled):
                told = announcements.start(batch)

                def progress(done: int) -> None:
                    self.inflight_done = done    # before the announcements it lets go
                    told(done)
                extra["progress"] = progress
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
