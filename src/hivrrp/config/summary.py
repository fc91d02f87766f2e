"""The summary `hivrrp check` prints, and its per-instance tracker report."""

from __future__ import annotations

from collections import Counter

from hivrrp.config.followers import summary_lines as follower_lines
from hivrrp.tracking.policy import Tracking, Use, uses_of
from hivrrp.util.text import plural as _plural

OWNER = 255
LOWEST, HIGHEST = 1, 254          # what the engine clamps base + tracker delta to
TRACKER_LINES = 20                # text lines at most for the tracker report

# What a weight 0 tracker faults on: (normal, reverse).
_FAULT_WHEN = {
    "interface": ("down", "up"),
    "script": ("failing", "succeeding"),
    "process": ("not running", "running"),
    "file": ("non-zero", "zero"),
}


def summary(path: str, result) -> str:
    config = result.config
    instances = config.instances
    families = Counter(i.family for i in instances)
    versions = Counter(i.version for i in instances)
    vips = sum(len(i.vips) + len(i.excluded_vips) for i in instances)
    # track_interface has no definition of its own: each interface tracked
    # (by any instance or sync group) is one tracker, as the daemon runs them.
    interfaces = {t.name for owner in (*instances, *config.sync_groups)
                  for t in owner.tracks if t.kind == "interface"}
    trackers = (len(config.scripts) + len(config.track_processes) + len(config.track_files)
                + len(interfaces))
    verdict = "OK" if result.clean else f"FAILED: {_plural(len(result.errors), 'error')}"
    if result.ok and not result.clean:
        # keepalived -t fails these too, and keepalived runs them corrected.
        verdict += (" (hivrrp run, as keepalived, runs with "
                    f"{'it' if len(result.errors) == 1 else 'them'} corrected)")
    lines = [
        f"{path}: {verdict}, {_plural(len(result.warnings), 'warning')}",
        f"  {_plural(len(instances), 'instance')} on {_plural(len(config.interfaces()), 'interface')}"
        f" (IPv4 {families.get(4, 0)}, IPv6 {families.get(6, 0)};"
        f" VRRPv2 {versions.get(2, 0)}, VRRPv3 {versions.get(3, 0)})",
        f"  {_plural(vips, 'virtual address')}, {_plural(len(config.sync_groups), 'sync group')},"
        f" {_plural(trackers, 'tracker')} (scripts {len(config.scripts)}, processes "
        f"{len(config.track_processes)}, files {len(config.track_files)}, interfaces "
        f"{len(interfaces)})",
        *follower_lines(config),
        *tracker_lines(config),
    ]
    return "\n".join(lines)


# ------------------------------------------------------------ trackers

def _faults(use: Use) -> bool:
    """A weight 0 tracker puts the instance in FAULT instead of moving its priority."""
    return use.weight == 0


def _describe(use: Use) -> str:
    if _faults(use):
        return f"{use.kind} {use.tracker} -> FAULT when {_FAULT_WHEN[use.kind][use.reverse]}"
    return f"{use.kind} {use.tracker} weight {use.weight}{' reverse' if use.reverse else ''}"


def _clamp(priority: int) -> int:
    return max(LOWEST, min(HIGHEST, priority))


def _ranges(base: int, delta: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(the priorities the instance can run with, the same before clamping to 1..254)."""
    if base == OWNER:
        return (OWNER, OWNER), (OWNER, OWNER)
    low, high = base + delta[0], base + delta[1]
    return (_clamp(low), _clamp(high)), (low, high)


def _range_text(base: int, delta: tuple[int, int]) -> str:
    if base == OWNER:
        return f"priority {OWNER}, trackers cannot change it"
    (low, high), unclamped = _ranges(base, delta)
    if low == high:
        return f"priority stays {low}"
    text = f"priority {low}..{high} possible"
    if unclamped != (low, high):
        text += f" ({unclamped[0]}..{unclamped[1]} before clamping)"
    return text


def tracking_report(config) -> dict[str, dict]:
    """Every instance that tracks anything (its own trackers and its sync
    group's, weights resolved as the daemon uses them), by name: for
    `hivrrp check --json`."""
    uses = uses_of(config)
    tracking = Tracking(uses)
    report = {}
    for inst in config.instances:
        if inst.name not in uses:
            continue
        delta = tracking.priority_range(inst.name)
        effective, unclamped = _ranges(inst.priority, delta)
        report[inst.name] = {
            "priority": inst.priority,
            "owner": inst.priority == OWNER,
            "trackers": [{"type": u.kind, "name": u.tracker, "weight": u.weight,
                          "reverse": u.reverse, "effect": "fault" if _faults(u) else "weight"}
                         for u in uses[inst.name]],
            "priority_range": list(effective),
            "unclamped_range": list(unclamped),
            "summary": f"{', '.join(_describe(u) for u in uses[inst.name])}; "
                    f"{_range_text(inst.priority, delta)}",
        }
    return report


def tracker_lines(config, limit: int = TRACKER_LINES) -> list[str]:
    """One line per set of instances with the same trackers and base priority,
    in config order, at most `limit` lines (`--json` has every instance)."""
    groups: dict[tuple[int, str], list[str]] = {}
    for name, entry in tracking_report(config).items():
        groups.setdefault((entry["priority"], entry["summary"]), []).append(name)
    lines = []
    items = list(groups.items())
    shown = items if len(items) <= limit else items[:limit - 1]
    for (priority, text), names in shown:
        if len(names) == 1:
            label = f"{names[0]} (priority {priority})"
        else:
            joint = ", " if len(names) == 2 else " .. "
            label = f"{names[0]}{joint}{names[-1]} ({len(names)} instances, priority {priority})"
        lines.append(f"  {label}: {text}")
    if len(shown) < len(items):
        rest = items[len(shown):]
        instances = sum(len(names) for _, names in rest)
        lines.append(f"  ... {len(rest)} more tracker lines for "
                     f"{_plural(instances, 'instance')} (hivrrp check --json lists every one)")
    return lines
