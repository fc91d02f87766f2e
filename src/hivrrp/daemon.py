"""`hivrrp run`: the engine on real sockets, VIPs through netlink, on uvloop.

One event loop: raw sockets are read in batches (recvmmsg) straight into the
engine, one timer is armed at the engine's next deadline, and whatever the
engine queued goes out in one sendmmsg per family. Python sees only state
events: it moves VIPs (on the netlink thread) and announces them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
from dataclasses import dataclass, field

from hivrrp._engine import FAULT_INTERFACE, FAULT_NO_SOURCE, Engine
from hivrrp._io import PacketIO
from hivrrp._wire import RxBatch
from hivrrp.announce import Announcer
from hivrrp.config.model import Config, Instance
from hivrrp.addrbatch import Change
from hivrrp.netlink import Address, Link, Monitor, Netlink
from hivrrp.routing import Routing, route_spec, rule_spec
from hivrrp.sockets import SocketPool

log = logging.getLogger("hivrrp")

RX_SLOT = 4200                 # the largest advert (255 IPv6 addresses) fits
RX_BATCH = 256
MAX_READS_PER_WAKEUP = 16      # bound the time one socket can hold the loop
SOCKET_BUFFER_PER_INSTANCE = 2048
SOCKET_BUFFER_MIN = 1 << 20
SOURCE_POLL = 2.0              # seconds between looks for a missing source address
RX_POLL_PERIOD = 0.002         # seconds between reads of a busy socket
SHUTDOWN_WAIT = 10.0           # seconds for the masters' VIPs and routes to go at exit


def now_us(loop: asyncio.AbstractEventLoop) -> int:
    return int(loop.time() * 1_000_000)


@dataclass
class InstanceRuntime:
    """What the daemon (not the engine) needs to know about an instance."""

    config: Instance
    ifname: str | None
    ifindex: int
    vips: list[Change] = field(default_factory=list)
    routes: list[Routing] = field(default_factory=list)  # virtual_routes and virtual_rules


def instance_key(inst: Instance) -> tuple:
    """What identifies an instance across a reload (keepalived's vrrp_exist)."""
    if inst.unicast_peers:
        where = ("unicast", str(inst.unicast_src_ip),
                 frozenset(str(p.address) for p in inst.unicast_peers))
    else:
        where = ("multicast", str(inst.mcast_dst_ip))
    return (inst.interface, inst.family, inst.vrid, where)


class Daemon:
    def __init__(self, config: Config, config_path: str = "", config_id: str | None = None
                 ) -> None:
        self.config = config
        self.config_path = config_path
        self.config_id = config_id
        self.reloading = False
        self.reload_again = False
        self.engine: Engine | None = None
        self.runtime: list[InstanceRuntime] = []
        self.links: dict[str, Link] = {}
        self.netlink = Netlink()
        self.announcer = Announcer()
        self.pools: dict[int, SocketPool] = {}
        self.ios: list[tuple[PacketIO, RxBatch]] = []
        self.polls: dict[int, asyncio.TimerHandle] = {}   # fd -> next read of a busy socket
        self.senders: list[PacketIO] = []
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at: int | None = None       # the deadline the loop timer is armed for
        self.pending: list[Change] = []
        self.pending_routes: list[tuple[bool, Routing]] = []   # (add, entry), in order
        self.pending_announce: list[int] = []
        self.apply_task: asyncio.Task | None = None   # the trip to netlink under way
        self.stopping: asyncio.Future | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.monitor: Monitor | None = None
        self.vip_owner: dict[tuple[int, str], int] = {}   # (ifindex, address) -> instance
        self.missing_source: set[int] = set()   # instances waiting for a source address
        self.refresh_generation: dict[int, int] = {}  # instance -> current GARP refresh chain

    # ----------------------------------------------------------- set-up

    async def main(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.stopping = self.loop.create_future()
        await self.netlink.start()
        # Subscribe before the first dump so no change slips between them.
        self.monitor = Monitor(self.loop, self.on_netlink)
        self.monitor.start()
        self.links = await self.netlink.links()
        addresses = await self.netlink.addresses()
        self.install(self.config, *self.build_engine(self.config, addresses))
        await self.remove_leftovers(addresses)
        self.open_sockets()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.loop.add_signal_handler(signum, self.request_stop, signum)
        self.loop.add_signal_handler(signal.SIGHUP, self.reload_requested)
        self.engine.start_all(now_us(self.loop))
        self.after_engine_work()
        self.loop.create_task(self.watch_sources())
        log.info("running %d instances", self.engine.count)
        await self.stopping
        await self.shutdown()
        return 0

    def primary_source(self, inst: Instance, ifindex: int, addresses: list[Address],
                       vip_addresses: set[str]) -> str | None:
        if inst.unicast_src_ip is not None:
            return str(inst.unicast_src_ip)
        if inst.mcast_src_ip is not None:
            return str(inst.mcast_src_ip)
        for address in addresses:
            if address.index != ifindex or address.family != inst.family:
                continue
            if inst.family == 6 and not ipaddress.IPv6Address(address.address).is_link_local:
                continue  # RFC 9568 5.1.2.1: IPv6 adverts come from the link-local address
            if address.address not in vip_addresses:
                return address.address
        return None

    def build_engine(self, config: Config, addresses: list[Address]):
        """A new engine for `config` (instances not started), with what the
        daemon keeps per instance and the FAULT reasons to apply."""
        g = config.global_defs
        instances = config.instances
        engine = Engine(max(1, len(instances)), now=now_us(self.loop))
        runtime: list[InstanceRuntime] = []
        owner: dict[tuple[int, str], int] = {}
        faults: list[tuple[int, int]] = []
        vip_addresses = {v.address for i in instances for v in i.vips}
        for inst in instances:
            link = self.links.get(inst.interface) if inst.interface else None
            ifindex = link.index if link else 0
            src = self.primary_source(inst, ifindex, addresses, vip_addresses)
            group = inst.mcast_dst_ip or (g.mcast_group4 if inst.family == 4 else g.mcast_group6)
            index = engine.add_instance(
                vrid=inst.vrid, ifindex=ifindex, family=inst.family, version=inst.version,
                src=src or ("0.0.0.0" if inst.family == 4 else "::"),
                priority=inst.priority, interval_cs=round(inst.advert_int * 100),
                preempt=not inst.nopreempt, preempt_delay=inst.preempt_delay,
                group=str(group), peers=[str(p.address) for p in inst.unicast_peers],
                addresses=[v.address for v in inst.vips],
                auth_type=1 if inst.auth_type == "PASS" else 0,
                auth_data=(inst.auth_pass or "").encode(),
                down_timer_adverts=inst.down_timer_adverts or g.down_timer_adverts,
                lower_prio_no_advert=(inst.lower_prio_no_advert
                                      if inst.lower_prio_no_advert is not None
                                      else g.lower_prio_no_advert),
                higher_prio_send_advert=(inst.higher_prio_send_advert
                                         if inst.higher_prio_send_advert is not None
                                         else g.higher_prio_send_advert),
                pseudo_header=not g.v3_checksum_as_v2)
            rt = InstanceRuntime(inst, inst.interface, ifindex)
            for vip in [*inst.vips, *inst.excluded_vips]:
                dev = vip.options.get("dev")
                vip_link = self.links.get(dev) if isinstance(dev, str) else link
                if vip_link is None:
                    log.warning("(%s) no interface for VIP %s", inst.name, vip.text)
                    continue
                brd = vip.options.get("brd")
                rt.vips.append(Change(
                    True, vip_link.index, vip.family, vip.address, vip.prefixlen,
                    label=vip.options.get("label"), scope=vip.options.get("scope"),
                    broadcast=brd if brd not in ("+", "-") else None,
                    nodad=bool(vip.options.get("nodad"))))
                owner[(vip_link.index, vip.address)] = index
            for route in inst.routes:
                try:
                    rt.routes.append(("route", route_spec(
                        route.destination, route.options, inst.family,
                        lambda name: self.links[name].index)))
                except (KeyError, ValueError) as exc:
                    log.warning("(%s) route '%s' cannot be installed: %s", inst.name,
                                route.text, exc)
            for rule in inst.rules:
                try:
                    rt.routes.append(("rule", rule_spec(rule.options, inst.family)))
                except (KeyError, ValueError) as exc:
                    log.warning("(%s) rule '%s' cannot be installed: %s", inst.name,
                                rule.text, exc)
            runtime.append(rt)
            if link is None:
                log.warning("(%s) interface %s is missing: FAULT", inst.name, inst.interface)
                faults.append((index, FAULT_INTERFACE))
            elif not link.up:
                log.warning("(%s) interface %s is down: FAULT", inst.name, inst.interface)
                faults.append((index, FAULT_INTERFACE))
            if src is None:
                log.warning("(%s) no IPv%d source address on %s: FAULT", inst.name, inst.family,
                            inst.interface)
                faults.append((index, FAULT_NO_SOURCE))
        return engine, runtime, owner, faults

    def install(self, config: Config, engine: Engine, runtime: list[InstanceRuntime],
                owner: dict[tuple[int, str], int], faults: list[tuple[int, int]]) -> None:
        self.config, self.engine, self.runtime, self.vip_owner = config, engine, runtime, owner
        self.missing_source = {index for index, flag in faults if flag == FAULT_NO_SOURCE}
        now = now_us(self.loop)
        for index, flag in faults:  # before start(): a faulty instance goes straight to FAULT
            engine.set_fault(index, flag, True, now)

    async def remove_leftovers(self, addresses: list[Address]) -> None:
        """VIPs still on the interfaces (a previous run crashed) go away first."""
        present = {(a.index, a.address) for a in addresses}
        stale = [c.removal() for rt in self.runtime for c in rt.vips
                 if (c.index, c.address) in present]
        if stale:
            log.info("removing %d VIPs left over from a previous run", len(stale))
            for change, error in await self.netlink.apply(stale):
                log.warning("cannot remove %s: %s", change.address, error)

    def open_sockets(self) -> None:
        buffer_bytes = max(SOCKET_BUFFER_MIN, SOCKET_BUFFER_PER_INSTANCE * len(self.runtime))
        families = {rt.config.family for rt in self.runtime}
        for family in (4, 6):
            # Both families, so that a reload may add instances of either.
            try:
                self.pools[family] = SocketPool.create(family, buffer_bytes)
            except OSError as exc:
                if family in families:
                    raise
                log.warning("no IPv%d VRRP socket (%s): IPv%d instances cannot be added by "
                            "a reload", family, exc, family)
        self.update_memberships()

    def wanted_memberships(self) -> set[tuple[int, bytes, int]]:
        g = self.config.global_defs
        wanted = set()
        for rt in self.runtime:
            inst = rt.config
            if inst.unicast_peers or rt.ifindex == 0:
                continue
            group = inst.mcast_dst_ip or (g.mcast_group4 if inst.family == 4 else g.mcast_group6)
            wanted.add((inst.family, group.packed, rt.ifindex))
        return wanted

    def update_memberships(self) -> None:
        """Join the groups the instances need, leave the others; read new sockets."""
        wanted = self.wanted_memberships()
        for family, pool in self.pools.items():
            for group, ifindex in list(pool.members):
                if (family, group, ifindex) not in wanted:
                    pool.leave(group, ifindex)
        for family, group, ifindex in sorted(wanted):
            if family not in self.pools:
                log.error("no IPv%d socket: cannot serve IPv%d instances", family, family)
                continue
            try:
                self.pools[family].join(group, ifindex)
            except OSError as exc:
                log.error("cannot join a VRRP group on interface %d: %s", ifindex, exc)
        readers = {io.fd for io, _ in self.ios}
        for family, pool in self.pools.items():
            for sock in pool.sockets:
                if sock.fileno() in readers:
                    continue
                io = PacketIO(sock.fileno(), family, RX_BATCH)
                batch = RxBatch(RX_BATCH, RX_SLOT)
                self.ios.append((io, batch))
                self.loop.add_reader(sock.fileno(), self.on_readable, io, batch)
            if not any(sender.family == family for sender in self.senders):
                self.senders.append(PacketIO(pool.primary.fileno(), family, RX_BATCH))

    # ------------------------------------------------------------ events

    def drain(self, io: PacketIO, batch: RxBatch) -> int:
        """Feed everything queued on one socket to the engine; returns how many packets."""
        total = 0
        for _ in range(MAX_READS_PER_WAKEUP):
            try:
                n = io.receive(batch)
            except OSError as exc:
                log.error("receive failed: %s", exc)
                break
            if n == 0:
                break
            total += n
            self.engine.receive(batch, now_us(self.loop))
            batch.clear()
            if n < batch.capacity:
                break  # drained: asking again would only return EAGAIN
        return total

    def on_readable(self, io: PacketIO, batch: RxBatch) -> None:
        if self.drain(io, batch):
            # Traffic: poll the socket every RX_POLL_PERIOD instead of waking
            # up per packet (the kernel's NAPI does the same for interrupts).
            # A backup of 1,000 v3 instances at 0.1 s otherwise wakes 10,000
            # times a second for one packet each; the added delay (<= 2 ms) is
            # far below any Skew_Time.
            self.loop.remove_reader(io.fd)
            self.polls[io.fd] = self.loop.call_later(RX_POLL_PERIOD, self.on_poll, io, batch)
        self.after_engine_work()

    def on_poll(self, io: PacketIO, batch: RxBatch) -> None:
        if self.drain(io, batch):
            self.polls[io.fd] = self.loop.call_later(RX_POLL_PERIOD, self.on_poll, io, batch)
        else:
            del self.polls[io.fd]  # quiet: back to waking up on arrival
            self.loop.add_reader(io.fd, self.on_readable, io, batch)
        self.after_engine_work()

    def on_timer(self) -> None:
        self.timer = None
        self.timer_at = None
        self.engine.expire(now_us(self.loop))
        self.after_engine_work()

    def after_engine_work(self) -> None:
        """Send what the engine queued, react to its events, re-arm the timer."""
        if self.engine.tx_count:
            for io in self.senders:
                io.send(self.engine)
            self.engine.clear_tx()
        for instance, old, new, reason, _time in self.engine.take_events():
            self.on_event(instance, old, new, reason)
        deadline = self.engine.wakeup()
        if deadline != self.timer_at:
            # wakeup() is a lower bound that stays put while received adverts
            # push timers later, so this re-arms only when a deadline moved
            # earlier, timers stopped, or the timer fired (timer_at cleared).
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
            self.timer_at = deadline
            if deadline is not None:
                self.timer = self.loop.call_at(deadline / 1_000_000, self.on_timer)

    def on_event(self, instance: int, old: str, new: str, reason: str) -> None:
        rt = self.runtime[instance]
        if old == new:
            if reason == "rx_lower_priority":
                self.pending_announce.append(instance)  # keepalived GARPs here too
                self.schedule_apply()
            return
        log.info("(%s) %s -> %s (%s)", rt.config.name, old, new, reason)
        if new == "MASTER":
            self.pending.extend(rt.vips)
            self.pending_routes.extend((True, spec) for spec in rt.routes)
            self.pending_announce.append(instance)
        elif old == "MASTER":
            self.pending.extend(c.removal() for c in rt.vips)
            self.pending_routes.extend((False, spec) for spec in rt.routes)
        self.schedule_apply()

    def schedule_apply(self) -> None:
        if self.apply_task is None or self.apply_task.done():
            self.apply_task = self.loop.create_task(self.apply_pending())

    async def apply_pending(self) -> None:
        """Move VIPs in batches: everything that changed since the last trip goes together."""
        while self.pending or self.pending_announce or self.pending_routes:
            changes, self.pending = self.pending, []
            announce, self.pending_announce = self.pending_announce, []
            routes, self.pending_routes = self.pending_routes, []
            # Routes leave before their addresses and come after them (a
            # virtual route may use a VIP as its source).
            await self.apply_routes([r for r in routes if not r[0]])
            if changes:
                started = self.loop.time()
                failures = await self.netlink.apply(changes)
                if len(changes) >= 100:
                    log.info("%d VIP changes applied in %.3f s", len(changes),
                             self.loop.time() - started)
                for change, error in failures:
                    log.error("cannot %s %s/%d: %s", "add" if change.add else "remove",
                              change.address, change.prefixlen, error)
            await self.apply_routes([r for r in routes if r[0]])
            for instance in announce:
                self.announce(instance)

    async def apply_routes(self, routes: list[tuple[bool, Routing]]) -> None:
        for add in (False, True):
            entries = [entry for is_add, entry in routes if is_add == add]
            if entries:
                for (kind, spec), error in await self.netlink.routing(add, entries):
                    log.error("cannot %s %s %s: %s", "add" if add else "remove", kind,
                              spec, error)

    def announce(self, instance: int, *, refresh: bool = False) -> None:
        if self.engine.state(instance) != "MASTER":
            return
        rt = self.runtime[instance]
        g = self.config.global_defs
        garp = rt.config.garp
        if refresh:
            repeat = int(garp.get("master_refresh_repeat", g.garp_master_refresh_repeat))
            delay = 0.0
        else:
            repeat = int(garp.get("master_repeat", g.garp_master_repeat))
            delay = 0.0 if g.min_garp else float(garp.get("master_delay", g.garp_master_delay))
            if g.min_garp:
                repeat = 1
            self.start_refresh(instance)
        by_link: dict[int, list[tuple[int, bytes]]] = {}
        for change in rt.vips:
            by_link.setdefault(change.index, []).append(
                (change.family, ipaddress.ip_address(change.address).packed))
        names = {link.index: link for link in self.links.values()}
        for index, addresses in by_link.items():
            link = names.get(index)
            if link is not None:
                interval = g.garp_interval if addresses[0][0] == 4 else g.gna_interval
                self.announcer.announce(self.loop, link.name, index, link.mac, addresses,
                                        repeat=repeat, delay=delay, interval=interval)

    def on_netlink(self, events: list[tuple]) -> None:
        """Kernel news: links going up or down, addresses removed behind our back."""
        if self.engine is None:
            return  # before the first dump, which reads the same state
        now = now_us(self.loop)
        for event in events:
            if event[0] == "link":
                _, index, name, mac, up = event
                old = self.links.get(name)
                self.links[name] = Link(index, name, mac, up)
                if any(rt.ifname == name and rt.ifindex != index for rt in self.runtime):
                    # An interface that appeared (or came back with a new index):
                    # rebuild through the reload path, which keeps everything else.
                    log.info("interface %s appeared (index %d): picking it up", name, index)
                    self.rebuild_requested()
                elif old is None or old.up != up:
                    log.info("interface %s is %s", name, "up" if up else "down")
                    self.engine.set_interface(index, up, now)
            elif event[0] == "deladdr":
                _, index, _family, address = event
                instance = self.vip_owner.get((index, address))
                if instance is not None and self.engine.state(instance) == "MASTER":
                    rt = self.runtime[instance]
                    log.warning("(%s) VIP %s was removed while master: restoring it",
                                rt.config.name, address)
                    self.pending.extend(c for c in rt.vips
                                        if (c.index, c.address) == (index, address))
                    self.schedule_apply()
            elif event[0] == "resync":
                self.loop.create_task(self.resync())
        self.after_engine_work()

    async def watch_sources(self) -> None:
        """Instances without a source address wait for one: address additions are
        filtered out of the netlink monitor, so look every few seconds, and only
        while some instance is waiting."""
        while True:
            await asyncio.sleep(SOURCE_POLL)
            if not self.missing_source or self.reloading:
                continue
            addresses = await self.netlink.addresses()
            vips = {v.address for i in self.config.instances for v in i.vips}
            for index in self.missing_source:
                rt = self.runtime[index]
                if self.primary_source(rt.config, rt.ifindex, addresses, vips) is not None:
                    log.info("(%s) a source address appeared on %s", rt.config.name, rt.ifname)
                    self.rebuild_requested()
                    break

    async def resync(self) -> None:
        """After lost netlink messages: re-read links and re-add the masters' VIPs."""
        links = await self.netlink.links()
        now = now_us(self.loop)
        for name, link in links.items():
            old = self.links.get(name)
            if old is not None and old.up != link.up:
                self.engine.set_interface(link.index, link.up, now)
        self.links = links
        for i, rt in enumerate(self.runtime):
            if self.engine.state(i) == "MASTER":
                self.pending.extend(rt.vips)  # adding what exists is a no-op
        self.schedule_apply()
        self.after_engine_work()

    def start_refresh(self, instance: int) -> None:
        """keepalived's garp_master_refresh: announce again every N s while master."""
        rt = self.runtime[instance]
        period = float(rt.config.garp.get("master_refresh",
                                          self.config.global_defs.garp_master_refresh))
        if period <= 0:
            return
        generation = self.refresh_generation.get(instance, 0) + 1
        self.refresh_generation[instance] = generation
        self.loop.call_later(period, self.refresh, self.engine, instance, generation, period)

    def refresh(self, engine: Engine, instance: int, generation: int, period: float) -> None:
        # A chain ends when the instance left master, started a newer chain, or a
        # reload replaced the engine (which starts chains for its masters).
        if (engine is not self.engine or self.refresh_generation.get(instance) != generation
                or engine.state(instance) != "MASTER"):
            return
        self.announce(instance, refresh=True)
        self.loop.call_later(period, self.refresh, engine, instance, generation, period)

    # --------------------------------------------------------- lifecycle

    def request_stop(self, signum: int) -> None:
        log.info("%s: releasing masters and stopping", signal.Signals(signum).name)
        if self.stopping is not None and not self.stopping.done():
            self.stopping.set_result(signum)

    def rebuild_requested(self) -> None:
        """Re-apply the running configuration (new interface indexes), no re-read."""
        if self.reloading:
            self.reload_again = True
            return
        self.reloading = True

        async def rebuild() -> None:
            try:
                await self.apply_reload(self.config)
            except Exception:
                log.exception("rebuild failed")
            finally:
                self.reloading = False
            if self.reload_again:
                self.reload_requested()

        self.loop.create_task(rebuild())

    def reload_requested(self) -> None:
        if self.reloading:
            log.info("SIGHUP: reload already in progress, another one queued")
            self.reload_again = True
            return
        self.reloading = True
        self.loop.create_task(self.reload())

    async def reload(self) -> None:
        from hivrrp.config import load

        try:
            while True:
                self.reload_again = False
                # Parse on a worker thread: a 10,000-instance config takes ~1 s,
                # and adverts must keep flowing meanwhile.
                result = await self.loop.run_in_executor(
                    None, lambda: load(self.config_path, config_id=self.config_id))
                for diagnostic in result.warnings:
                    log.warning("%s", diagnostic)
                if not result.ok:
                    for diagnostic in result.errors:
                        log.error("%s", diagnostic)
                    log.error("reload rejected (%d errors): the running configuration stays",
                              len(result.errors))
                else:
                    await self.apply_reload(result.config)
                if not self.reload_again:
                    break
        except Exception:
            log.exception("reload failed: the running configuration stays")
        finally:
            self.reloading = False

    async def apply_reload(self, config: Config) -> None:
        """Swap in a new configuration without disturbing what did not change.

        Instances are matched by (interface, family, VRID, group or peers), as
        keepalived does, through a dict: O(1) each, where keepalived scans.
        """
        addresses = await self.netlink.addresses()
        old_engine, old_runtime = self.engine, self.runtime
        engine, runtime, owner, faults = self.build_engine(config, addresses)
        old_by_key = {instance_key(rt.config): i for i, rt in enumerate(old_runtime)}
        now = now_us(self.loop)
        kept, started, changes = set(), 0, []
        for j, rt in enumerate(runtime):
            i = old_by_key.get(instance_key(rt.config))
            if i is None:
                continue
            kept.add(i)
            engine.restore(j, old_engine.snapshot(i), now)
            if old_engine.state(i) == "MASTER":
                before = {(c.index, c.address): c for c in old_runtime[i].vips}
                after = {(c.index, c.address): c for c in rt.vips}
                changes += [c for key, c in after.items() if key not in before]
                changes += [c.removal() for key, c in before.items() if key not in after]
                self.pending_routes += [(False, r) for r in old_runtime[i].routes
                                        if r not in rt.routes]
                self.pending_routes += [(True, r) for r in rt.routes
                                        if r not in old_runtime[i].routes]
        for i, rt in enumerate(old_runtime):
            if i not in kept and old_engine.state(i) != "INIT":
                log.info("(%s) removed from the configuration", rt.config.name)
                if old_engine.state(i) == "MASTER":
                    changes += [c.removal() for c in rt.vips]
                    self.pending_routes += [(False, r) for r in rt.routes]
                old_engine.stop(i, now)  # a master says priority 0
        for io in self.senders:
            io.send(old_engine)
        old_engine.clear_tx()
        old_engine.take_events()
        self.install(config, engine, runtime, owner, faults)
        self.refresh_generation.clear()
        for j in range(engine.count):
            if engine.state(j) == "INIT":
                engine.start(j, now)
                started += 1
            elif engine.state(j) == "MASTER":
                self.start_refresh(j)  # carried over without an event
        self.update_memberships()
        self.pending.extend(changes)
        self.schedule_apply()
        self.after_engine_work()
        log.info("reloaded: %d instances kept, %d started, %d removed, %d VIP changes",
                 len(kept), started, len(old_runtime) - len(kept), len(changes))

    async def shutdown(self) -> None:
        if self.monitor is not None:
            # Our own VIP removals would only flood it (4,000 RTM_DELADDR).
            self.monitor.stop()
        # Priority 0 first: backups take over after Skew_Time instead of waiting.
        # The stop events queue every master's routes and VIPs for removal.
        self.engine.stop_all(now_us(self.loop))
        self.after_engine_work()
        if self.timer is not None:
            self.timer.cancel()
        if self.apply_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.apply_task), SHUTDOWN_WAIT)
            except asyncio.TimeoutError:
                log.error("VIPs and routes not all removed within %.0f s: exiting anyway",
                          SHUTDOWN_WAIT)
        for io, _batch in self.ios:
            poll = self.polls.pop(io.fd, None)
            if poll is not None:
                poll.cancel()
            else:
                self.loop.remove_reader(io.fd)
        for pool in self.pools.values():
            pool.close()
        self.announcer.close()
        self.netlink.close()


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
