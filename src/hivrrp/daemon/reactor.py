"""What follows from an engine event: policy, with no IO.

The engine states facts ("VI_1 went BACKUP -> MASTER because the master went
silent"); the reactor turns each into ordered actions for the executors (the
netlink queue, the announcer). It is keyed by instance name and holds no
engine index, so a reload between an event and its action cannot point an
action at the wrong instance. Tested with events in, actions out, no root.
Trackers, sync groups and notify add their actions here.
"""

from __future__ import annotations

from dataclasses import dataclass

from hivrrp.daemon.plan import FollowerGroup, InstancePlan, Plan
from hivrrp.kernel.addrbatch import Change, Encoded
from hivrrp.kernel.firewall_policy import filters
from hivrrp.kernel.routing import Routing


@dataclass(frozen=True, slots=True)
class SetVips:
    """Addresses to add or remove, in order; an Encoded is a follower group's
    whole set, sent as encoded at build."""
    changes: tuple[Change | Encoded, ...]
    # The addresses are believed in already (a resync after lost netlink
    # news re-adds every master's): not "on their way" for announcements.
    reassert: bool = False


@dataclass(frozen=True, slots=True)
class SetDrops:
    """A no_accept master's VIPs into (add) or out of the firewall's drop sets.
    `changes` are the instance's own VIP additions (only their addresses count)."""
    add: bool
    changes: tuple[Change, ...]


@dataclass(frozen=True, slots=True)
class SetRoutes:
    add: bool
    entries: tuple[Routing, ...]


@dataclass(frozen=True, slots=True)
class Announce:
    """Gratuitous ARP / unsolicited NA for the instance's VIPs, once they are in place.

    burst: "master" (became master: bursts and the refresh chain),
    "lower_prio" (a master heard a lower-priority advert: keepalived's
    garp_lower_prio_* bursts, the refresh chain goes on undisturbed),
    "refresh" (a master follower's refresh: one round, as garp_master_refresh's),
    "added" (a reload added VIPs to a kept master: one garp_master_repeat
    burst, as keepalived's reload sends) or "followers" (`name` is a leader
    whose followers all became master: their bursts and chains as one)."""
    name: str
    burst: str


@dataclass(frozen=True, slots=True)
class StopAnnouncing:
    """The instance no longer holds its VIPs: pending bursts and frames are void.
    followers: `name` is a leader whose followers all left MASTER."""
    name: str
    followers: bool = False


Action = SetVips | SetDrops | SetRoutes | Announce | StopAnnouncing


@dataclass(frozen=True, slots=True)
class Notice:
    """A notification (notify scripts, FIFO). kind: "instance" (entered
    `state`; INIT is reported as STOP, as keepalived at shutdown), "rx_lower"
    (a master heard a lower priority) or "priority" (effective priority
    changed, reported only with notify_priority_changes)."""
    kind: str
    name: str
    state: str
    priority: int


def notices(name: str, old: str, new: str, reason: str, priority: int,
            priority_changes: bool) -> list[Notice]:
    """What to tell the notify scripts and FIFO about one engine event."""
    if old != new:
        return [Notice("instance", name, "STOP" if new == "INIT" else new, priority)]
    if reason == "rx_lower_priority":
        return [Notice("rx_lower", name, new, priority)]
    if reason == "priority" and priority_changes and new in ("MASTER", "BACKUP"):
        return [Notice("priority", name, new, priority)]
    return []


def transition(inst: InstancePlan, old: str, new: str, reason: str) -> list[Action]:
    """Actions for one engine event of instance `inst`."""
    if old == new:
        if new == "MASTER" and reason == "rx_lower_priority":
            return [Announce(inst.name, "lower_prio")]
        if new == "MASTER" and reason == "follow_refresh":
            return [Announce(inst.name, "refresh")]
        return []
    if new == "MASTER":
        # Routes after their addresses: a virtual route may use a VIP as source.
        # A no_accept master's VIPs are dropped before they are added
        # (vipqueue applies drop additions first): none answers meanwhile.
        actions: list[Action] = [SetDrops(True, inst.vips)] if filters(inst.config) else []
        return actions + [SetVips(inst.vips), SetRoutes(True, inst.routes),
                          Announce(inst.name, "master")]
    if old == "MASTER":
        return release(inst)
    return []


def group_transition(group: FollowerGroup, old: str, new: str,
                     moved: int) -> list[Action] | None:
    """Actions for the followers a leader's event moved with it (`moved` of
    them, each the same way: BACKUP -> MASTER when the leader became master,
    out of MASTER otherwise), as one unit worked out at build: O(1) here,
    however many followers. None when the leader moved only some (others
    were in FAULT or INIT): the daemon then takes each follower's event."""
    if moved != len(group.names) or old == new:
        return None
    if new == "MASTER":
        actions: list[Action] = [SetDrops(True, group.drops)] if group.drops else []
        return actions + [SetVips((group.vips,)), SetRoutes(True, group.routes),
                          Announce(group.leader, "followers")]
    actions = [StopAnnouncing(group.leader, followers=True), SetRoutes(False, group.routes),
               SetVips((group.removals,))]
    if group.drops:
        actions.append(SetDrops(False, group.drops))
    return actions


def release(inst: InstancePlan) -> list[Action]:
    """A master's VIPs and routes go away (routes first, the reverse of adding),
    then its drops (vipqueue applies drop removals after the VIPs)."""
    actions: list[Action] = [StopAnnouncing(inst.name), SetRoutes(False, inst.routes),
                             SetVips(tuple(c.removal() for c in inst.vips))]
    if filters(inst.config):
        actions.append(SetDrops(False, inst.vips))
    return actions


def vip_removed(inst: InstancePlan, state: str | None, ifindex: int,
                address: str) -> list[Action]:
    """Someone deleted one of our addresses: a master puts it back."""
    if state != "MASTER":
        return []
    lost = tuple(c for c in inst.vips if (c.index, c.address) == (ifindex, address))
    return [SetVips(lost)] if lost else []


def resync(plan: Plan) -> list[Action]:
    """After lost netlink news: every master's VIPs again (adding what exists is a no-op)."""
    states = plan.states()
    changes = tuple(c for name, inst in plan.instances.items()
                    if states[name] == "MASTER" for c in inst.vips)
    return [SetVips(changes, reassert=True)] if changes else []


def reloaded(old: Plan, new: Plan, kept: dict[str, str],
             old_states: dict[str, str]) -> list[Action]:
    """Actions for swapping `old` for `new`.

    kept maps new names to old ones; old_states are the old instances' states
    at the swap. Kept masters get only the difference of their VIPs and routes,
    removed masters are released, renamed ones stop announcing under the old name.
    A kept master that starts or stops filtering (accept <-> no_accept, priority
    255) has all its VIPs put into or taken out of the drop sets.
    """
    add_vips: list[Change] = []
    remove_vips: list[Change] = []
    add_drops: list[Change] = []
    remove_drops: list[Change] = []
    add_routes: list[Routing] = []
    remove_routes: list[Routing] = []
    stop: list[str] = []
    grown: list[str] = []
    for new_name, old_name in kept.items():
        if old_states.get(old_name) != "MASTER":
            continue
        before, after = old.instances[old_name], new.instances[new_name]
        if new_name != old_name:
            stop.append(old_name)
        filtered, filtering = filters(before.config), filters(after.config)
        if (before.vips == after.vips and before.routes == after.routes
                and filtered == filtering):
            continue   # the usual case, and 4,000 set comparisons cost 20 ms of loop
        have = {(c.index, c.address) for c in before.vips}
        want = {(c.index, c.address) for c in after.vips}
        added = [c for c in after.vips if (c.index, c.address) not in have]
        gone = [c for c in before.vips if (c.index, c.address) not in want]
        add_vips += added
        if added:
            grown.append(new_name)
        remove_vips += [c.removal() for c in gone]
        remove_routes += [r for r in before.routes if r not in after.routes]
        add_routes += [r for r in after.routes if r not in before.routes]
        if filtering:
            add_drops += added if filtered else after.vips
        if filtered:
            remove_drops += gone if filtering else before.vips
    carried = set(kept.values())
    for name, inst in old.instances.items():
        if name not in carried and old_states.get(name) == "MASTER":
            stop.append(name)
            remove_routes += inst.routes
            remove_vips += [c.removal() for c in inst.vips]
            if filters(inst.config):
                remove_drops += inst.vips
    actions: list[Action] = [StopAnnouncing(name) for name in stop]
    if remove_routes:
        actions.append(SetRoutes(False, tuple(remove_routes)))
    # vipqueue puts drop additions before the addresses and removals after
    # them, whatever the order here; here only the last word on an address
    # counts: a VIP handed from one filtering master to another stays dropped.
    if remove_drops:
        actions.append(SetDrops(False, tuple(remove_drops)))
    if add_drops:
        actions.append(SetDrops(True, tuple(add_drops)))
    if remove_vips or add_vips:
        actions.append(SetVips(tuple(remove_vips + add_vips)))
    if add_routes:
        actions.append(SetRoutes(True, tuple(add_routes)))
    # After the additions: an announcement waits for what came before it.
    actions += [Announce(name, "added") for name in grown]
    return actions
