"""Kernel news about links and addresses, turned into what the daemon must do.

Pure: the netlink monitor's event tuples and the current plan in, decisions
out. Events that arrive before the first plan exists are held and replayed
once it does (the first link dump may already be stale by then).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from hivrrp._wire import advert_room
from hivrrp.daemon.plan import Plan
from hivrrp.kernel.netlink import Link

log = logging.getLogger("hivrrp")

HELD_EVENTS_MAX = 100_000      # bound the backlog if the first plan takes long


@dataclass(frozen=True)
class InterfaceState:
    """An interface went up or down: its instances leave or return from FAULT."""
    ifindex: int
    up: bool


@dataclass(frozen=True)
class Rebuild:
    """Re-apply the running configuration: an interface or a source address appeared."""
    why: str


@dataclass(frozen=True)
class VipRemoved:
    name: str
    ifindex: int
    address: str


@dataclass(frozen=True)
class Resync:
    """Netlink lost messages: re-read the links and re-assert the masters' VIPs."""


Decision = InterfaceState | Rebuild | VipRemoved | Resync


class LinkTable:
    """The links as the kernel's news left them, in two views. `links`, by
    name, is what plans are built and judged on: a deleted link stays in it,
    down, for the instances configured on it. `live`, by index, is the links
    that exist now, each as its latest news says: what frames, announcements
    and log lines need, where an old name or a deleted link whose index a new
    link took would be a stale MAC or MTU."""

    def __init__(self, links: dict[str, Link]) -> None:
        self.live: dict[int, Link] = {}
        self.changed: set[int] = set()     # indexes whose live entry changed, not yet taken
        self.links = links
        self.held: list[tuple] = []
        self.overflowed = False
        self.generation = 0            # link events taken in: a dump older than one is stale
        self.deleted: set[str] = set()  # links the kernel said were deleted, by name
        # While a reload or rebuild runs (it makes the VMACs, kernel/vmac.py, and
        # builds on the links after), news of links is its own doing or will be
        # judged against the plan it installs (since()): no rebuild asked for.
        self.building = False

    @property
    def links(self) -> dict[str, Link]:
        return self._links

    @links.setter
    def links(self, links: dict[str, Link]) -> None:
        """A dump: both views from it."""
        self._links = dict(links)
        self._set_live({link.index: link for link in self._links.values()})

    def _set_live(self, live: dict[int, Link]) -> None:
        old = self.live
        self.changed.update(i for i in old.keys() | live.keys() if old.get(i) != live.get(i))
        self.live = live

    def take_changed(self) -> set[int]:
        """The indexes whose live link changed (or went) since the last take."""
        changed, self.changed = self.changed, set()
        return changed

    def by_index(self) -> dict[int, Link]:
        """The live links by index, a copy (one C-level copy: the metrics
        thread calls this while the loop adds links)."""
        return dict(self.live)

    def handle(self, events: list[tuple], plan: Plan | None) -> list[Decision]:
        if plan is None:
            if len(self.held) + len(events) > HELD_EVENTS_MAX:
                self.overflowed = True   # too much to replay: re-read instead
            else:
                self.held.extend(events)
            return []
        if self.held or self.overflowed:
            events = [*self.held, *events]
            if self.overflowed:
                events.append(("resync",))
            self.held, self.overflowed = [], False
        decisions: list[Decision] = []
        waiting = plan.waiting
        for event in events:
            kind = event[0]
            if kind == "link":
                decisions += self._link(event, plan)
            elif kind == "deladdr":
                _, index, _family, address = event
                name = plan.vip_owner(index, address)
                if name is not None:
                    decisions.append(VipRemoved(name, index, address))
            elif kind == "newaddr":
                _, index, family, address = event
                names = waiting.get((index, family))
                if names and address not in plan.not_sources:
                    log.info("(%s) a source address appeared: %s", names[0], address)
                    decisions.append(Rebuild(f"address {address} appeared"))
                    waiting = {}   # one rebuild serves them all
            elif kind == "dellink":
                _, index, name = event
                if self.live.pop(index, None) is not None:
                    self.changed.add(index)
                if self.building:
                    self.deleted.add(name)       # judged against the plan it installs
                else:
                    decisions += _vmac_gone(name, index, plan)
            elif kind == "resync":
                decisions.append(Resync())
        return _dedupe(decisions)

    def _link(self, event: tuple, plan: Plan) -> list[Decision]:
        # An event without the MTU or link type (tests' older tuples): the defaults.
        _, index, name, mac, up, *rest = event
        link = Link(index, name, mac, up, *rest)
        renamed = self.live.get(index)
        if renamed is not None and renamed.name != name:
            # The old name is gone (no RTM_DELLINK says so): kept, it named
            # this index with its old state, and a resync found it missing
            # and put this index's instances in FAULT.
            if self._links.get(renamed.name) == renamed:
                del self._links[renamed.name]
        if self.live.get(index) != link:
            self.live[index] = link
            self.changed.add(index)
        old = self._links.get(name)
        self._links[name] = link
        self.generation += 1
        self.deleted.discard(name)         # (made again, or it was not deleted)
        if self.building and plan.interfaces.get(name) != index:
            # Not a link of the running plan's (a VMAC the reload is making, or
            # making again): the plan being built is judged against it at its
            # installation; a line "is up" for each of 1,000 new VMACs says nothing.
            return []
        return _judge(link, old, plan)

    def replace(self, links: dict[str, Link], plan: Plan) -> list[Decision]:
        """A fresh dump (after a resync): what it shows that the events had not."""
        links = dict(links)
        live = {link.index: link for link in links.values()}
        gone = []
        for name, old in self._links.items():
            if name not in links:   # deleted meanwhile: as RTM_DELLINK would have said
                links[name] = dataclasses.replace(old, up=False)   # its MTU, not the default
                if self.building:
                    self.deleted.add(name)   # judged at the installation, as in handle()
                gone.append((name, old.index))
        decisions: list[Decision] = []
        for name, link in links.items():
            decisions += _judge(link, self.links.get(name), plan)
        for name, index in gone:
            decisions += _vmac_gone(name, index, plan)
        self._links = links
        self._set_live(live)
        self.generation += 1
        return _dedupe(decisions)

    def since(self, snapshot: dict[str, Link], plan: Plan) -> list[Decision]:
        """What changed since `snapshot` (the links a plan was built on, while
        the events went to the plan before it), judged for `plan`."""
        decisions: list[Decision] = []
        for name, link in self.links.items():
            if snapshot.get(name) != link:
                decisions += _judge(link, snapshot.get(name), plan)
            if name in self.deleted:
                self.deleted.discard(name)       # one rebuild per deletion
                decisions += _vmac_gone(name, link.index, plan)
        return _dedupe(decisions)


def _judge(link: Link, before: Link | None, plan: Plan) -> list[Decision]:
    """What a link that is now `link` (and was `before`) means for `plan`."""
    if plan.interfaces.get(link.name, link.index) != link.index:
        # An interface the plan uses appeared (or came back with a new index).
        log.info("interface %s appeared (index %d): picking it up", link.name, link.index)
        return [Rebuild(f"interface {link.name} appeared")]
    if before is not None and before.mtu != link.mtu:
        _mtu_changed(link, before, plan)
    if before is None or before.up != link.up:
        log.info("interface %s is %s", link.name, "up" if link.up else "down")
        return [InterfaceState(link.index, link.up)]
    return []


def _vmac_gone(name: str, index: int, plan: Plan) -> list[Decision]:
    """One of the plan's VMACs was deleted (not by us: ours go after the plan
    that had them): made again, as keepalived does. Its instance is in FAULT
    meanwhile (the link's own event)."""
    if name in plan.vmacs and plan.interfaces.get(name) == index:
        log.warning("(%s) VMAC %s was deleted: making it again", plan.vmacs[name], name)
        return [Rebuild(f"VMAC {name} was deleted")]
    return []


def _mtu_changed(link: Link, before: Link, plan: Plan) -> None:
    """The running adverts keep their address lists (the kernel fragments what
    no longer fits); the next reload or rebuild sizes them for the new MTU,
    and a peer that did not must list the same first VIPs, or each drops the
    other's adverts (two masters). Said now, not when it bites."""
    log.info("interface %s: MTU %d -> %d", link.name, before.mtu, link.mtu)
    for name, inst in plan.instances.items():
        c = inst.config
        if c.interface != link.name:
            continue
        was, now = (min(len(c.vips), advert_room(c.family, c.version, mtu))
                    for mtu in (before.mtu, link.mtu))
        if was != now:
            log.warning("(%s) interface %s's MTU went %d -> %d: from the next reload its "
                        "adverts list %d of its %d VIPs, not %d; its peers' must list the "
                        "same, or each drops the other's adverts", name, link.name,
                        before.mtu, link.mtu, now, len(c.vips), was)


def _dedupe(decisions: list[Decision]) -> list[Decision]:
    """One Rebuild and one Resync per batch are enough."""
    out, seen = [], set()
    for d in decisions:
        if isinstance(d, (Rebuild, Resync)):
            if type(d) in seen:
                continue
            seen.add(type(d))
        out.append(d)
    return out
