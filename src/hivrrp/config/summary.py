"""The one-paragraph summary `hivrrp check` prints."""

from __future__ import annotations

from collections import Counter


def _plural(count: int, word: str) -> str:
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word}{'es' if word.endswith('s') else 's'}"


def summary(path: str, result) -> str:
    config = result.config
    instances = config.instances
    families = Counter(i.family for i in instances)
    versions = Counter(i.version for i in instances)
    vips = sum(len(i.vips) + len(i.excluded_vips) for i in instances)
    trackers = len(config.scripts) + len(config.track_processes) + len(config.track_files)
    verdict = "OK" if result.ok else f"FAILED: {_plural(len(result.errors), 'error')}"
    lines = [
        f"{path}: {verdict}, {_plural(len(result.warnings), 'warning')}",
        f"  {_plural(len(instances), 'instance')} on {_plural(len(config.interfaces()), 'interface')}"
        f" (IPv4 {families.get(4, 0)}, IPv6 {families.get(6, 0)};"
        f" VRRPv2 {versions.get(2, 0)}, VRRPv3 {versions.get(3, 0)})",
        f"  {_plural(vips, 'virtual address')}, {_plural(len(config.sync_groups), 'sync group')},"
        f" {_plural(trackers, 'tracker')} (scripts {len(config.scripts)}, processes "
        f"{len(config.track_processes)}, files {len(config.track_files)})",
    ]
    return "\n".join(lines)
