"""Configuration -> engine, and the runtime table keyed by instance name.

Pure work on data (no loop, no sockets), so the daemon runs `build` on a
worker thread: 4,000 instances take long enough to stall adverts if built on
the loop. Everything that outlives an `await` refers to instances by name;
`Plan.index` turns a name into the current engine index at the moment of use,
since a reload renumbers instances.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from hivrrp._engine import FAULT_INTERFACE, FAULT_NO_SOURCE, Engine
from hivrrp._wire import DEFAULT_MTU, advert_room
from hivrrp.config.followers import groups_of as follower_groups
from hivrrp.config.model import Config, Instance
from hivrrp.kernel.addrbatch import ENCODED_SEQ, Change, Encoded, encode_all
from hivrrp.kernel.announce import Block, block
from hivrrp.kernel.firewall_policy import filters
from hivrrp.kernel.netlink import Address, Link
from hivrrp.kernel.routing import Routing, route_spec, rule_spec
from hivrrp.tracking.syncgroups import EngineView, groups_of

log = logging.getLogger("hivrrp")
EVIP_LINES = 8                 # keepalived's eVIP line per instance, for this many a build
EMPTY_MAP: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class InstancePlan:
    """What the daemon (not the engine) keeps about one instance."""

    name: str
    config: Instance
    ifindex: int                   # 0 while the interface is missing
    vips: tuple[Change, ...]       # additions; removal() gives the way back
    routes: tuple[Routing, ...]    # virtual_routes and virtual_rules, in order
    faults: int                    # FAULT_* bits known at build time
    vmac: str | None = None        # its VMAC's name (use_vmac): the VIPs' interface


# (instance, ifindex, family, packed address) of a VIP to announce
AnnounceEntry = tuple[str, int, int, bytes]


@dataclass(frozen=True, slots=True)
class FollowerGroup:
    """A leader's followers (`follow`) and what their moving as one takes,
    worked out at build, off the loop: when the leader moves them all, the
    daemon's work up to the netlink trip is this group's, not each follower's."""

    leader: str
    names: tuple[str, ...]         # in the engine's order (the configuration's)
    vips: Encoded                  # every follower's VIP additions, encoded once
    removals: Encoded              # and their removals
    routes: tuple[Routing, ...]
    drops: tuple[Change, ...]      # the VIPs of followers that filter (no_accept)
    # Followers with the same announce settings (one shared `garp` mapping):
    # (a follower whose settings they are, every VIP of theirs to announce).
    announce: tuple[tuple[str, tuple[AnnounceEntry, ...]], ...]
    # The same VIPs of each class packed for the announcer's C queue with
    # this plan's engine indexes: a group's burst costs no Python per address.
    blocks: tuple[Block, ...]


@dataclass
class Plan:
    config: Config
    engine: Engine
    names: list[str]                                   # engine index -> name
    index: dict[str, int]                              # name -> engine index
    instances: dict[str, InstancePlan]
    # VIP address -> the name of the instance that has it on that instance's
    # own interface (the usual case), else {ifindex: name} (a `dev`, or an
    # address several instances have). Keyed by the address string the
    # instance's Change already holds: 10,000 VIPs add no key objects, and a
    # lookup stays one probe or two.
    vip_owners: dict[str, str | dict[int, str]] = field(default_factory=dict)
    # Derived once by build(), off the loop (a reload must not walk 4,000 instances there).
    groups: set[tuple[int, bytes, int]] = field(default_factory=set)    # memberships()
    # (ifindex, family) -> names of the instances that have no source address there
    waiting: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    refreshing: bool = False       # some instance has garp_master_refresh
    # Addresses never taken as an advert source: every configured VIP (excluded
    # ones too), whether or not its interface exists. One set for build() and
    # for the checks that ask for a rebuild, or the two could disagree forever;
    # kept only while some instance waits for a source (it is 50 bytes an
    # instance, and nothing else asks).
    not_sources: frozenset[str] = frozenset()
    # Every interface name the plan uses (instances, VIP and route `dev`) -> the
    # index it was built with, 0 when it was missing: one that appears or comes
    # back with another index needs a rebuild.
    interfaces: dict[str, int] = field(default_factory=dict)
    sync_groups: dict[str, list[str]] = field(default_factory=dict)   # group -> members
    view: EngineView | None = None     # members' states by name, for syncgroups
    # VMAC name -> the instance whose it is. A deleted one is made again.
    vmacs: dict[str, str] = field(default_factory=dict)
    # vmac_xmit_base instances run on their parent, which the engine watches;
    # their VMAC's link state faults them too: ifindex (VMAC or parent) -> names.
    vmac_watch: dict[int, list[str]] = field(default_factory=dict)
    followers: dict[str, FollowerGroup] = field(default_factory=dict)   # by leader name

    def vip_owner(self, ifindex: int, address: str) -> str | None:
        """The instance whose VIP `address` on `ifindex` is (the last one
        configured, if several are)."""
        owner = self.vip_owners.get(address)
        if isinstance(owner, str):
            return owner if self.instances[owner].ifindex == ifindex else None
        return None if owner is None else owner.get(ifindex)

    def unit_key(self, change: Change) -> object | None:
        """The key of the follower group's unit (Encoded.key) that holds
        `change`'s address, None when it is no follower's."""
        owner = self.vip_owner(change.index, change.address)
        leader = self.instances[owner].config.follow if owner is not None else None
        group = self.followers.get(leader) if leader is not None else None
        return None if group is None else group.vips.key

    def _own_vip(self, name: str, change: Change) -> None:
        owner = self.vip_owners.get(change.address)
        if owner is None and change.index == self.instances[name].ifindex:
            self.vip_owners[change.address] = name
            return
        if not isinstance(owner, dict):
            owner = {} if owner is None else {self.instances[owner].ifindex: owner}
            self.vip_owners[change.address] = owner
        owner[change.index] = name

    def states(self) -> dict[str, str]:
        """Every instance's state now, by name (one call into the engine)."""
        return dict(zip(self.names, self.engine.states()))

    def state(self, name: str) -> str | None:
        """The instance's state now, None if this plan has no such instance."""
        i = self.index.get(name)
        return None if i is None else self.engine.state(i)

    def faults_now(self, links: dict[str, Link]) -> dict[str, int]:
        """Each faulty instance's FAULT bits with the interface part judged on
        `links` (the links now) rather than on the dump it was built on: a
        link that came up meanwhile must not fault a kept master for a moment."""
        out = {}
        for name, inst in self.instances.items():
            faults = inst.faults & ~FAULT_INTERFACE
            if self.link_fault(inst, links):
                faults |= FAULT_INTERFACE
            if faults:
                out[name] = faults
        return out

    @staticmethod
    def link_fault(inst: InstancePlan, links: dict[str, Link]) -> bool:
        """Is the instance's interface (and VMAC) missing, or down? dont_track_primary:
        a link that is down does not fault it (a missing one does)."""
        c = inst.config
        link = links.get(c.interface) if c.interface else None
        if link is None or not (link.up or c.dont_track_primary):
            return True
        if inst.vmac is None:
            return link.index != inst.ifindex
        vmac = links.get(inst.vmac)
        if vmac is None or not (vmac.up or c.dont_track_primary):
            return True
        return (link if c.vmac_xmit_base else vmac).index != inst.ifindex

    def memberships(self) -> set[tuple[int, bytes, int]]:
        """(family, group, ifindex) of every multicast group the instances listen on."""
        g = self.config.global_defs
        wanted = set()
        for inst in self.instances.values():
            c = inst.config
            if c.unicast_peers or inst.ifindex == 0:
                continue
            group = c.mcast_dst_ip or (g.mcast_group4 if c.family == 4 else g.mcast_group6)
            wanted.add((c.family, group.packed, inst.ifindex))
        return wanted

    def _waiting_for_source(self) -> dict[tuple[int, int], list[str]]:
        waiting: dict[tuple[int, int], list[str]] = {}
        for inst in self.instances.values():
            # A VMAC's source is its parent's address: it appears there.
            index = (self.interfaces.get(inst.config.interface, 0) if inst.vmac is not None
                     else inst.ifindex)
            if inst.faults & FAULT_NO_SOURCE and index:
                waiting.setdefault((index, inst.config.family), []).append(inst.name)
        return waiting


def source_appeared(plan: Plan, addresses: list[Address]) -> bool:
    """Would a rebuild find a source address for an instance that waits for one?"""
    sources = SourceIndex(addresses)
    return any(sources.primary(plan.instances[name].config, ifindex, plan.not_sources)
               is not None
               for (ifindex, _family), names in plan.waiting.items()
               for name in names)


def instance_key(inst: Instance) -> tuple:
    """What identifies an instance across a reload (keepalived's vrrp_exist)."""
    if inst.unicast_peers:
        where = ("unicast", str(inst.unicast_src_ip),
                 frozenset(str(p.address) for p in inst.unicast_peers))
    else:
        # keepalived: a multicast instance that gains or loses its VMAC is another one.
        where = ("multicast", str(inst.mcast_dst_ip), bool(inst.use_vmac))
    return (inst.interface, inst.family, inst.vrid, where)


def match(old: Plan, new: Plan) -> dict[str, str]:
    """New name -> old name of the instances a reload keeps, matched as keepalived
    does (interface, family, VRID, group or peers) but through a dict, O(1) each.
    Keys are computed here, on the reload's worker thread, rather than kept
    with every instance for the daemon's lifetime."""
    old_by_key = {instance_key(inst.config): name for name, inst in old.instances.items()}
    kept = {}
    for name, inst in new.instances.items():
        old_name = old_by_key.get(instance_key(inst.config))
        if old_name is not None:
            kept[name] = old_name
    return kept


def carry_over(old: Plan, new: Plan, kept: dict[str, str], now: int) -> dict[str, str]:
    """Hand the running state from `old` to `new` (no IO, no await): kept
    instances continue where they were, removed ones stop (a master says
    priority 0 on the old engine). Returns the old instances' states."""
    old_states = old.states()
    new.engine.carry(old.engine, array("i", [new.index[name] for name in kept]),
                     array("i", [old.index[name] for name in kept.values()]), now)
    carried = set(kept.values())
    for name in old.names:
        if name not in carried and old_states[name] != "INIT":
            log.info("(%s) removed from the configuration", name)
            old.engine.stop(old.index[name], now)
    return old_states


async def build_off_loop(config: Config, links: dict[str, Link], addresses: list[Address],
                         now: int, running: Plan | None = None,
                         vmacs: Mapping[str, str] = EMPTY_MAP) -> tuple[Plan, dict[str, str]]:
    """build() and, for a reload, match() against the running plan, on a worker
    thread: 4,000 instances take longer than a v3 Master_Down_Interval. Plans
    are not changed once built, so the thread may read the running one."""
    def work() -> tuple[Plan, dict[str, str]]:
        new = build(config, links, addresses, now, vmacs=vmacs)
        return new, match(running, new) if running is not None else {}
    return await asyncio.to_thread(work)


class SourceIndex:
    """Host addresses by (ifindex, family), so choosing every instance's source
    is one pass over the addresses, not one per instance."""

    def __init__(self, addresses: list[Address]) -> None:
        self.by_link: dict[tuple[int, int], list[str]] = {}
        for address in addresses:
            if address.family == 6 and not ipaddress.IPv6Address(address.address).is_link_local:
                continue  # RFC 9568 5.1.2.1: IPv6 adverts come from the link-local address
            self.by_link.setdefault((address.index, address.family), []).append(address.address)

    def primary(self, inst: Instance, ifindex: int, vip_addresses: frozenset[str]
                ) -> str | None:
        if inst.unicast_src_ip is not None:
            return str(inst.unicast_src_ip)
        if inst.mcast_src_ip is not None:
            return str(inst.mcast_src_ip)
        for address in self.by_link.get((ifindex, inst.family), ()):
            if address not in vip_addresses:
                return address
        return None


# What a quiet build() reports to: a logger outside the "hivrrp" tree whose
# level lets nothing through (no handler is ever reached).
_SILENT = logging.Logger("hivrrp-plan-quiet", level=logging.CRITICAL + 1)


def build(config: Config, links: dict[str, Link], addresses: list[Address], now: int,
          quiet: bool = False, vmacs: Mapping[str, str] = EMPTY_MAP) -> Plan:
    """A new engine for `config` (instances not started, build-time FAULT
    reasons not applied yet: the caller does that on the loop). `quiet`: no
    warnings about this host's links and addresses, for callers to whom they
    say nothing (decode's made-up links, release at every stop). `vmacs`:
    each use_vmac instance's VMAC (kernel/vmac.py made them)."""
    report = _SILENT if quiet else log
    g = config.global_defs
    instances = config.instances
    engine = Engine(max(1, len(instances)), now=now)
    plan = Plan(config, engine, [], {}, {})
    sources = SourceIndex(addresses)
    not_sources = frozenset(v.address for i in instances for v in [*i.vips, *i.excluded_vips])
    excess: list[str] = []            # instances with eVIPs, for one line past EVIP_LINES
    for inst in instances:
        link = links.get(inst.interface) if inst.interface else None
        ifindex = link.index if link else 0
        if inst.interface:
            plan.interfaces[inst.interface] = ifindex
        # The source is the parent's address, whatever sends (keepalived's
        # VRRP_CONFIGURED_IFP); an IPv6 VMAC carries it too (kernel/vmac.py).
        src = sources.primary(inst, ifindex, not_sources)
        vmac = vmacs.get(inst.name)
        vmac_link = links.get(vmac) if vmac else None
        vip_link = link
        if vmac is not None:
            plan.interfaces[vmac] = vmac_link.index if vmac_link else 0
            plan.vmacs[vmac] = inst.name
            vip_link = vmac_link
            if inst.vmac_xmit_base:
                # Adverts from the parent, and received there (keepalived's
                # vmac_xmit_base): the engine runs the instance on the parent.
                for watched in (ifindex, plan.interfaces[vmac]):
                    if watched:
                        plan.vmac_watch.setdefault(watched, []).append(inst.name)
            else:
                # Adverts from the VMAC, so their source MAC is the virtual
                # one, and received on it: a peer's adverts from its VMAC (our
                # VMAC's MAC) reach only our VMAC, never the parent (the
                # macvlan driver hands such frames to the one with that MAC).
                ifindex = plan.interfaces[vmac]
        group = inst.mcast_dst_ip or (g.mcast_group4 if inst.family == 4 else g.mcast_group6)
        index = engine.add_instance(
            vrid=inst.vrid, ifindex=ifindex, family=inst.family, version=inst.version,
            src=src or ("0.0.0.0" if inst.family == 4 else "::"),
            priority=inst.priority, interval_cs=round(inst.advert_int * 100),
            preempt=not inst.nopreempt, preempt_delay=inst.preempt_delay,
            group=str(group), peers=[str(p.address) for p in inst.unicast_peers],
            addresses=_advertised(inst, vip_link or link, excess, report),
            auth_type=1 if inst.auth_type == "PASS" else 0,
            auth_data=(inst.auth_pass or "").encode(),
            down_timer_adverts=inst.down_timer_adverts or g.down_timer_adverts,
            lower_prio_no_advert=_either(inst.lower_prio_no_advert, g.lower_prio_no_advert),
            higher_prio_send_advert=_either(inst.higher_prio_send_advert,
                                            g.higher_prio_send_advert),
            pseudo_header=not g.v3_checksum_as_v2, track_link=not inst.dont_track_primary,
            owner_ignore_adverts=bool(inst.owner_ignore_adverts))
        vips = _vips(inst, link, vmac is not None, vmac_link, links, report)
        faults = 0
        if link is None:
            report.warning("(%s) interface %s is missing: FAULT", inst.name, inst.interface)
            faults |= FAULT_INTERFACE
        elif not link.up and not inst.dont_track_primary:
            report.warning("(%s) interface %s is down: FAULT", inst.name, inst.interface)
            faults |= FAULT_INTERFACE
        elif vmac is not None and vmac_link is None:
            report.warning("(%s) VMAC %s is missing: FAULT", inst.name, vmac)
            faults |= FAULT_INTERFACE
        elif vmac_link is not None and not vmac_link.up and not inst.dont_track_primary:
            report.warning("(%s) VMAC %s is down: FAULT", inst.name, vmac)
            faults |= FAULT_INTERFACE
        if src is None:
            report.warning("(%s) no IPv%d source address on %s: FAULT", inst.name, inst.family,
                        inst.interface)
            faults |= FAULT_NO_SOURCE
        plan.names.append(inst.name)
        plan.index[inst.name] = index
        plan.instances[inst.name] = InstancePlan(inst.name, inst, ifindex, vips,
                                                 _routes(inst, links, report), faults, vmac)
        for change in vips:
            plan._own_vip(inst.name, change)
    for inst in instances:
        for dev in _devices(inst):
            plan.interfaces.setdefault(dev, links[dev].index if dev in links else 0)
    seq = ENCODED_SEQ
    for leader, names in follower_groups(config).items():
        if leader not in plan.index:
            continue            # validation refused such a reference already
        for name in names:
            engine.follow(plan.index[name], plan.index[leader],
                          plan.instances[name].config.follow_refresh)
        plan.followers[leader] = group = _follower_group(plan, leader, names, seq)
        seq += len(group.vips) + len(group.removals)
    plan.view = EngineView(engine, plan.index)
    plan.sync_groups = groups_of(config)
    for members in plan.sync_groups.values():
        for member in members:
            engine.set_sync_member(plan.index[member], True)
    plan.groups = plan.memberships()
    plan.waiting = plan._waiting_for_source()
    if plan.waiting:
        plan.not_sources = not_sources
    plan.refreshing = g.garp_master_refresh > 0 or any(
        i.garp.get("master_refresh", 0) > 0 for i in instances)
    return plan


def _follower_group(plan: Plan, leader: str, names: list[str], seq: int) -> FollowerGroup:
    members = [plan.instances[name] for name in names]
    vips = [change for inst in members for change in inst.vips]
    key = object()       # the group's address set, the same for its additions and removals
    classes: dict[int, tuple[str, list[AnnounceEntry]]] = {}
    for inst in members:
        # Equal `garp` overrides are one shared mapping once loaded (config.model.Sharing).
        _first, entries = classes.setdefault(id(inst.config.garp), (inst.name, []))
        entries += [(inst.name, c.index, c.family, c.packed()) for c in inst.vips]
    index = plan.index
    return FollowerGroup(
        leader, tuple(names),
        vips=encode_all(vips, seq, key),
        removals=encode_all([c.removal() for c in vips], seq + len(vips), key),
        routes=tuple(r for inst in members for r in inst.routes),
        drops=tuple(c for inst in members if filters(inst.config) for c in inst.vips),
        announce=tuple((first, tuple(entries)) for first, entries in classes.values()),
        blocks=tuple(block([(index[name], ifindex, family, address)
                            for name, ifindex, family, address in entries], plan.names)
                     for _first, entries in classes.values()))


def _advertised(inst: Instance, link: Link | None, excess: list[str],
                report: logging.Logger) -> list[str]:
    """The VIPs the instance's adverts list: as many as fit, first ones first.
    As keepalived, the rest are eVIPs: on the interface with the others, not in
    adverts, so a peer with the same configuration and MTU lists the same ones.
    keepalived's line for each of the first EVIP_LINES instances (every build),
    the others at debug level: 4,000 such instances made 4,000 lines a reload."""
    room = advert_room(inst.family, inst.version, link.mtu if link else DEFAULT_MTU)
    if len(inst.vips) > room:
        excess.append(inst.name)
        level = logging.WARNING if len(excess) <= EVIP_LINES else logging.DEBUG
        report.log(level, "(%s) Number of VIPs (%d) exceeds maximum/space available in packet "
                "(max %d addresses) - excess moved to eVIPs", inst.name, len(inst.vips), room)
        if len(excess) == EVIP_LINES + 1:
            report.warning("more instances have more VIPs than an advert holds: each at debug "
                        "level (`hivrrp check` lists them)")
    return [v.address for v in inst.vips[:room]]


def _devices(inst: Instance) -> list[str]:
    """Interfaces the instance's VIPs and routes name with `dev`."""
    return [dev for entry in [*inst.vips, *inst.excluded_vips, *inst.routes]
            if isinstance(dev := entry.options.get("dev"), str)]


def _either(own, default):
    return own if own is not None else default


def _vips(inst: Instance, link: Link | None, has_vmac: bool, vmac_link: Link | None,
          links: dict[str, Link], report: logging.Logger) -> tuple[Change, ...]:
    """With a VMAC, the VIPs of the instance's family go on it (those whose
    `dev` is its interface too), the others on the interface, as keepalived."""
    out = []
    for vip in [*inst.vips, *inst.excluded_vips]:
        dev = vip.options.get("dev")
        vip_link = links.get(dev) if isinstance(dev, str) else link
        if has_vmac and vip.family == inst.family and (dev is None or dev == inst.interface):
            if vmac_link is None:
                continue               # the instance faults for want of its VMAC
            vip_link = vmac_link
        if vip_link is None:
            report.warning("(%s) no interface for VIP %s", inst.name, vip.text)
            continue
        brd = vip.options.get("brd")
        out.append(Change(
            True, vip_link.index, vip.family, vip.address, vip.prefixlen,
            label=vip.options.get("label"), scope=vip.options.get("scope"),
            broadcast=brd if brd not in ("+", "-") else None,
            nodad=bool(vip.options.get("nodad"))))
    return tuple(out)


def _routes(inst: Instance, links: dict[str, Link],
            report: logging.Logger) -> tuple[Routing, ...]:
    out: list[Routing] = []
    for route in inst.routes:
        try:
            out.append(("route", route_spec(route.destination, route.options, inst.family,
                                            lambda name: links[name].index)))
        except (KeyError, ValueError) as exc:
            report.warning("(%s) route '%s' cannot be installed: %s", inst.name, route.text, exc)
    for rule in inst.rules:
        try:
            out.append(("rule", rule_spec(rule.options, inst.family)))
        except (KeyError, ValueError) as exc:
            report.warning("(%s) rule '%s' cannot be installed: %s", inst.name, rule.text, exc)
    return tuple(out)
