"""Which VMACs a configuration wants, which existing links they are, and what
must change: pure, the links and the daemon's own VMACs in, decisions out.

keepalived's rules (vrrp.c vrrp_complete_instance, create_vmac_name;
vrrp_vmac.c netlink_link_add_vmac; vrrp_if_config.c), instance by instance in
the file's order:

- The VMAC is a macvlan on the instance's interface with MAC
  00:00:5e:00:01:VRID (IPv4) or 00:00:5e:00:02:VRID (IPv6), or `use_vmac`'s.
- A macvlan already on that interface with that MAC is the instance's, under
  whatever name it has (a previous run's, after a crash): adopted, not made
  again. keepalived takes only a private-mode one; one in another mode is put
  right here (it could not be made again beside it: the kernel refuses a
  second macvlan with the same MAC on one interface).
- Otherwise the name is `use_vmac NAME`, or PREFIX.VRID (`vmac_prefix`,
  "vrrp" by default), then PREFIX1.VRID, PREFIX2.VRID, ... (IPv6 tries
  PREFIX6.VRID second) until one is free: neither a link nor taken by an
  instance before it. A named one that exists as a macvlan of that interface
  is put right (MAC, mode); one on another interface is deleted and made
  again; a link of another kind keeps its name and the VMAC gets a made-up one.

The sysctls are keepalived's too: an IPv4 VMAC gets arp_ignore=1,
accept_local=1, rp_filter=0, promote_secondaries=1, and IPv6 off (unless the
instance has IPv6 eVIPs); an IPv6 VMAC none of the IPv4 ones (keepalived 2.2.7
sets them on IPv4 VMACs only) and IPv6 on. The parent of an IPv4 VMAC gets
arp_ignore=1 and arp_filter=1 while it has one, its own values back after the
last. net.ipv4.conf.all.rp_filter, when not 0, would filter what arrives on a
VMAC whatever the VMAC's own says: it becomes 0, with every interface (and
`default`) raised to its value first, so that nothing else filters less.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from hivrrp.config.model import Config, Instance
from hivrrp.kernel.vmacnl import MACVLAN_MODE_PRIVATE, LinkInfo

log = logging.getLogger("hivrrp.kernel.vmac")

IFNAMSIZ = 16
VRRP_MAC = b"\x00\x00\x5e\x00"
VMAC_SYSCTLS = {"arp_ignore": 1, "accept_local": 1, "rp_filter": 0, "promote_secondaries": 1}
PARENT_SYSCTLS = {"arp_ignore": 1, "arp_filter": 1}


def vmac_mac(inst: Instance) -> bytes:
    """`use_vmac`'s MAC (checked by the parser; five octets: the VRID is the
    sixth, as keepalived's VRRP_VMAC_MAC_USE_VRID), else the RFC's."""
    if inst.vmac_mac is not None:
        mac = bytes(int(octet, 16) for octet in inst.vmac_mac.removesuffix(":").split(":"))
        return mac if len(mac) == 6 else mac + bytes([inst.vrid])
    return VRRP_MAC + bytes([1 if inst.family == 4 else 2, inst.vrid])


def candidate_names(prefix: str, vrid: int, family: int) -> Iterable[str]:
    """keepalived's create_vmac_name: PREFIX.VRID, then PREFIX1.VRID, ...
    (IPv6: PREFIX6.VRID second, then 1, 2, 3, 4, 5, 7, ...), the prefix cut
    so that the name fits in IFNAMSIZ - 1 bytes: bytes, not characters (a
    non-ASCII prefix cut by characters made names the kernel refuses). Unlike
    keepalived's snprintf, a character cut in two is dropped whole."""
    raw = prefix.encode()

    def fit(number: str) -> str:
        tail = f"{number}.{vrid}"
        return raw[:IFNAMSIZ - 1 - len(tail)].decode(errors="ignore") + tail
    yield fit("")
    if family == 6:
        yield fit("6")
    for n in range(1, 100_000):
        if family == 6 and n == 6:
            continue
        yield fit(str(n))


@dataclass(frozen=True, slots=True)
class Vmac:
    """One VMAC as an instance wants it."""
    instance: str
    name: str
    parent: str
    parent_index: int
    mac: bytes
    family: int
    ipv6: bool                     # IPv6 on (disable_ipv6=0)
    link_local: str | None         # the IPv6 source address it carries
    master: int = 0                # the parent's VRF, 0: none or not a VRF
    group: int = 0                 # the parent's link group


@dataclass(frozen=True, slots=True)
class Create:
    vmac: Vmac


@dataclass(frozen=True, slots=True)
class Fix:
    """An existing macvlan of the parent, made private with our MAC."""
    vmac: Vmac
    index: int
    why: str


@dataclass(frozen=True, slots=True)
class Adopt:
    """Already right (ours, or a previous run's): configured again all the same."""
    vmac: Vmac
    index: int


@dataclass(frozen=True, slots=True)
class Delete:
    name: str
    index: int
    why: str


Action = Create | Fix | Adopt | Delete


@dataclass
class Wanted:
    """What the configuration asks of the links."""
    vmacs: dict[str, Vmac] = field(default_factory=dict)      # instance name -> its VMAC
    actions: list[Action] = field(default_factory=list)       # deletions first
    problems: list[str] = field(default_factory=list)         # log lines (errors)
    notes: list[str] = field(default_factory=list)            # log lines (info)
    no_vmac: dict[str, str] = field(default_factory=dict)     # instance -> why it has none

    def names(self) -> set[str]:
        return {v.name for v in self.vmacs.values()}


def wanted(config: Config, links: dict[str, LinkInfo], ours: Iterable[str],
           sources: dict[str, str], reload: bool) -> Wanted:
    """The VMAC of every `use_vmac` instance and what makes the links so.

    `ours`: names of the VMACs this daemon made or adopted; `sources`: each
    IPv6 instance's advert source (the VMAC carries it); `reload`: a running
    daemon re-reads its file (an adopted VMAC under another name than the one
    now configured is then made again under the new name, as keepalived)."""
    ours = set(ours)
    out = Wanted()
    taken: set[str] = set()            # names instances before this one have
    claimed: set[int] = set()          # links instances before this one have
    prefix = config.global_defs.vmac_prefix or "vrrp"
    # keepalived copies the parent's master only when it is a VRF
    # (vrf_master_ifp): a bridge or bond master would enslave the VMAC itself.
    vrfs = {link.index for link in links.values() if link.kind == "vrf"}
    for inst in config.instances:
        if not inst.use_vmac:
            continue
        parent = links.get(inst.interface) if inst.interface else None
        configured = inst.use_vmac if isinstance(inst.use_vmac, str) else None
        if configured in taken:
            out.problems.append(f"({inst.name}) VMAC name {configured} is taken by another "
                                "instance: ignoring it")
            configured = None
        mac = vmac_mac(inst)
        if parent is not None and not parent.ether:
            out.problems.append(f"({inst.name}): vmacs are only supported on Ethernet type "
                                "interfaces")
            out.no_vmac[inst.name] = f"{inst.interface} is not an Ethernet interface"
            continue
        existing = None
        if parent is not None:
            existing = next((link for link in links.values()
                             if link.kind == "macvlan" and link.parent == parent.index
                             and link.mac == mac and link.index not in claimed
                             and link.name not in taken), None)
        name = None
        if existing is not None and configured and configured != existing.name:
            if reload and existing.name in ours:
                out.notes.append(f"({inst.name}) Deleting old VMAC interface {existing.name}")
                out.actions.append(Delete(existing.name, existing.index, "renamed"))
                existing = None
            else:
                out.notes.append(f"({inst.name}) vmac name mismatch {configured} <=> "
                                 f"{existing.name}. changing to {existing.name}.")
        replace = None
        if existing is not None:
            name = existing.name
        elif configured:
            named = links.get(configured)
            if named is None or named.index in claimed:
                name = configured
            elif named.kind != "macvlan":
                out.problems.append(f"({inst.name}) interface {configured} already exists and "
                                    "is not a private macvlan; ignoring vmac if_name")
            else:
                name = configured
                if parent is None or named.parent != parent.index:
                    out.notes.append(f"({inst.name}) VMAC {configured} already exists but is "
                                     "incompatible. It will be deleted/updated")
                    replace = named
                else:
                    existing = named       # this interface's: its MAC and mode put right
        if name is None:
            name = next(candidate for candidate in candidate_names(prefix, inst.vrid, inst.family)
                        if candidate not in links and candidate not in taken)
        taken.add(name)
        vmac = Vmac(inst.name, name, inst.interface, parent.index if parent else 0, mac,
                    inst.family, inst.family == 6 or any(v.family == 6 for v in inst.excluded_vips),
                    sources.get(inst.name) if inst.family == 6 and not inst.vmac_xmit_base
                    else None,
                    parent.master if parent and parent.master in vrfs else 0,
                    parent.group if parent else 0)
        out.vmacs[inst.name] = vmac
        if parent is None:
            continue                   # made when the interface appears (a rebuild)
        if replace is not None:
            claimed.add(replace.index)
            out.actions.append(Delete(replace.name, replace.index, "incompatible"))
            out.actions.append(Create(vmac))
        elif existing is not None:
            claimed.add(existing.index)
            wrong = [what for what, bad in (("MAC", existing.mac != mac),
                                             ("mode", existing.mode != MACVLAN_MODE_PRIVATE))
                     if bad]
            if wrong:
                out.notes.append(f"({inst.name}) Update old VMAC interface {name} due to wrong "
                                 f"{'/'.join(wrong)}")
                out.actions.append(Fix(vmac, existing.index, "/".join(wrong)))
            else:
                out.actions.append(Adopt(vmac, existing.index))
        else:
            out.actions.append(Create(vmac))
    # Deletions before the rest: a renamed VMAC's MAC is free again for its successor.
    out.actions.sort(key=lambda action: not isinstance(action, Delete))
    return out


def retired(ours: dict[str, int], keep: set[str], why: str = "no longer configured"
            ) -> list[Delete]:
    """Our VMACs no instance wants any more (a reload removed their use_vmac)."""
    return [Delete(name, index, why) for name, index in ours.items() if name not in keep]


def ipv6_sources(config: Config, links: dict[str, LinkInfo],
                 addresses: Iterable[tuple[int, int, str]]) -> dict[str, str]:
    """The IPv6 address each IPv6 VMAC carries: the instance's configured
    source, else its interface's link-local (keepalived's
    set_link_local_address). `addresses`: (ifindex, family, address)."""
    local: dict[int, str] = {}
    for index, family, address in addresses:
        if family == 6 and index not in local and ipaddress.IPv6Address(address).is_link_local:
            local[index] = address
    out = {}
    for inst in config.instances:
        if not inst.use_vmac or inst.family != 6:
            continue
        given = inst.unicast_src_ip or inst.mcast_src_ip
        parent = links.get(inst.interface) if inst.interface else None
        if given is not None:
            out[inst.name] = str(given)
        elif parent is not None and parent.index in local:
            out[inst.name] = local[parent.index]
    return out


# ------------------------------------------------------------------ sysctls

@dataclass
class ParentState:
    """A parent's own values, kept while it has IPv4 VMACs of ours."""
    saved: dict[str, int]
    vmacs: set[str] = field(default_factory=set)


def parent_changes(parents: dict[int, ParentState], parent: LinkInfo,
                   vmac: str) -> dict[str, int]:
    """A VMAC of ours on `parent`: the values to set on the parent (empty when
    they are set already). The parent's own values are kept the first time."""
    state = parents.get(parent.index)
    if state is None:
        state = parents[parent.index] = ParentState(
            {key: value for key in PARENT_SYSCTLS
             if (value := parent.devconf(key)) is not None})
    state.vmacs.add(vmac)
    return {key: value for key, value in PARENT_SYSCTLS.items()
            if parent.devconf(key) != value}


def parent_released(parents: dict[int, ParentState], vmac: str) -> list[tuple[int, dict]]:
    """A VMAC of ours went: (parent index, values to put back) for each parent
    left with none."""
    out = []
    for index, state in list(parents.items()):
        if vmac in state.vmacs:
            state.vmacs.discard(vmac)
            if not state.vmacs:
                del parents[index]
                if state.saved:
                    out.append((index, state.saved))
    return out


@dataclass
class RpFilter:
    """keepalived's clear_rp_filter / restore_rp_filter: what was changed."""
    all: int | None = None                        # all.rp_filter before, when we set it to 0
    default: int | None = None                    # default.rp_filter before, when raised
    interfaces: dict[int, int] = field(default_factory=dict)   # index -> value before

    @property
    def active(self) -> bool:
        return self.all is not None


def clear_rp_filter(state: RpFilter, all_value: int, default_value: int,
                    links: Iterable[LinkInfo]) -> tuple[int | None, list[tuple[int, int]]]:
    """all.rp_filter != 0: (new default or None, [(index, value)] to raise),
    after which all.rp_filter becomes 0. Nothing when it is 0 already."""
    if state.active or all_value == 0:
        return None, []
    state.all = all_value
    new_default = None
    if default_value < all_value:
        state.default = default_value
        new_default = all_value
    raise_ = []
    for link in links:
        value = link.devconf("rp_filter")
        if value is not None and value < all_value:
            state.interfaces[link.index] = value
            raise_.append((link.index, all_value))
    return new_default, raise_


def restore_rp_filter(state: RpFilter, all_now: int, default_now: int,
                      now: dict[int, int | None]) -> tuple[int | None, int | None,
                                                           list[tuple[int, int]]]:
    """Back as they were, each only where it is still what we made it:
    (all, default, [(index, value)]); None: leave it."""
    if not state.active:
        return None, None, []
    all_value = state.all if all_now == 0 else None
    default_value = (state.default if state.default is not None and default_now == state.all
                     else None)
    interfaces = [(index, value) for index, value in state.interfaces.items()
                  if now.get(index) == state.all]
    state.all, state.default, state.interfaces = None, None, {}
    return all_value, default_value, interfaces
