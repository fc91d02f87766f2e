"""vrrp_sync_group: instances that change state together."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hivrrp.config import keywords
from hivrrp.config.model import SyncGroup
from hivrrp.config.sections.common import setter
from hivrrp.config.sections.notify import NOTIFY_EVENTS, notify
from hivrrp.config.sections.trackers import track_list
from hivrrp.config.tree import Node

if TYPE_CHECKING:
    from hivrrp.config.builder import Builder


def sync_group(b: Builder, node: Node) -> None:
    group = b.section(node, "sync group", SyncGroup, SYNC_GROUP_HANDLERS,
                      keywords.IGNORED_SYNC_GROUP)
    if group is not None:
        b.config.sync_groups.append(group)


def _group_members(b: Builder, node: Node, group: SyncGroup) -> None:
    for child in b.block(node):
        group.members.extend([child.keyword, *child.args])  # one or several per line


SYNC_GROUP_HANDLERS: dict[str, Callable] = {
    "group": _group_members,
    "track_interface": track_list("interface"),
    "track_script": track_list("script"),
    "track_file": track_list("file"),
    "track_process": track_list("process"),
    **{keyword: notify for keyword in NOTIFY_EVENTS},
    "smtp_alert": setter("smtp_alert", "bool"),
    "notify_priority_changes": setter("notify_priority_changes", "bool"),
    "sync_group_tracking_weight": setter("tracking_weight", "bool"),
}
