"""Kernel news carried out: linkpolicy.py decides, this applies it to the running daemon.

Link state goes to the engine, new interfaces and source addresses to a
rebuild, VIPs deleted behind a master's back back to the VIP queue, and lost
netlink messages to a fresh dump. Everything refers to the plan current when
it runs, never one captured before an await.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from hivrrp._engine import FAULT_INTERFACE
from hivrrp.daemon import reactor
from hivrrp.daemon.driver import now_us
from hivrrp.daemon.lifecycle import Lifecycle
from hivrrp.daemon.plan import Plan, source_appeared
from hivrrp.kernel.linkpolicy import (
    Decision,
    InterfaceState,
    LinkTable,
    Rebuild,
    Resync,
    VipRemoved,
)
from hivrrp.kernel.netlink import Link, Monitor, Netlink
from hivrrp.util.tasks import spawn

log = logging.getLogger("hivrrp")

RESYNC_TRIES = 3               # dumps overtaken by link events before taking the last one


class LinkWatch:
    def __init__(self, loop: asyncio.AbstractEventLoop, netlink: Netlink, lifecycle: Lifecycle,
                 current_plan: Callable[[], Plan | None],
                 dispatch: Callable[[list[reactor.Action]], None],
                 after_engine_work: Callable[[], None], monitor: Monitor | None = None) -> None:
        self.loop, self.netlink, self.lifecycle = loop, netlink, lifecycle
        self.current_plan, self.dispatch = current_plan, dispatch
        self.after_engine_work = after_engine_work
        self.table = LinkTable({})
        # Told the link table after links went up or down (tracked interfaces).
        self.on_links: Callable[[dict[str, Link]], None] | None = None
        # Told the live links (by index) and the indexes of those that changed
        # whenever news changed some (a MAC, an MTU), before anything is sent
        # on them: the adverts' frames are built from them.
        self.on_link_table: Callable[[dict[int, Link], set[int]], None] | None = None
        # Subscribed before the caller's first dump; what arrives meanwhile is held.
        self.monitor = monitor or Monitor(loop, self.on_netlink)
        # settle(): links the monitor has yet to tell in their final state.
        self.awaited: dict[str, tuple[int, bool]] = {}
        self.settled: asyncio.Future | None = None
        # A SIGTERM ends the wait: the run in flight gives up at its next step.
        lifecycle.on_halt.append(self._end_settle)

    def installed(self, plan: Plan, built_on: dict[str, Link]) -> None:
        """A plan became the running one: apply what the links did while it was
        built on `built_on` (the events went to the plan before it), listen for
        what it waits for, replay what the monitor said while there was none."""
        waiting = bool(plan.waiting)
        if waiting:
            # Addresses added while it was built were judged against the plan
            # before it, or filtered out: one look closes that gap.
            spawn(self.look_for_sources(), "look for source addresses")
        self.monitor.want_new_addresses(waiting)
        self.carry_out(self.table.since(built_on, plan), plan)
        self.on_netlink([])

    def on_netlink(self, events: list[tuple]) -> None:
        plan = self.current_plan()
        self.carry_out(self.table.handle(events, plan), plan)
        if self.awaited:
            self._check_settled()

    async def settle(self, expected: dict[str, tuple[int, bool]], timeout: float) -> bool:
        """Until the monitor has told every link of `expected` (name -> (index,
        up)) in that state: links a reload just made (VMACs), whose earlier
        states are still on their way. False when `timeout` ran out first."""
        self.awaited = dict(expected)
        self.settled = self.loop.create_future()
        self._check_settled()
        try:
            await asyncio.wait_for(asyncio.shield(self.settled), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self.awaited, self.settled = {}, None

    def _end_settle(self) -> None:
        if self.settled is not None and not self.settled.done():
            self.settled.set_result(True)

    def _check_settled(self) -> None:
        links = self.table.links
        for name, (index, up) in list(self.awaited.items()):
            link = links.get(name)
            if link is not None and link.index == index and link.up == up:
                del self.awaited[name]
        if not self.awaited and self.settled is not None and not self.settled.done():
            self.settled.set_result(True)

    def carry_out(self, decisions: list[Decision], plan: Plan) -> None:
        if self.table.changed and self.on_link_table is not None:
            self.on_link_table(self.table.live, self.table.take_changed())
        if not decisions:
            return
        now = now_us(self.loop)
        links_moved = False
        for d in decisions:
            if isinstance(d, InterfaceState):
                plan.engine.set_interface(d.ifindex, d.up, now)
                for name in plan.vmac_watch.get(d.ifindex, ()):
                    # vmac_xmit_base: its parent and its VMAC must both be up.
                    plan.engine.set_fault(plan.index[name], FAULT_INTERFACE,
                                          plan.link_fault(plan.instances[name], self.table.links),
                                          now)
                links_moved = True
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
        if links_moved and self.on_links is not None:
            self.on_links(self.table.links)
        self.after_engine_work()

    async def look_for_sources(self) -> None:
        addresses = await self.netlink.addresses()
        if not self.lifecycle.stopping and source_appeared(self.current_plan(), addresses):
            self.lifecycle.request_rebuild("a source address appeared")

    async def resync(self) -> None:
        """After lost netlink messages: re-read links and addresses (what appeared
        may need a rebuild) and re-add the masters' VIPs."""
        for _ in range(RESYNC_TRIES):
            generation = self.table.generation
            links = await self.netlink.links()
            if self.table.generation == generation:
                break   # no event overtook the dump: it is the newest word
        else:
            log.warning("links keep changing: resynchronising with the last dump")
        if self.lifecycle.stopping:
            return
        plan = self.current_plan()
        self.carry_out(self.table.replace(links, plan), plan)
        if self.awaited:
            self._check_settled()     # the dump may show what a reload waits for
        self.dispatch(reactor.resync(plan))
        if plan.waiting:
            spawn(self.look_for_sources(), "look for source addresses")
        self.after_engine_work()
