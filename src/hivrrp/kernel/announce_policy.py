"""When to announce a master's VIPs (gratuitous ARP / unsolicited NA), keepalived's way.

- became master: garp_master_repeat frames per VIP now and again after
  garp_master_delay (vrrp_min_garp: one frame, no second burst), then
  garp_master_refresh_repeat every garp_master_refresh seconds while master;
- a master heard a lower-priority advert: garp_lower_prio_repeat now and after
  garp_lower_prio_delay (both default to the master values), the refresh
  chain undisturbed;
- a master follower sent its refresh advert (follow_refresh):
  garp_master_refresh_repeat frames per VIP, once;
- a reload added VIPs to a kept master: garp_master_repeat frames for each
  of its VIPs, once (keepalived's reload: "at least we will do so for the new
  addresses"), when the added ones are in;
- a leader's followers all became master: the same as each one's, but as one
  burst, one delayed burst and one refresh chain for each set of followers
  with the same settings, keyed by the leader (FOLLOWERS, name), so that
  10,000 followers cost a handful of timers, not 20,000.
Everything is keyed by instance name and checked against the current state
when it is due: a burst or a frame for an instance that left MASTER is dropped.

A group's chain holds no addresses of its own: each of its bursts reads the
leader's followers from the running plan, and sends for the addresses in
place (VipQueue.in_place: while a reload's changes are on their way, only
what the plan before it and the running one agree on); so does a single
instance's burst, for its VIPs. It ends with its
leader's mastership (a follower is master only while its leader is), and a
follower with announcements of its own (it became master by itself) is left
out of it: one chain per follower, whatever moved it last.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from hivrrp.config.model import GlobalDefs, Instance
from hivrrp.daemon.plan import AnnounceEntry, InstancePlan, Plan, instance_key
from hivrrp.daemon.reactor import Announce
from hivrrp.kernel.announce import Announcer, Block, block
from hivrrp.kernel.netlink import Link


@dataclass(frozen=True)
class GarpSettings:
    master_repeat: int
    master_delay: float
    lower_prio_repeat: int
    lower_prio_delay: float
    refresh: float
    refresh_repeat: int


def settings(inst: Instance, g: GlobalDefs) -> GarpSettings:
    """The instance's announce settings: its own overrides, else the global ones."""
    own = inst.garp
    repeat = int(own.get("master_repeat", g.garp_master_repeat))
    delay = float(own.get("master_delay", g.garp_master_delay))
    if g.min_garp:
        repeat, delay = 1, 0.0
    lower_repeat = own.get("lower_prio_repeat", g.garp_lower_prio_repeat)
    lower_delay = own.get("lower_prio_delay", g.garp_lower_prio_delay)
    return GarpSettings(
        master_repeat=repeat, master_delay=delay,
        lower_prio_repeat=repeat if lower_repeat is None else int(lower_repeat),
        lower_prio_delay=delay if lower_delay is None else float(lower_delay),
        refresh=float(own.get("master_refresh", g.garp_master_refresh)),
        refresh_repeat=int(own.get("master_refresh_repeat", g.garp_master_refresh_repeat)))


FOLLOWERS = "followers"        # pending's key for a leader's followers: (FOLLOWERS, leader)


class AnnouncePolicy:
    def __init__(self, loop: asyncio.AbstractEventLoop, current_plan: Callable[[], Plan | None],
                 links_by_index: Callable[[], dict[int, Link]],
                 announcer: Announcer | None = None,
                 placed_plan: Callable[[], Plan | None] | None = None,
                 hold: Callable[[], bool] = lambda: False,
                 on_the_way: Callable[[], AbstractSet[tuple[int, bytes]]] = frozenset) -> None:
        """`hold()`: is a VIP trip in flight (repeats then wait, Announcer)?
        `on_the_way()`: the (ifindex, packed address) of VIP additions not in
        the kernel yet (VipQueue.on_the_way): never announced."""
        self.loop = loop
        self.current_plan = current_plan
        # The plan whose VIPs are on the interfaces (VipQueue.in_place).
        self.placed_plan = placed_plan or current_plan
        self.on_the_way = on_the_way
        self.links_by_index = links_by_index
        self.announcer = announcer or Announcer(current_plan, links_by_index, hold)
        # name, or (FOLLOWERS, leader) -> {kind: handle}: what is pending for it
        self.pending: dict[str | tuple[str, str], dict[str, asyncio.TimerHandle]] = {}
        # The plan in place (weakly: never kept alive for this) and its instances' names by key.
        self._keys_of: tuple[weakref.ref | None, dict] = (None, {})

    def is_master(self, name: str) -> bool:
        plan = self.current_plan()
        return plan is not None and plan.state(name) == "MASTER"

    def handle(self, action: Announce) -> None:
        if action.burst == "master":
            self.became_master(action.name)
        elif action.burst == "followers":
            self.followers_became_master(action.name)
        elif action.burst == "refresh":
            s = self._settings(action.name)
            if s is not None:
                self._burst(action.name, s.refresh_repeat)
        elif action.burst == "added":
            s = self._settings(action.name)
            if s is not None:
                self._burst(action.name, s.master_repeat)
        else:
            self.heard_lower_priority(action.name)

    def followers_became_master(self, leader: str) -> None:
        """Every follower of `leader` became master with it, and their VIPs
        are in (the trip that added them is done, or as far as them): each
        class of followers with the same settings (plan.FollowerGroup.announce)
        gets its bursts and refresh chain as one."""
        plan = self.current_plan()
        if plan is None or plan.state(leader) != "MASTER":
            return    # it left MASTER before that trip was done: so did they
        group = plan.followers.get(leader)
        if group is None:
            return
        key = (FOLLOWERS, leader)
        self.stop(key)
        # A new mastership of theirs: what a follower had of its own is void
        # (a reload while their VIPs were on their way gave each a chain).
        placed = self.placed_plan()
        before = group if placed is plan or placed is None else placed.followers.get(leader)
        if before is group:
            self._forget(group.names)
        elif before is not None:
            now = set(group.names)
            self._forget(tuple(name for name in before.names if name in now))
        for k in range(len(group.announce)):
            entries, s, packed = self._group_entries(leader, k)
            # (After forgetting them all, none has its own: no need to look.)
            self._entries_burst(entries, s.master_repeat, mind_own=before is not group,
                                packed=packed, names=group.names)
            if s.master_delay > 0:
                self._later(key, f"master{k}", s.master_delay, self._group_burst, leader, k,
                            True)
            if s.refresh > 0:
                self._later(key, f"refresh{k}", s.refresh, self._group_refresh, leader, k)

    def _forget(self, names: tuple[str, ...]) -> None:
        """Bursts a follower had pending from a mastership of its own are void
        once its group's take over (or end)."""
        if self.pending:
            for name in names:
                if name in self.pending:
                    self.stop(name)

    def became_master(self, name: str) -> None:
        s = self._settings(name)
        if s is None or not self.is_master(name):
            return
        self.stop(name)  # a new mastership starts its own bursts and chain
        self._burst(name, s.master_repeat)
        if s.master_delay > 0:
            self._later(name, "master", s.master_delay, self._burst, name, s.master_repeat)
        if s.refresh > 0:
            self._later(name, "refresh", s.refresh, self._refresh, name)

    def heard_lower_priority(self, name: str) -> None:
        s = self._settings(name)
        if s is None or not self.is_master(name):
            return
        self._burst(name, s.lower_prio_repeat)
        if s.lower_prio_delay > 0:
            self._later(name, "lower_prio", s.lower_prio_delay, self._burst, name,
                        s.lower_prio_repeat)

    def keep_refreshing(self, name: str) -> None:
        """A master carried over by a reload keeps (or, if renamed, gets) its
        refresh chain; a follower whose group's chain runs has it there (the
        chain reads the new plan's followers at its next round)."""
        s = self._settings(name)
        plan = self.current_plan()
        leader = plan.instances[name].config.follow if s is not None else None
        if leader is not None and any(kind.startswith("refresh") for kind in
                                      self.pending.get((FOLLOWERS, leader), ())):
            return
        if (s is not None and s.refresh > 0 and self.is_master(name)
                and "refresh" not in self.pending.get(name, ())):
            self._later(name, "refresh", s.refresh, self._refresh, name)

    def stop(self, name: str | tuple[str, str], followers: bool = False) -> None:
        """Void what is pending for an instance, or with `followers` for the
        followers of leader `name` as a group. A leader's own stop ends its
        group's chain too: its followers are masters only while it is one,
        however they left (together, one by one, or removed by a reload)."""
        if followers:
            plan = self.current_plan()
            group = plan.followers.get(name) if plan is not None else None
            if group is not None:
                self._forget(group.names)
            name = (FOLLOWERS, name)
        elif isinstance(name, str):
            self._cancel((FOLLOWERS, name))
        self._cancel(name)

    def _cancel(self, key: str | tuple[str, str]) -> None:
        for handle in self.pending.pop(key, {}).values():
            handle.cancel()

    def close(self) -> None:
        for name in list(self.pending):
            self.stop(name)
        self.announcer.close()

    # ------------------------------------------------------------------

    def _settings(self, name: str) -> GarpSettings | None:
        plan = self.current_plan()
        inst = plan.instances.get(name) if plan is not None else None
        return settings(inst.config, plan.config.global_defs) if inst is not None else None

    def _later(self, name: str | tuple[str, str], kind: str, delay: float, callback,
               *args) -> None:
        handles = self.pending.setdefault(name, {})
        old = handles.get(kind)
        if old is not None:
            old.cancel()

        def due() -> None:
            if handles.get(kind) is handle:
                del handles[kind]
                if not handles and self.pending.get(name) is handles:
                    del self.pending[name]
            callback(*args)

        handle = self.loop.call_later(delay, due)
        handles[kind] = handle

    def _refresh(self, name: str) -> None:
        s = self._settings(name)
        if s is None or not self.is_master(name):
            return
        self._burst(name, s.refresh_repeat)
        if s.refresh > 0:
            self._later(name, "refresh", s.refresh, self._refresh, name)

    def _group_entries(self, leader: str, k: int
                       ) -> tuple[Sequence[AnnounceEntry], GarpSettings, Block | None] | None:
        """Class `k` of the leader's followers in the running plan, with its
        settings now, and only the addresses in place, with the class's
        packed Block when they are all of them; None once the leader is not
        master or the class is gone (a reload)."""
        plan = self.current_plan()
        if plan is None or plan.state(leader) != "MASTER":
            return None
        group = plan.followers.get(leader)
        if group is None or k >= len(group.announce):
            return None
        first, entries = group.announce[k]
        s = self._settings(first)
        packed: Block | None = group.blocks[k]
        placed = self.placed_plan()
        if placed is not plan and placed is not None:
            # A reload's changes are on their way: what the plan before it
            # and this one agree on is there throughout (a follower it added
            # has no VIP yet, a VIP it moved is going or not there yet).
            # By address within the same leader's group: a follower or leader
            # the reload renamed keeps its VIPs.
            old_leader = self._same_in(placed, plan, leader)
            before = None if old_leader is None else placed.followers.get(old_leader.name)
            held = set() if before is None else {
                (ifindex, family, address) for _f, es in before.announce
                for _name, ifindex, family, address in es}
            entries, packed = [e for e in entries if (e[1], e[2], e[3]) in held], None
        away = self.on_the_way()
        if away:
            entries, packed = [e for e in entries if (e[1], e[3]) not in away], None
        return entries, s, packed

    def _group_burst(self, leader: str, k: int, master: bool) -> None:
        got = self._group_entries(leader, k)
        if got is not None:
            entries, s, packed = got
            self._entries_burst(entries, s.master_repeat if master else s.refresh_repeat,
                                packed=packed, names=self.current_plan().followers[leader].names)

    def _group_refresh(self, leader: str, k: int) -> None:
        got = self._group_entries(leader, k)
        if got is None or got[1].refresh <= 0:
            return
        entries, s, packed = got
        self._entries_burst(entries, s.refresh_repeat, packed=packed,
                            names=self.current_plan().followers[leader].names)
        key = (FOLLOWERS, leader)
        self._later(key, f"refresh{k}", s.refresh, self._group_refresh, leader, k)
        # A class that a reload added (or gave a refresh) gets its chain here.
        group = self.current_plan().followers[leader]
        kinds = self.pending[key]
        for j, (first, _entries) in enumerate(group.announce):
            if f"refresh{j}" not in kinds:
                other = self._settings(first)
                if other.refresh > 0:
                    self._later(key, f"refresh{j}", other.refresh, self._group_refresh, leader, j)

    def _entries_burst(self, entries: Sequence[AnnounceEntry], repeat: int,
                       mind_own: bool = True, packed: Block | None = None,
                       names: Sequence[str] = ()) -> None:
        """Frames for many instances' VIPs at once; each frame is checked
        against its instance's state when it is due, as any. A follower with
        announcements of its own pending is left to them (`mind_own`).
        `packed`: `entries` as the announcer's C queue takes them, built with
        the plan (a mass takeover's path: no Python per address), used when
        none of `names` (the instances of `entries`) is to be left out."""
        plan = self.current_plan()
        if plan is None or not entries:
            return
        g = plan.config.global_defs
        pending = self.pending if mind_own else None
        if pending and packed is not None and any(name in pending for name in names):
            packed = None
        if packed is None:
            # Off the fast path (a reload in flight, followers with their own
            # announcements): the addresses packed here, one by one.
            index = plan.index
            packed = block([(index[name], ifindex, family, address)
                            for name, ifindex, family, address in entries
                            if name in index and not (pending and name in pending)],
                           plan.names)
        if len(packed):
            interval = g.garp_interval if packed.family == 4 else g.gna_interval
            self.announcer.announce_block(self.loop, packed, repeat=repeat, interval=interval)

    def _same_in(self, placed: Plan, plan: Plan, name: str) -> InstancePlan | None:
        """Instance `name` of the running plan as the plan in place has it: by
        name or, renamed by the reload in flight, by what a reload matches
        instances by (instance_key); None if it is new."""
        key = instance_key(plan.instances[name].config)
        before = placed.instances.get(name)
        if before is None or instance_key(before.config) != key:
            # Renamed (rare): every instance's key, once per plan in place.
            cached = self._keys_of[0]() if self._keys_of[0] is not None else None
            if cached is not placed:
                self._keys_of = (weakref.ref(placed), {
                    instance_key(inst.config): name for name, inst in placed.instances.items()})
            old_name = self._keys_of[1].get(key)
            before = None if old_name is None else placed.instances.get(old_name)
        return before

    def _held_before(self, placed: Plan, plan: Plan, name: str) -> set[tuple[int, str]]:
        """The VIPs `name` of the running plan had in the plan in place. Only
        its own: an address the plan in place gave an instance that was not
        master is not in."""
        before = self._same_in(placed, plan, name)
        return set() if before is None else {(c.index, c.address) for c in before.vips}

    def _burst(self, name: str, repeat: int) -> None:
        plan = self.current_plan()
        if plan is None or plan.state(name) != "MASTER":
            return
        g = plan.config.global_defs
        vips = plan.instances[name].vips
        placed = self.placed_plan()
        if placed is not plan and placed is not None:
            # A reload's changes are on their way: a VIP it added to this
            # master is not in yet (its own "added" burst comes once it is).
            held = self._held_before(placed, plan, name)
            vips = [c for c in vips if (c.index, c.address) in held]
        away = self.on_the_way()
        by_link: dict[int, list[tuple[int, bytes]]] = {}
        for change in vips:
            packed = change.packed()
            if (change.index, packed) not in away:
                by_link.setdefault(change.index, []).append((change.family, packed))
        links = self.links_by_index()
        for index, addresses in by_link.items():
            link = links.get(index)
            if link is not None:
                interval = g.garp_interval if addresses[0][0] == 4 else g.gna_interval
                self.announcer.announce(self.loop, name, index, link.mac, addresses,
                                        repeat=repeat, interval=interval)
