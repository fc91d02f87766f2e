"""vrrp_sync_group: members change state together. Policy, no IO.

keepalived's vrrp_sync.c, by event:
- a member enters FAULT: the whole group goes to FAULT (vrrp_sync_fault), and
  stays there until no member has a fault of its own;
- a master member steps down to BACKUP: the others follow, without a
  priority-0 advert (vrrp_sync_backup);
- a member would become master (its master-down timer fired): it waits until
  every member would, then all become master (vrrp_sync_can_goto_master,
  vrrp_sync_master). The engine does the waiting (set_sync_member,
  "want_master" events, wants_master()).
The engine moves members with force(..., "sync_group"); events with that
reason are this module's own doing and move nothing further.

The caller applies the actions of each event before passing the next one
(decisions read the engine's current states), and calls recheck() whenever
faults may have cleared without an event. Work per event is O(1) except when
the group as a whole moves (O(members) once): a link under 4,000 members
must not cost 4,000 x 4,000.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from hivrrp._engine import FAULT_SYNC_GROUP
from hivrrp.config.model import Config


@dataclass(frozen=True, slots=True)
class Force:
    """Move a member with engine.force(i, state, now, "sync_group")."""
    name: str
    state: str


@dataclass(frozen=True, slots=True)
class ReleaseFault:
    """Clear the member's FAULT_SYNC_GROUP bit (it comes up as BACKUP)."""
    name: str


@dataclass(frozen=True, slots=True)
class GroupState:
    """The group as a whole is now in `state` (for notify)."""
    group: str
    state: str


SyncAction = Force | ReleaseFault | GroupState


class MemberView(Protocol):
    def state(self, name: str) -> str | None: ...
    def fault_flags(self, name: str) -> int: ...
    def wants_master(self, name: str) -> bool: ...


def groups_of(config: Config) -> dict[str, list[str]]:
    """Group name -> members that exist (validation reported the others)."""
    names = {inst.name for inst in config.instances}
    groups = {g.name: [m for m in g.members if m in names] for g in config.sync_groups}
    return {g: members for g, members in groups.items() if members}


class SyncGroups:
    def __init__(self, groups: dict[str, list[str]],
                 states: dict[str, str] | None = None) -> None:
        self.members = groups
        self.group_of = {m: g for g, ms in self.members.items() for m in ms}
        # The group's last notified state; a reload keeps it by name, and
        # adopt() corrects it against what the members are.
        known = states or {}
        self.states: dict[str, str] = {g: known.get(g, "INIT") for g in self.members}
        # Members whose master-down timer fired, as the events said; a hint
        # verified against the engine once it covers the whole group (an
        # accepted advert clears the engine's flag without an event).
        self.ready: dict[str, set[str]] = {g: set() for g in self.members}
        self.waiting: dict[str, set[str]] = {}     # INIT groups: members not up yet

    def adopt(self, names: list[str], view: MemberView) -> list[SyncAction]:
        """A plan of instances `names` was installed: release those a reload
        took out of their group while it held them down (nothing else would),
        take the group states the members show (a renamed or reused group must
        not trust a carried name), then recheck()."""
        out: list[SyncAction] = [
            ReleaseFault(n) for n in names
            if n not in self.group_of and view.fault_flags(n) & FAULT_SYNC_GROUP]
        for group, members in self.members.items():
            if any(view.fault_flags(m) & FAULT_SYNC_GROUP or view.state(m) == "FAULT"
                   for m in members):
                self.states[group] = "FAULT"
                if any(view.fault_flags(m) & ~FAULT_SYNC_GROUP for m in members):
                    # Still held down: a member new to the group joins it there.
                    out += [Force(m, "FAULT") for m in members
                            if not view.fault_flags(m) & FAULT_SYNC_GROUP]
            elif all(view.state(m) == "MASTER" for m in members):
                self.states[group] = "MASTER"
            elif all(view.state(m) in ("BACKUP", "MASTER") for m in members):
                self.states[group] = "BACKUP"
            elif self.states[group] == "FAULT":
                self.states[group] = "INIT"
        return out + self.recheck(view)

    def event(self, name: str, old: str, new: str, reason: str,
              view: MemberView) -> list[SyncAction]:
        group = self.group_of.get(name)
        if group is None:
            return []
        if new != "BACKUP" or old != "BACKUP":
            self.ready[group].discard(name)
        if reason == "sync_group":
            return []           # our own doing
        live = view.state(name)
        if live != new:
            # Superseded within the batch (forced since, or a flap already
            # over): judge the member as it is, not as it was. A master of a
            # master group that is BACKUP by now has left MASTER all the same.
            if not (old == "MASTER" and live == "BACKUP" and self.states[group] == "MASTER"):
                return []
            new = "BACKUP"
        members = self.members[group]
        if new == "FAULT":
            if self.states[group] == "FAULT":
                # The others hold the group's bit already; this one may have
                # come up since (held in INIT) and needs it too.
                return [Force(name, "FAULT")]
            # Every member gets the bit, the one at fault too: whichever of
            # them recovers first stays down until they all have.
            return [Force(m, "FAULT") for m in members] + self._group(group, "FAULT")
        if old == "MASTER" and new == "BACKUP":
            if self.states[group] == "BACKUP":
                return []      # the first to step down took the others along
            out: list[SyncAction] = [Force(m, "BACKUP") for m in members
                                     if m != name and view.state(m) == "MASTER"]
            return out + self._group(group, "BACKUP")
        if new == "MASTER":     # an address owner, which does not wait
            if self.states[group] == "MASTER":
                return []
            out = [Force(m, "MASTER") for m in members
                   if m != name and view.state(m) == "BACKUP"]
            return out + self._group(group, "MASTER")
        if reason == "want_master":
            if self.states[group] == "MASTER":
                # The others are master already (a member added by a reload,
                # or one held in INIT meanwhile): it joins them at once, as
                # vrrp_sync_can_goto_master allows.
                return [Force(name, "MASTER")]
            ready = self.ready[group]
            ready.add(name)
            if len(ready) < len(members):
                return []
            ready.intersection_update(m for m in members if view.wants_master(m)
                                      or view.state(m) == "MASTER")
            if len(ready) < len(members):
                return []
            ready.clear()
            out = [Force(m, "MASTER") for m in members if view.state(m) != "MASTER"]
            return out + self._group(group, "MASTER")
        if new == "BACKUP" and self.states[group] == "INIT":
            # Up as a group once every member is (counted down, not rescanned).
            waiting = self.waiting.get(group)
            if waiting is None:
                waiting = self.waiting[group] = {
                    m for m in members if view.state(m) not in ("BACKUP", "MASTER")}
            waiting.discard(name)
            if not waiting:
                del self.waiting[group]
                return self._group(group, "BACKUP")
        return []

    def recheck(self, view: MemberView) -> list[SyncAction]:
        """Faults may have cleared without an event (a member's own reason went
        while the group's bit held it): release the groups nobody holds down."""
        out: list[SyncAction] = []
        for group, members in self.members.items():
            if self.states[group] != "FAULT":
                continue
            if any(view.fault_flags(m) & ~FAULT_SYNC_GROUP for m in members):
                continue
            # They come up as BACKUP (an owner as MASTER, whose event then
            # takes the group there).
            out += [ReleaseFault(m) for m in members if view.fault_flags(m)]
            out += self._group(group, "BACKUP")
        return out

    def _group(self, group: str, state: str) -> list[SyncAction]:
        if self.states[group] == state:
            return []
        self.states[group] = state
        return [GroupState(group, state)]


class EngineView:
    """MemberView over an engine and a name -> index map (the current plan's)."""

    def __init__(self, engine, index: dict[str, int]) -> None:
        self.engine, self.index = engine, index

    def state(self, name: str) -> str | None:
        i = self.index.get(name)
        return None if i is None else self.engine.state(i)

    def fault_flags(self, name: str) -> int:
        i = self.index.get(name)
        return 0 if i is None else self.engine.fault_flags(i)

    def wants_master(self, name: str) -> bool:
        i = self.index.get(name)
        return i is not None and self.engine.wants_master(i)


def carry_out(actions: list[SyncAction], view: EngineView, now: int) -> list[GroupState]:
    """Apply Force and ReleaseFault to the engine; return the group changes."""
    changes = []
    for action in actions:
        if isinstance(action, GroupState):
            changes.append(action)
            continue
        i = view.index.get(action.name)
        if i is None:
            continue
        if isinstance(action, Force):
            view.engine.force(i, action.state, now, "sync_group")
        else:
            view.engine.set_fault(i, FAULT_SYNC_GROUP, False, now)
    return changes
