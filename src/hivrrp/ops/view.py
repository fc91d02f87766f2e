"""What the operator surfaces (control socket, metrics) may read of the running daemon.

hivrrp.daemon.wiring.Daemon satisfies this protocol and hands itself to them; they
import only this, so the daemon can import them without an import circle, and what
they touch is written down in one place. Each attribute is read fresh on every use:
a reload swaps `plan` and `sync`, so no surface keeps them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from hivrrp.daemon.driver import Driver
    from hivrrp.daemon.lifecycle import Lifecycle
    from hivrrp.daemon.plan import Plan
    from hivrrp.kernel.linkwatch import LinkWatch
    from hivrrp.kernel.netlink import Netlink
    from hivrrp.kernel.vipqueue import VipQueue
    from hivrrp.notify.events import Notifications
    from hivrrp.tracking.hub import TrackerHub
    from hivrrp.tracking.syncgroups import SyncGroups


class DaemonView(Protocol):
    # Which daemon answered (`hivrrp status` prints them).
    config_path: str
    started_at: float | None
    namespace: str | None
    # The running configuration and its engine (None before the first plan).
    plan: Plan | None
    loop: asyncio.AbstractEventLoop
    driver: Driver
    lifecycle: Lifecycle
    trackers: TrackerHub
    sync: SyncGroups
    notifications: Notifications
    vips: VipQueue
    links: LinkWatch
    # Its `firewall` (no_accept's nftables tables): status() from any thread.
    netlink: Netlink
    # `set-priority` overrides, kept across rebuilds (a reload drops them).
    runtime_priority: dict[str, int]
    # The metrics server itself (its refused-connection counts), or None.
    metrics: object | None
