"""What trackers do to the instances that use them: keepalived's arithmetic, no IO.

A tracker's status comes in ("script chk is down", "file f reads 5"), and
out come the instances whose tracker delta, tracker FAULT or start hold
changed, keyed by name. The executors (tracking.hub and its trackers, kernel.linkwatch) report statuses;
the daemon applies outcomes to the engine by name at the moment of use.

keepalived 2.2.7 (vrrp_track.c, track_file.c), with m = -1 for `reverse`:
- up/down trackers (script, process, interface): weight w > 0 adds w*m while
  up, w < 0 adds w*m while down; weight 0 faults while down (while up with
  reverse). A script with no result yet adds nothing, and an unweighted one
  holds its instances before they start (keepalived keeps them in INIT).
- files: w != 0 adds clamp(value*w*m, -254, 253), and -254 means FAULT
  instead; w = 0 faults on a non-zero value (on zero with reverse).
The instance keeps the unclamped sum (the engine clamps base + delta to
1..254), so one tracker recovering undoes exactly what its failure did.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hivrrp.config.model import Config

KINDS = ("interface", "script", "file", "process")
FILE_FAULT = -254


@dataclass(frozen=True, slots=True)
class Use:
    """One instance's use of one tracker, weights resolved (config/validate.py)."""
    kind: str
    tracker: str
    weight: int
    reverse: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    delta: int = 0           # added to the base priority
    fault: bool = False      # FAULT_TRACKER
    held: bool = False       # an unweighted script has no result yet: do not start


Status = bool | int | None   # up/down, a file's value, or not known yet


def effect(use: Use, status: Status) -> Outcome:
    """What one tracker in `status` does to one instance."""
    m = -1 if use.reverse else 1
    if use.kind == "file":
        value = status or 0
        if use.weight == 0:
            return Outcome(fault=(value != 0) == (m == 1))
        scaled = max(FILE_FAULT, min(253, value * use.weight * m))
        return Outcome(fault=True) if scaled == FILE_FAULT else Outcome(delta=scaled)
    if status is None:
        return Outcome(held=use.weight == 0)
    up = bool(status)
    if use.weight == 0:
        return Outcome(fault=up == use.reverse)
    if use.weight > 0:
        return Outcome(delta=use.weight * m if up else 0)
    return Outcome(delta=use.weight * m if not up else 0)


def combine(effects: Iterable[Outcome]) -> Outcome:
    delta, fault, held = 0, False, False
    for e in effects:
        delta += e.delta
        fault |= e.fault
        held |= e.held
    return Outcome(delta, fault, held)


def uses_of(config: Config) -> dict[str, tuple[Use, ...]]:
    """Every instance's trackers: its own and its sync group's (keepalived adds
    a group's trackers to each member; one listed on both counts once, with
    the group's weight unless the member's is 0, as sync_group_tracking_init)."""
    groups = {g.name: g for g in config.sync_groups}
    out: dict[str, tuple[Use, ...]] = {}
    for inst in config.instances:
        uses: dict[tuple[str, str], Use] = {}
        for t in inst.tracks:
            uses[(t.kind, t.name)] = Use(t.kind, t.name, t.weight or 0, t.reverse)
        group = groups.get(inst.sync_group) if inst.sync_group else None
        for t in group.tracks if group else ():
            mine = uses.get((t.kind, t.name))
            if mine is None or mine.weight:
                uses[(t.kind, t.name)] = Use(t.kind, t.name, t.weight or 0, t.reverse)
        if uses:
            out[inst.name] = tuple(uses.values())
    return out


class Tracking:
    """Tracker statuses and their effect on every instance, by name."""

    def __init__(self, uses: dict[str, tuple[Use, ...]],
                 statuses: dict[tuple[str, str], Status] | None = None) -> None:
        self.uses = uses
        self.users: dict[tuple[str, str], list[str]] = {}
        for name, instance_uses in uses.items():
            for use in instance_uses:
                self.users.setdefault((use.kind, use.tracker), []).append(name)
        known = statuses or {}
        # A reload keeps what the trackers said: only trackers still in use.
        self.statuses: dict[tuple[str, str], Status] = {
            key: known.get(key) for key in self.users}
        self.outcomes: dict[str, Outcome] = {name: self._outcome(name) for name in uses}

    def trackers(self, kind: str) -> list[str]:
        return [name for k, name in self.users if k == kind]

    def outcome(self, name: str) -> Outcome:
        return self.outcomes.get(name, Outcome())

    def update(self, kind: str, tracker: str, status: Status) -> list[str]:
        """A tracker's status now; returns the instances whose outcome changed."""
        key = (kind, tracker)
        if key not in self.statuses or self.statuses[key] == status:
            return []
        self.statuses[key] = status
        changed = []
        for name in self.users[key]:
            outcome = self._outcome(name)
            if outcome != self.outcomes[name]:
                self.outcomes[name] = outcome
                changed.append(name)
        return changed

    def _outcome(self, name: str) -> Outcome:
        return combine(effect(use, self.statuses.get((use.kind, use.tracker)))
                       for use in self.uses[name])

    def priority_range(self, name: str) -> tuple[int, int]:
        """The lowest and highest delta the instance's trackers can produce
        (FAULT aside), for `hivrrp check`."""
        low = high = 0
        for use in self.uses.get(name, ()):
            if use.weight == 0:
                continue
            if use.kind == "file":
                # Any value: the contribution spans -253..253 whatever the weight.
                low, high = low - 253, high + 253
            else:
                signed = use.weight * (-1 if use.reverse else 1)
                low, high = low + min(0, signed), high + max(0, signed)
        return low, high
