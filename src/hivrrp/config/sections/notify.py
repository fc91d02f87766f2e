"""notify* keywords of vrrp_instance and vrrp_sync_group."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hivrrp.config.model import Instance
from hivrrp.config.tree import Node

if TYPE_CHECKING:
    from hivrrp.config.builder import Builder

NOTIFY_EVENTS = {"notify_master": "master", "notify_backup": "backup", "notify_fault": "fault",
                 "notify_stop": "stop", "notify_deleted": "deleted", "notify": "any"}


def notify(b: Builder, node: Node, target) -> None:
    script = b.script(node)
    if script is not None:
        target.notify[NOTIFY_EVENTS[node.keyword]] = script


def notify_rx_lower(b: Builder, node: Node, inst: Instance) -> None:
    inst.notify_master_rx_lower_pri = b.script(node)
