"""no_accept: which instances filter, and what their VIPs are in the drop sets (pure).

keepalived (vrrp.c vrrp_handle_accept_mode, vrrp_nftables.c): while an
instance is MASTER without accept mode and below priority 255, packets to and
from its VIPs and eVIPs are dropped by nftables. Its addresses join the drop
sets on becoming master, before the addresses are added (no packet reaches
them unfiltered), and leave after the addresses are removed on leaving it.
The reactor asks filters(); kernel/firewall.py keeps a DropSet of what the
kernel's sets hold and sends only the difference.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from hivrrp.config.model import DEFAULT_NFTABLES_TABLE, GlobalDefs, Instance
from hivrrp.kernel.addrbatch import Change
from hivrrp.kernel.nftables import LINK_LOCAL, VIPS

OWNER_PRIORITY = 255
_LINK_LOCAL_PREFIXES = frozenset({"fe8", "fe9", "fea", "feb"})     # fe80::/10

# (family, set name, key bytes): one element of one of the drop sets.
Element = tuple[int, str, bytes]
# (interface index, address): one master's VIP, holding its element.
Holder = tuple[int, str]


def accepts(inst: Instance) -> bool:
    """The instance's accept mode, as config/strict.py resolved it when the
    file was validated (keepalived: accept unless vrrp_strict, or with
    priority 255). Unset (a model never validated) reads as accept, the
    default without vrrp_strict. The one place that reads it."""
    return True if inst.accept is None else bool(inst.accept)


def filters(inst: Instance) -> bool:
    """Whether the instance's VIPs are dropped while it is master. The address
    owner always accepts (RFC 5798 6.4.3), whatever the file says."""
    return not accepts(inst) and inst.priority != OWNER_PRIORITY


def is_link_local(change: Change) -> bool:
    """fe80::/10, read off the normalised text: the netlink thread encodes
    the element, the loop only tells identities apart (Batch)."""
    if change.family != 6:
        return False
    first = change.address.split(":", 1)[0]
    return len(first) == 4 and first[:3] in _LINK_LOCAL_PREFIXES


def holder(change: Change) -> Holder:
    """Who holds a VIP's element: the VIP on its interface. Two masters with
    one global VIP on two interfaces share its element (the kernel's sets key
    it by address alone), and it stays while either holds it."""
    return change.index, change.address


def element(change: Change) -> Element:
    """The set element that drops `change`'s address."""
    if change.family == 4:
        return 4, VIPS, socket.inet_pton(socket.AF_INET, change.address)
    packed = socket.inet_pton(socket.AF_INET6, change.address)
    if is_link_local(change):
        # The meta iif/oif register it is compared with: host byte order.
        return 6, LINK_LOCAL, packed + struct.pack("=I", change.index)
    return 6, VIPS, packed


@dataclass(frozen=True)
class Settings:
    """The table as the file asks for it (global_defs)."""
    table: str
    priority: int
    counters: bool

    @classmethod
    def of(cls, g: GlobalDefs) -> Settings:
        return cls(g.nftables_table or DEFAULT_NFTABLES_TABLE, g.nftables_priority,
                   g.nftables_counters)


def settings_change(running: Settings, wanted: Settings) -> str | None:
    """What a reload cannot change in place (keepalived cannot either): the
    table stays as it was made until the next start. None: nothing changed."""
    if running == wanted:
        return None
    return (f"the nftables table ({wanted.table}, priority {wanted.priority}"
            f"{', counters' if wanted.counters else ''}) differs from the running one "
            f"({running.table}, priority {running.priority}"
            f"{', counters' if running.counters else ''}): it changes at the next start")


def families(instances) -> set[int]:
    """The address families of the VIPs (eVIPs included) of the filtering
    instances among `instances` (InstancePlans): the tables needed."""
    return {c.family for inst in instances if filters(inst.config) for c in inst.vips}


class DropSet:
    """What the kernel's drop sets hold (or must, once in step again): each
    element with the VIPs holding it. An element stays while any filtering
    master holds it: keepalived 2.2.7 takes a shared global VIP out of its set
    when the first of its masters leaves (and its second add, NLM_F_EXCL,
    fails the whole batch)."""

    def __init__(self) -> None:
        self.elements: dict[Element, set[Holder]] = {}

    def change(self, add: list[tuple[Element, Holder]], remove: list[tuple[Element, Holder]]
               ) -> tuple[list[Element], list[Element]]:
        """Record holders gained and lost; returns the elements that enter and
        leave the sets (in the kernel, removing an absent element fails the
        whole transaction). A holder added twice is one holder."""
        touched = dict.fromkeys(e for e, _holder in add + remove)
        before = {e for e in touched if e in self.elements}
        for e, who in add:
            self.elements.setdefault(e, set()).add(who)
        for e, who in remove:
            holders = self.elements.get(e)
            if holders is not None:
                holders.discard(who)
                if not holders:
                    del self.elements[e]
        added = [e for e in touched if e not in before and e in self.elements]
        removed = [e for e in touched if e in before and e not in self.elements]
        return added, removed

    def by_set(self, elements: list[Element] | None = None) -> dict[tuple[int, str], list[bytes]]:
        """Elements grouped by (family, set), in order (all of them by default)."""
        grouped: dict[tuple[int, str], list[bytes]] = {}
        for family, name, packed in (sorted(self.elements) if elements is None else elements):
            grouped.setdefault((family, name), []).append(packed)
        return grouped

    def families(self) -> set[int]:
        return {family for family, _name, _key in self.elements}
