"""`follow NAME`: instances that take a leader's state instead of electing.

hivrrp's own extension (keepalived 2.2.7 reports "Unknown keyword 'follow'"
and runs such an instance as one that elects on its own). What is refused
here is refused because the daemon could not say what the follower's state
is: a leader that does not exist, a chain (a follower's leader must elect),
a follower in a sync group (two masters of its state), itself. What is only
warned about is a keyword that does nothing on a follower.
"""

from __future__ import annotations

from hivrrp.config import strict as strict_mode
from hivrrp.config.diagnostics import Diagnostics
from hivrrp.config.model import Config, Instance
from hivrrp.util.text import plural

LEADER_LINES = 12          # leaders listed one a line by `hivrrp check`, the rest counted
NAMES_SHOWN = 3            # follower names on a leader's line

KEEPALIVED_NOTE = ("hivrrp's own keyword: keepalived rejects it (\"Unknown keyword 'follow'\", "
                   "-t exits 5) and runs such an instance as one that elects on its own, so both "
                   "routers must run hivrrp with the same grouping")


def validate(config: Config, names: dict[str, Instance], diag: Diagnostics) -> None:
    """Refuse the references the daemon cannot run (clearing them, so that
    nothing downstream meets one) and warn about what does nothing on a
    follower. Runs after sync groups and trackers are resolved."""
    valid = {inst.name for inst in config.instances}
    for inst in config.instances:
        leader_name = inst.follow
        if leader_name is None:
            continue
        where = strict_mode.at(diag, inst, "follow")
        leader = names.get(leader_name) if leader_name in valid else None
        problem = None
        if leader_name == inst.name:
            problem = "an instance cannot follow itself"
        elif leader is None:
            problem = (f"no vrrp_instance {leader_name}" if leader_name not in names
                       else f"vrrp_instance {leader_name} is not valid (see its errors)")
        elif leader.follow is not None:
            problem = (f"{leader_name} follows {leader.follow} itself: a leader elects, so "
                       f"follow {leader.follow} instead (no chains)")
        elif inst.sync_group is not None:
            problem = (f"{inst.name} is in vrrp_sync_group {inst.sync_group}: its state would "
                       "be both its group's and its leader's (put the leader in the group)")
        if problem is not None:
            diag.error(where, f"({inst.name}) follow {leader_name}: {problem}")
            inst.follow = None
    for inst in config.instances:
        if inst.follow is not None:
            _no_effect(inst, diag)


def _no_effect(inst: Instance, diag: Diagnostics) -> None:
    label = f"({inst.name}) follows {inst.follow}"
    if inst.state == "MASTER":
        diag.warning(strict_mode.at(diag, inst, "state"),
                     f"{label}: `state MASTER` has no effect, a follower takes its leader's "
                     "state", key="follower state")
    if inst.priority == 255:
        diag.warning(strict_mode.at(diag, inst, "priority"),
                     f"{label}: priority 255 does not make a follower the address owner (it "
                     "takes its leader's state); its refresh adverts carry 255, which a peer "
                     "that does not follow obeys", key="follower priority 255")
    if inst.nopreempt:
        diag.warning(strict_mode.at(diag, inst, "nopreempt"),
                     f"{label}: nopreempt has no effect, a follower does not elect (its "
                     "leader's preemption decides)", key="follower nopreempt")
    if inst.preempt_delay:
        diag.warning(strict_mode.at(diag, inst, "preempt_delay"),
                     f"{label}: preempt_delay has no effect, a follower does not elect (its "
                     "leader's preemption decides)", key="follower preempt_delay")
    for track in inst.tracks:
        if track.weight:
            diag.warning(track.where, f"{label}: track_{track.kind} {track.name} weight "
                                      f"{track.weight} has no effect on its state (only on the "
                                      "priority its refresh adverts carry); weight 0 faults "
                                      "it, or track on the leader", key="follower weight")


def groups_of(config: Config) -> dict[str, list[str]]:
    """Leader name -> its followers' names, in configuration order (leaders
    in the order of their first follower)."""
    groups: dict[str, list[str]] = {}
    for inst in config.instances:
        if inst.follow is not None:
            groups.setdefault(inst.follow, []).append(inst.name)
    return groups


def summary_lines(config: Config, limit: int = LEADER_LINES) -> list[str]:
    """`hivrrp check`'s lines on leaders and followers: counts first, then a
    line per leader up to `limit` (10,000 followers must not be 10,000 lines)."""
    groups = groups_of(config)
    if not groups:
        return []
    followers = sum(len(names) for names in groups.values())
    lines = [f"  {plural(followers, 'follower')} of {plural(len(groups), 'leader')} "
             f"(`follow`: {KEEPALIVED_NOTE})"]
    items = list(groups.items())
    shown = items if len(items) <= limit else items[:limit - 1]
    for leader, names in shown:
        listed = ", ".join(names[:NAMES_SHOWN])
        if len(names) > NAMES_SHOWN:
            listed += f" .. {names[-1]}"
        lines.append(f"  {leader} leads {plural(len(names), 'follower')}: {listed}")
    if len(shown) < len(items):
        rest = items[len(shown):]
        lines.append(f"  ... {plural(len(rest), 'more leader')} with "
                     f"{plural(sum(len(n) for _, n in rest), 'follower')} "
                     "(hivrrp check --json lists every one)")
    return lines
