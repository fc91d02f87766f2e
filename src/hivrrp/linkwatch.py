"""Kernel news carried out: links.py decides, this applies it to the running daemon.

Link state goes to the engine, new interfaces and source addresses to a
rebuild, VIPs deleted behind a master's back back to the VIP queue, and lost
netlink messages to a fresh dump. Everything refers to the plan current when
it runs, never one captured before an await.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hivrrp import reactor
from hivrrp.driver import now_us
from hivrrp.lifecycle import Lifecycle
from hivrrp.links import InterfaceState, LinkTable, Rebuild, Resync, VipRemoved
from hivrrp.netlink import Monitor, Netlink
from hivrrp.plan import Plan, source_appeared
from hivrrp.tasks import spawn

log = logging.getLogger("hivrrp")


class LinkWatch:
    def __init__(self, loop: asyncio.AbstractEventLoop, netlink: Netlink, lifecycle: Lifecycle,
                 current_plan: Callable[[], Plan | None],
                 dispatch: Callable[[list[reactor.Action]], None],
                 after_engine_work: Callable[[], None]) -> None:
        self.loop, self.netlink, self.lifecycle = loop, netlink, lifecycle
        self.current_plan, self.dispatch = current_plan, dispatch
        self.after_engine_work = after_engine_work
        self.table = LinkTable({})
        # Subscribed before the caller's first dump; what arrives meanwhile is held.
        self.monitor = Monitor(loop, self.on_netlink)

    def installed(self, plan: Plan) -> None:
        """A plan became the running one: listen for what it waits for, replay what
        the monitor said while there was none."""
        waiting = bool(plan.waiting_for_source())
        if waiting and not self.monitor.new_addresses:
            # Address additions were filtered out until now: one look closes the
            # gap between the dump this plan was built on and the filter change.
            spawn(self.look_for_sources(), "look for source addresses")
        self.monitor.want_new_addresses(waiting)
        self.on_netlink([])

    def on_netlink(self, events: list[tuple]) -> None:
        plan = self.current_plan()
        decisions = self.table.handle(events, plan)
        if not decisions:
            return
        now = now_us(self.loop)
        for d in decisions:
            if isinstance(d, InterfaceState):
                plan.engine.set_interface(d.ifindex, d.up, now)
            elif isinstance(d, Rebuild):
                self.lifecycle.request_rebuild(d.why)
            elif isinstance(d, VipRemoved):
                actions = reactor.vip_removed(plan.instances[d.name], plan.state(d.name),
                                              d.ifindex, d.address)
                if actions:
                    log.warning("(%s) VIP %s was removed while master: restoring it", d.name,
                                d.address)
                    self.dispatch(actions)
            elif isinstance(d, Resync):
                spawn(self.resync(), "netlink resync")
        self.after_engine_work()

    async def look_for_sources(self) -> None:
        addresses = await self.netlink.addresses()
        if not self.lifecycle.stopping and source_appeared(self.current_plan(), addresses):
            self.lifecycle.request_rebuild("a source address appeared")

    async def resync(self) -> None:
        """After lost netlink messages: re-read links and re-add the masters' VIPs."""
        links = await self.netlink.links()
        if self.lifecycle.stopping:
            return
        plan, now = self.current_plan(), now_us(self.loop)
        for d in self.table.replace(links):
            plan.engine.set_interface(d.ifindex, d.up, now)
        self.dispatch(reactor.resync(plan))
        self.after_engine_work()
