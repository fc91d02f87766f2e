"""Kernel news about links and addresses, turned into what the daemon must do.

Pure: the netlink monitor's event tuples and the current plan in, decisions
out. Events that arrive before the first plan exists are held and replayed
once it does (the first link dump may already be stale by then).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hivrrp.netlink import Link
from hivrrp.plan import Plan

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
    def __init__(self, links: dict[str, Link]) -> None:
        self.links = dict(links)
        self.held: list[tuple] = []
        self.overflowed = False

    def by_index(self) -> dict[int, Link]:
        return {link.index: link for link in self.links.values()}

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
        waiting = None
        for event in events:
            kind = event[0]
            if kind == "link":
                decisions += self._link(event, plan)
            elif kind == "deladdr":
                _, index, _family, address = event
                name = plan.vip_owner.get((index, address))
                if name is not None:
                    decisions.append(VipRemoved(name, index, address))
            elif kind == "newaddr":
                _, index, family, address = event
                if waiting is None:
                    waiting = plan.waiting_for_source()
                names = waiting.get((index, family))
                if names and (index, address) not in plan.vip_owner:
                    log.info("(%s) a source address appeared: %s", names[0], address)
                    decisions.append(Rebuild(f"address {address} appeared"))
                    waiting = {}   # one rebuild serves them all
            elif kind == "resync":
                decisions.append(Resync())
        return _dedupe(decisions)

    def _link(self, event: tuple, plan: Plan) -> list[Decision]:
        _, index, name, mac, up = event
        old = self.links.get(name)
        self.links[name] = Link(index, name, mac, up)
        if any(inst.config.interface == name and inst.ifindex != index
               for inst in plan.instances.values()):
            # An interface that appeared (or came back with a new index).
            log.info("interface %s appeared (index %d): picking it up", name, index)
            return [Rebuild(f"interface {name} appeared")]
        if old is None or old.up != up:
            log.info("interface %s is %s", name, "up" if up else "down")
            return [InterfaceState(index, up)]
        return []

    def replace(self, links: dict[str, Link]) -> list[Decision]:
        """A fresh dump (after a resync): the link changes it shows."""
        decisions: list[Decision] = [InterfaceState(link.index, link.up)
                                     for name, link in links.items()
                                     if name in self.links and self.links[name].up != link.up]
        self.links = dict(links)
        return decisions


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
