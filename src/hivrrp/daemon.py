"""`hivrrp run`: the wiring of the event loop.

driver (sockets, timer) -> engine events -> reactor (policy, by name) ->
executors: vips (netlink queue) and garp (announcements). links turns kernel
news into decisions, lifecycle runs reloads one at a time, plan builds the
engine off the loop. This module only connects them and handles signals.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from array import array

from hivrrp import reactor
from hivrrp.config.model import Config
from hivrrp.driver import Driver, now_us
from hivrrp.garp import AnnouncePolicy
from hivrrp.lifecycle import Lifecycle
from hivrrp.links import InterfaceState, LinkTable, Rebuild, Resync, VipRemoved
from hivrrp.netlink import Address, Monitor, Netlink
from hivrrp.plan import Plan, build, match, source_appeared
from hivrrp.tasks import spawn
from hivrrp.vips import VipQueue

log = logging.getLogger("hivrrp")

SHUTDOWN_WAIT = 10.0           # seconds for the masters' VIPs and routes to go at exit


class Daemon:
    def __init__(self, config: Config, config_path: str = "", config_id: str | None = None
                 ) -> None:
        self.config, self.config_path, self.config_id = config, config_path, config_id
        self.plan: Plan | None = None
        self.netlink = Netlink()
        self.links = LinkTable({})
        self.lifecycle = Lifecycle(self.read_config, self.apply_config, lambda: self.plan.config)

    async def main(self) -> int:
        self.loop = loop = asyncio.get_running_loop()
        stop = loop.create_future()
        self.driver = Driver(loop, self.on_engine_events)
        self.garp = AnnouncePolicy(loop, lambda: self.plan, self.links.by_index)
        self.vips = VipQueue(self.netlink.apply, self.netlink.routing, self.announce)
        await self.netlink.start()
        # Subscribe before the first dump; what arrives meanwhile is held by LinkTable.
        self.monitor = Monitor(loop, self.on_netlink)
        self.monitor.start()
        self.links.links = await self.netlink.links()
        addresses = await self.netlink.addresses()
        plan = await self.build(self.config, addresses)
        await self.remove_leftovers(plan, addresses)
        self.driver.open_sockets({i.config.family for i in plan.instances.values()},
                                 len(plan.names))
        self.install(plan)
        gc.freeze()  # the configuration lives as long as we do: collections skip it
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self.lifecycle.request_reload)
        plan.engine.start_all(now_us(loop))
        self.driver.after_engine_work()
        log.info("running %d instances", len(plan.names))
        await stop
        await self.shutdown()
        return 0

    async def build(self, config: Config, addresses: list[Address]) -> Plan:
        # A worker thread: 4,000 instances take longer than a v3 Master_Down_Interval.
        links, now = dict(self.links.links), now_us(self.loop)
        return await asyncio.to_thread(build, config, links, addresses, now)

    async def build_and_match(self, config: Config, addresses: list[Address]
                              ) -> tuple[Plan, dict[str, str]]:
        """A new plan and which of the running instances it keeps, both off the
        loop: plans are not changed once built, so the thread may read the old one."""
        new = await self.build(config, addresses)
        old = self.plan
        return new, await asyncio.to_thread(match, old, new)

    async def remove_leftovers(self, plan: Plan, addresses: list[Address]) -> None:
        """VIPs still on the interfaces (a previous run crashed) go away first."""
        present = {(a.index, a.address) for a in addresses}
        stale = [c.removal() for i in plan.instances.values() for c in i.vips
                 if (c.index, c.address) in present]
        if stale:
            log.info("removing %d VIPs left over from a previous run", len(stale))
            for change, error in await self.netlink.apply(stale):
                log.warning("cannot remove %s: %s", change.address, error)

    def install(self, plan: Plan) -> None:
        """Make `plan` the running one (its instances not started yet)."""
        self.plan = plan
        self.driver.use(plan.engine)
        now = now_us(self.loop)
        for name, inst in plan.instances.items():
            if inst.faults:  # before start(): a faulty instance goes straight to FAULT
                plan.engine.set_fault(plan.index[name], inst.faults, True, now)
        self.driver.set_memberships(plan.groups)
        waiting = bool(plan.waiting_for_source())
        if waiting and not self.monitor.new_addresses:
            # Address additions were filtered out until now: one look closes the
            # gap between the dump this plan was built on and the filter change.
            spawn(self.look_for_sources(), "look for source addresses")
        self.monitor.want_new_addresses(waiting)
        self.on_netlink([])  # what the monitor said while there was no plan

    # ------------------------------------------------------------ events

    def on_engine_events(self, events: list[tuple]) -> None:
        plan = self.plan
        for index, old, new, reason, _time in events:
            name = plan.names[index]
            if old != new:
                log.info("(%s) %s -> %s (%s)", name, old, new, reason)
            self.dispatch(reactor.transition(plan.instances[name], old, new, reason))

    def dispatch(self, actions: list[reactor.Action]) -> None:
        for action in actions:
            if isinstance(action, reactor.StopAnnouncing):
                self.garp.stop(action.name)
        self.vips.submit(actions)

    def announce(self, action: reactor.Announce) -> None:
        if action.burst == "master":
            self.garp.became_master(action.name)
        else:
            self.garp.heard_lower_priority(action.name)

    def on_netlink(self, events: list[tuple]) -> None:
        """Kernel news: links up or down or new, addresses gone or come."""
        plan = self.plan
        decisions = self.links.handle(events, plan)
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
        self.driver.after_engine_work()

    async def look_for_sources(self) -> None:
        addresses = await self.netlink.addresses()
        if not self.lifecycle.stopping and source_appeared(self.plan, addresses):
            self.lifecycle.request_rebuild("a source address appeared")

    async def resync(self) -> None:
        """After lost netlink messages: re-read links and re-add the masters' VIPs."""
        links = await self.netlink.links()
        if self.lifecycle.stopping:
            return
        now = now_us(self.loop)
        for d in self.links.replace(links):
            self.plan.engine.set_interface(d.ifindex, d.up, now)
        self.dispatch(reactor.resync(self.plan))
        self.driver.after_engine_work()

    # --------------------------------------------------------- lifecycle

    async def read_config(self) -> Config | None:
        from hivrrp.config import load
        from hivrrp.config.diagnostics import condense

        # Parse on a worker thread: a 10,000-instance config takes ~1 s.
        result = await asyncio.to_thread(load, self.config_path, config_id=self.config_id)
        for line in condense(result.warnings):
            log.warning("%s", line)
        if result.ok:
            return result.config
        for diagnostic in result.errors:
            log.error("%s", diagnostic)
        log.error("reload rejected (%d errors): the running configuration stays",
                  len(result.errors))
        return None

    async def apply_config(self, config: Config) -> None:
        """Swap in a new configuration without disturbing what did not change."""
        addresses = await self.netlink.addresses()
        self.lifecycle.check()
        old = self.plan
        new, kept = await self.build_and_match(config, addresses)
        self.lifecycle.check()
        # From here to the end nothing awaits: the old plan's indexes stay valid.
        now = now_us(self.loop)
        old_states = old.states()
        new.engine.carry(old.engine, array("i", [new.index[name] for name in kept]),
                         array("i", [old.index[name] for name in kept.values()]), now)
        carried = set(kept.values())
        for name in old.names:
            if name not in carried and old_states[name] != "INIT":
                log.info("(%s) removed from the configuration", name)
                old.engine.stop(old.index[name], now)  # a master says priority 0
        self.driver.flush(old.engine)
        actions = reactor.reloaded(old, new, kept, old_states)
        self.install(new)
        started = 0
        for index, (name, state) in enumerate(zip(new.names, new.engine.states())):
            if state == "INIT":
                new.engine.start(index, now)
                started += 1
            elif new.refreshing and state == "MASTER" and name in kept:
                self.garp.keep_refreshing(name)
        self.dispatch(actions)
        self.driver.after_engine_work()
        vip_changes = sum(len(a.changes) for a in actions if isinstance(a, reactor.SetVips))
        log.info("reloaded: %d instances kept, %d started, %d removed, %d VIP changes",
                 len(kept), started, len(old.names) - len(kept), vip_changes)
        # The old plan is freed on return, here: a worker thread would hold the
        # GIL throughout the deallocation just the same (no bytecode runs in it).

    def request_stop(self, stop: asyncio.Future, signum: int) -> None:
        if not stop.done():
            log.info("%s: releasing masters and stopping", signal.Signals(signum).name)
            stop.set_result(signum)

    async def shutdown(self) -> None:
        """Never raises: every step is tried, whatever the one before it did."""
        steps = [self.lifecycle.stop, self._release, self.driver.close, self.garp.close,
                 self.netlink.close]
        for step in steps:
            try:
                result = step()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("shutdown step failed")

    async def _release(self) -> None:
        # Our own VIP removals would only flood the monitor (4,000 RTM_DELADDR).
        self.monitor.stop()
        # Priority 0 first: backups take over after Skew_Time instead of waiting.
        # The stop events queue every master's routes and VIPs for removal.
        self.driver.closed = True
        self.plan.engine.stop_all(now_us(self.loop))
        self.driver.after_engine_work()
        try:
            await asyncio.wait_for(self.vips.idle(), SHUTDOWN_WAIT)
        except TimeoutError:
            log.error("VIPs and routes not all removed within %.0f s: exiting anyway",
                      SHUTDOWN_WAIT)


def run(config: Config, config_path: str, config_id: str | None,
        pid_file: str | None = None) -> int:
    import uvloop

    if pid_file:
        with open(pid_file, "w") as f:
            f.write(f"{os.getpid()}\n")
    try:
        return uvloop.run(Daemon(config, config_path, config_id).main())
    finally:
        if pid_file:
            try:
                os.unlink(pid_file)
            except OSError:
                pass
