"""`hivrrp run`: the wiring of the event loop.

driver (sockets, timer) -> engine events -> reactor (policy, by name) ->
executors: vips (netlink queue) and garp (announcements). linkwatch carries
out what links decides about kernel news, lifecycle runs reloads one at a
time, plan builds the engine off the loop. This module only connects them and handles signals.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import time
from collections import deque

from hivrrp._engine import FAULT_TRACKER
from hivrrp.config.model import Config
from hivrrp.daemon import reactor
from hivrrp.daemon.driver import Driver, now_us
from hivrrp.daemon.droplog import DropLog
from hivrrp.daemon.lifecycle import Lifecycle, collect_before_freeze, read_config, run_each
from hivrrp.daemon.memory import Trimmer
from hivrrp.daemon.plan import Plan, build_off_loop, carry_over
from hivrrp.kernel import firewall_policy
from hivrrp.kernel.announce_policy import AnnouncePolicy
from hivrrp.kernel.linkwatch import LinkWatch
from hivrrp.kernel.netlink import Link, Netlink
from hivrrp.kernel.vipqueue import VipQueue, remove_leftovers
from hivrrp.kernel.vmac import VmacManager
from hivrrp.notify.events import Notifications, security_off_loop

# Imported at start, with the rest: conf/install.sh upgrades the venv under a
# running daemon, and a module first imported at a SIGUSR1 would be the new
# one beside the old control.py.
from hivrrp.ops import dumpfiles, runpaths
from hivrrp.ops.control import ControlServer, dump_of, snapshot
from hivrrp.ops.sdnotify import Notifier as SystemdNotifier
from hivrrp.tracking.hub import TrackerHub
from hivrrp.tracking.processes import ReadAhead
from hivrrp.tracking.syncgroups import SyncGroups, carry_out
from hivrrp.util.tasks import spawn
from hivrrp.util.text import plural

log = logging.getLogger("hivrrp")

SHUTDOWN_WAIT = 10.0           # seconds for the masters' VIPs and routes to go at exit
RELOAD_EXIT_WAIT = 5.0         # seconds for an abandoned reload's worker step to end at exit
VMAC_SETTLE_WAIT = 5.0         # seconds for the monitor to tell the VMACs a reload made
# Seconds more, past SHUTDOWN_WAIT, for the masters' VIPs to go before the
# no_accept tables do; after that the tables stay for `hivrrp release`.
FIREWALL_EXIT_WAIT = 5.0
LOG_EACH_UP_TO = 32            # transitions in one batch logged one line each at INFO
LOG_NAMES_SHOWN = 8            # names in the summary line of a bigger batch
# Followers' events reported per loop iteration: a 10,000-follower move is
# 20 short slices, and the leaders' 10 ms adverts go out between them.
REPORT_SLICE = 512


class Daemon:
    trimmer: Trimmer | None = None      # made with the loop, in start()
    droplog: DropLog | None = None      # likewise

    def __init__(self, config: Config, config_path: str = "", config_id: str | None = None,
                 *, netlink: Netlink | None = None, monitor=None,
                 control_path: str | None = None,
                 metrics: tuple[str, int, str | None] | None = None,
                 send_path: str = "auto") -> None:
        self.config = config
        self.send_path = send_path        # kernel/sendpath.py: auto or raw
        self.config_path = config_path
        self.started_at: float | None = None     # wall clock, for `hivrrp status`
        self.namespace = runpaths.namespace_name()
        self.plan: Plan | None = None
        self.netlink = netlink or Netlink()
        self.vmac = VmacManager(self.netlink)
        self.monitor = monitor   # None: the real one (tests pass a stand-in)
        self.lifecycle = Lifecycle(lambda abort: read_config(config_path, config_id, abort),
                                   self.apply_config,
                                   lambda: self.plan.config)
        self.systemd = SystemdNotifier()
        self.control = ControlServer(self, control_path) if control_path else None
        self.metrics_address = metrics
        self.metrics = None
        self.dumping: set[str] = set()         # SIGUSR1/SIGUSR2 files being written
        # set-priority overrides: kept across rebuilds (same config), gone at a reload.
        self.runtime_priority: dict[str, int] = {}
        self.lifecycle.on_reloading = self.on_reloading
        # Followers' events the engine holds back, as the leaders' events
        # said them: [how many, whether their group's actions went already].
        self.follow_spans: deque[list] = deque()
        self.follow_report: asyncio.Handle | None = None

    async def main(self) -> int:
        from hivrrp import __version__
        log.info("hivrrp %s starting: configuration %s, pid %d%s, send path %s", __version__,
                 self.config_path or "(none)", os.getpid(),
                 f", network namespace {self.namespace}" if self.namespace else "",
                 self.send_path)
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        # From the start: a signal during start-up must not kill us with the
        # default action. A SIGHUP waits for lifecycle.start(); a SIGTERM skips it.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, stop, signum)
        loop.add_signal_handler(signal.SIGHUP, self.lifecycle.request_reload)
        # keepalived's data and stats files, where its tooling looks for them.
        loop.add_signal_handler(signal.SIGUSR1, self.write_dump, "data")
        loop.add_signal_handler(signal.SIGUSR2, self.write_dump, "stats")
        await self.start(stop)
        if not stop.done():
            self.systemd.ready(self.status())
            self.systemd.start_watchdog(loop)
        await stop
        await self.shutdown()
        return 0

    def status(self) -> str:
        """One line for systemd's STATUS= (systemctl status)."""
        if self.plan is None:
            return "0 instances"
        engine = self.plan.engine        # counted in C: no list of 10,000 names on the loop
        return (f"{plural(engine.count, 'instance')}: {engine.count_in_state('MASTER')} master, "
                f"{engine.count_in_state('BACKUP')} backup, "
                f"{engine.count_in_state('FAULT')} fault")

    def on_reloading(self, reloading: bool) -> None:
        if reloading:
            self.systemd.reloading()
        else:
            self.systemd.ready(self.status())

    async def start(self, stop: asyncio.Future | None = None) -> None:
        """Everything up to running instances, unless `stop` came meanwhile."""
        self.loop = loop = asyncio.get_running_loop()
        self.started_at = time.time()
        self.driver = Driver(loop, self.on_engine_events, self.send_path)
        self.droplog = DropLog(lambda: self.plan, lambda: self.links.table.by_index(),
                               loop.time)
        self.links = LinkWatch(loop, self.netlink, self.lifecycle, lambda: self.plan,
                               self.dispatch, self.driver.after_engine_work, self.monitor)
        self.garp = AnnouncePolicy(loop, lambda: self.plan, self.links.table.by_index,
                                   placed_plan=lambda: self.vips.in_place(),
                                   hold=lambda: self.vips.task is not None,
                                   on_the_way=lambda: self.vips.on_the_way())
        self.vips = VipQueue(self.netlink.apply, self.netlink.routing, self.garp.handle,
                             lambda: self.plan, progressive=True)
        self.trimmer = Trimmer(loop, lambda: self.vips.task is None
                               and not self.garp.announcer.queue)
        self.notifications = Notifications(loop, self.config,
                                           await security_off_loop(self.config))
        self.trackers = TrackerHub(loop, self.on_tracker_change, self.notifications.allows,
                                   self.notifications.run_as)
        self.links.on_links = self.on_links
        self.links.on_link_table = self.driver.sync_links
        self.sync = SyncGroups({})
        self.running = False    # instances started and not stopping: trackers may start held ones
        await self.netlink.start()
        # The VMACs before the monitor listens: the news of their making is
        # not news (their states on the way up would fault their instances).
        vmacs = await self.vmac.ensure(self.config, await self.netlink.addresses(), False)
        self.links.monitor.start()   # before the first dump: nothing falls in between
        self.links.table.links = await self.netlink.links()
        addresses = await self.netlink.addresses()
        built_on = dict(self.links.table.links)
        plan, _ = await build_off_loop(self.config, built_on, addresses, now_us(loop),
                                       vmacs=vmacs.names)
        ahead = await self.trackers.prepare(self.config)
        await remove_leftovers(self.netlink.apply, plan, addresses)
        # After the leftover VIPs are gone: a killed run's table replaced.
        await self.netlink.start_firewall(firewall_policy.Settings.of(self.config.global_defs),
                                          firewall_policy.families(plan.instances.values()))
        self.driver.open_sockets({i.config.family for i in plan.instances.values()},
                                 len(plan.names))
        self.install(plan, built_on, ahead)
        # Neither is worth not running VRRP for: say so and go on without it.
        if self.control is not None:
            try:
                await self.control.start()
            except OSError as exc:
                log.error("no control socket: %s", exc)
                self.control = None
        if self.metrics_address is not None:
            from hivrrp.ops.metrics import MetricsServer
            try:
                self.metrics = MetricsServer(self, *self.metrics_address)
                self.metrics.start()
            except OSError as exc:
                log.error("no metrics: cannot listen on %s:%d: %s",
                          *self.metrics_address[:2], exc)
                self.metrics = None
        # The configuration lives as long as we do: collections skip it. The
        # start-up's garbage (the netlink dumps' cycles) goes first.
        collect_before_freeze()
        if stop is None or not stop.done():
            self.running = True
            self.start_instances(plan, plan.names)
            self.driver.after_engine_work()
            self.lifecycle.start()
            self.droplog.start(loop)
            log.info("running %s", plural(len(plan.names), "instance"))
            # The heap's free pages back once loading and building are over
            # (the mass move to MASTER or BACKUP arms it again).
            self.trimmer.arm()

    def install(self, plan: Plan, built_on: dict[str, Link],
                ahead: ReadAhead | None = None) -> None:
        """Make `plan` the running one (its instances not started yet)."""
        self.plan = plan
        self.driver.use(plan.engine)
        self.driver.size_buffers(len(plan.names))     # a reload may add thousands
        now = now_us(self.loop)
        # Before start(): a faulty instance goes straight to FAULT.
        for name, faults in plan.faults_now(self.links.table.links).items():
            plan.engine.set_fault(plan.index[name], faults, True, now)
        self.driver.set_memberships(plan.groups)
        self.sync = SyncGroups(plan.sync_groups, self.sync.states)
        self.apply_sync(self.sync.adopt(plan.names, plan.view))
        self.trackers.configure(plan.config, self.links.table.links, ahead)
        self.apply_tracking(plan.names, start_released=False)   # the caller starts them
        self.links.installed(plan, built_on)
        self.driver.explain_paths(plan, self.links.table.live)

    def start_instances(self, plan: Plan, names: list[str]) -> int:
        """Start instances in INIT, but not those an unweighted script without
        a result yet holds back (keepalived keeps them in INIT): the tracker's
        first result starts them (apply_tracking)."""
        now = now_us(self.loop)
        started = 0
        for name in names:
            if not self.trackers.policy.outcome(name).held:
                i = plan.index[name]
                if plan.engine.state(i) == "INIT":
                    plan.engine.start(i, now)
                    started += 1
        return started

    def on_links(self, links: dict[str, Link]) -> None:
        """Links went up or down (their instances' FAULT bits already moved)."""
        self.trackers.links_changed(links)
        if self.plan.sync_groups:
            # An interface fault may have cleared under the group's bit: no event says so.
            self.apply_sync(self.sync.recheck(self.plan.view))

    def on_tracker_change(self, names: list[str]) -> None:
        self.apply_tracking(names)
        self.driver.after_engine_work()

    def apply_tracking(self, names: list[str], start_released: bool = True) -> None:
        """Each named instance's tracker outcome into the current engine; an
        instance no longer held back starts (unless `start_released` is False)."""
        plan = self.plan
        engine, now, policy = plan.engine, now_us(self.loop), self.trackers.policy
        names = [name for name in names if name in plan.index]
        for name in names:
            i = plan.index[name]
            outcome = policy.outcome(name)
            engine.set_priority_delta(i, outcome.delta, now)
            engine.set_fault(i, FAULT_TRACKER, outcome.fault, now)
        if start_released and self.running:
            self.start_instances(plan, names)
        self.apply_sync(self.sync.recheck(plan.view))

    def apply_sync(self, actions) -> None:
        plan = self.plan
        for change in carry_out(actions, plan.view, now_us(self.loop)):
            self.notifications.group(change.group, change.state)

    # ------------------------------------------------------------ events

    def on_engine_events(self, events: list[tuple]) -> None:
        """Events of take_events(causes=True, defer_followers=True): the last
        item of each is how many followers it moved, whose events the engine
        holds back. Their VIPs, routes and announcements go now, as their
        group's unit, in the event's place; what each follower's own event
        says (log, notify) comes after, in report_followers()."""
        plan = self.plan
        engine, view = plan.engine, plan.view
        log_transitions(plan.names, events)
        if len(events) > LOG_EACH_UP_TO and self.running:   # not the release at shutdown
            # A mass move: its VIP changes and announcements leave the heap
            # full of free pages (as start-up does), to hand back once done.
            self.trimmer.arm()
        for index, old, new, reason, *rest in events:
            name = plan.names[index]
            inst = plan.instances[name]
            if self.follow_spans and inst.config.follow is not None:
                self.report_followers()   # a follower's earlier events before its own
            self.dispatch(reactor.transition(inst, old, new, reason))
            # The leader is told of before its followers, as the engine and
            # the log have it: a partial move reports them right below.
            self.notifications.event(name, old, new, reason, engine.effective_priority(index))
            moved = rest[2] if len(rest) > 2 else 0
            if moved:
                self.followers_moved(name, old, new, moved)
            if plan.sync_groups:
                # Applied before the next event is judged: decisions read the
                # engine's states. Their own events come in the next round.
                self.apply_sync(self.sync.event(name, old, new, reason, view))
        if plan.sync_groups:
            self.apply_sync(self.sync.recheck(view))
        if self.follow_spans and self.follow_report is None:
            # After this callback, when the VIP queue's task has handed its
            # trip to the netlink thread, in slices.
            self.follow_report = self.loop.call_soon(self.report_followers, False)

    def followers_moved(self, leader: str, old: str, new: str, moved: int) -> None:
        """Leader `leader` moved `moved` followers with it: their group's
        unit, worked out at build, when it moved them all; else each one's
        actions from its own event, now (they stand here in the order)."""
        group = self.plan.followers.get(leader)
        actions = reactor.group_transition(group, old, new, moved) if group else None
        self.follow_spans.append([moved, actions is not None])
        if moved > LOG_EACH_UP_TO and self.running:
            self.trimmer.arm()
        if actions is None:
            self.report_followers()
        else:
            self.dispatch(actions)

    def report_followers(self, everything: bool = True) -> None:
        """The followers' events the leaders' announced (follow_spans), in
        order: notified, logged at debug level (their leader's line counted
        them), and for a partial move logged at info and acted on one by one.
        All of them now, or (scheduled) REPORT_SLICE, then the rest later."""
        if not everything:
            self.follow_report = None
        budget = None if everything else REPORT_SLICE
        spans = self.follow_spans
        while spans and (budget is None or budget > 0):
            span = spans[0]
            n = span[0] if budget is None else min(span[0], budget)
            self._report(n, span[1])
            span[0] -= n
            if span[0] == 0:
                spans.popleft()
            if budget is not None:
                budget -= n
        if spans and not everything:
            self.follow_report = self.loop.call_soon(self.report_followers, False)

    def _report(self, count: int, done: bool) -> None:
        plan = self.plan
        engine = plan.engine
        if done and self.notifications.followers_silent and not log.isEnabledFor(logging.DEBUG):
            engine.take_deferred(limit=count, discard=True)     # nobody would hear of them
            return
        events = engine.take_deferred(causes=True, limit=count)
        if done:
            if log.isEnabledFor(logging.DEBUG):
                for index, old, new, reason, _time, cause in events:
                    log.debug("(%s) %s -> %s (%s)%s", plan.names[index], old, new, reason,
                              cause_of(reason, cause))
        else:
            log_transitions(plan.names, events)
        for index, old, new, reason, *_time_cause in events:
            name = plan.names[index]
            if not done:
                self.dispatch(reactor.transition(plan.instances[name], old, new, reason))
            self.notifications.event(name, old, new, reason, engine.effective_priority(index))

    def dispatch(self, actions: list[reactor.Action]) -> None:
        for action in actions:
            if isinstance(action, reactor.StopAnnouncing):
                self.garp.stop(action.name, action.followers)
        self.vips.submit(actions)

    # --------------------------------------------------------- lifecycle

    async def apply_config(self, config: Config) -> str:
        """Swap in a new configuration without disturbing what did not change."""
        self.links.table.building = True
        try:
            summary, vmacs = await self._apply_config(config)
        finally:
            self.links.table.building = False
        # After the swap: the instances that had them are gone (and said priority 0).
        await self.vmac.retire(vmacs)
        return summary

    async def _apply_config(self, config: Config) -> tuple[str, list[str]]:
        addresses = await self.netlink.addresses()
        vmacs = await self.vmac.ensure(config, addresses, True)
        self.lifecycle.check()
        if vmacs.settling and not await self.links.settle(vmacs.settling, VMAC_SETTLE_WAIT):
            log.warning("the kernel's news of the VMACs made is late: building without it")
        old = self.plan
        # A rebuild keeps the verdicts of its load, as keepalived checks at load.
        security = (self.notifications.security if config is old.config
                    else await security_off_loop(config))
        self.lifecycle.check()
        built_on = dict(self.links.table.links)
        new, kept = await build_off_loop(config, built_on, addresses,
                                         now_us(self.loop), old, vmacs.names)
        self.lifecycle.check()
        ahead = await self.trackers.prepare(config)
        self.lifecycle.check()
        running = self.netlink.firewall
        note = running is not None and firewall_policy.settings_change(
            running.settings, firewall_policy.Settings.of(config.global_defs))
        if note:
            log.warning("reload: %s", note)
        # From here to the end nothing awaits: the old plan's indexes stay valid.
        self.report_followers()     # what the old engine holds back, in its names
        now = now_us(self.loop)
        old_states = carry_over(old, new, kept, now)
        self.droplog.take(old, everything=True)   # while its indexes still name its instances
        self.driver.flush(old.engine)
        actions = reactor.reloaded(old, new, kept, old_states)
        # Queued before anything the new engine says (install may already fault
        # an instance whose link went down): the last word on a VIP must be the
        # newest. And before the refresh chains below: a renamed master's
        # StopAnnouncing of its old name must not end the chain of another that
        # now has that name.
        self.dispatch(actions)
        self.notifications.removed(old, kept, old_states)
        self.notifications.configure(config, security)
        # A kept FAULT instance restarts from INIT into FAULT again: not news.
        self.notifications.carried_faults = {
            name for name, old_name in kept.items() if old_states.get(old_name) == "FAULT"}
        self.install(new, built_on, ahead)
        if config is old.config:
            # A rebuild (same configuration, new facts): set-priority still holds.
            for name, priority in self.runtime_priority.items():
                if name in new.index:
                    new.engine.set_base_priority(new.index[name], priority, now)
        elif self.runtime_priority:
            log.info("reload: the configured priority is back for %s set at runtime",
                     plural(len(self.runtime_priority), "instance"))
            self.runtime_priority.clear()
        started = self.start_instances(new, new.names)
        if new.refreshing:
            for name, state in new.states().items():
                if state == "MASTER" and name in kept:
                    self.garp.keep_refreshing(name)
        self.driver.after_engine_work()
        self.vips.settled()      # what the reload and its new engine's first events queued
        self.notifications.carried_faults = set()
        vip_changes = sum(len(a.changes) for a in actions if isinstance(a, reactor.SetVips))
        summary = (f"reloaded: {plural(len(kept), 'instance')} kept, {started} started, "
                   f"{len(old.names) - len(kept)} removed, {plural(vip_changes, 'VIP change')}")
        log.info("%s", summary)
        self.trimmer.arm()
        # The old plan is freed on return, here: a worker thread would hold the
        # GIL throughout the deallocation just the same (no bytecode runs in it).
        return summary, list(vmacs.names.values())

    def write_dump(self, kind: str) -> None:
        """SIGUSR1 (data) / SIGUSR2 (stats): a snapshot is taken now, on the loop;
        the rows and text are built and written on a worker thread."""
        if self.plan is None:
            log.info("%s file: not running yet", kind)
            return
        if kind in self.dumping:
            return         # one is being written: it is as fresh as this one would be
        self.dumping.add(kind)
        g = self.plan.config.global_defs
        path = (g.stats_file or dumpfiles.stats_path() if kind == "stats"
                else g.data_file or dumpfiles.data_path())
        snap = snapshot(self)

        def work() -> None:
            try:
                # 0600 as keepalived's: other users have no business reading it.
                dumpfiles.write_file(path, dumpfiles.text_of(kind, dump_of(snap)), mode=0o600)
                log.info("%s file written: %s", kind, path)
            except OSError as exc:
                log.error("cannot write the %s file %s: %s", kind, path, exc)
            finally:
                self.loop.call_soon_threadsafe(self.dumping.discard, kind)

        spawn(asyncio.to_thread(work), f"write the {kind} file")

    def request_stop(self, stop: asyncio.Future, signum: int) -> None:
        if not stop.done():
            log.info("%s: releasing masters and stopping", signal.Signals(signum).name)
            # From now on: no reload starts (SIGHUP, control socket), none says READY,
            # and one in flight gives up (its parse child killed) without being waited for.
            self.lifecycle.halt()
            self.systemd.stopping()
            stop.set_result(signum)

    async def shutdown(self) -> None:
        if self.trimmer is not None:
            self.trimmer.close()
        if self.droplog is not None:
            try:
                self.droplog.close(self.plan)
            except Exception:
                log.exception("the last drop log lines failed")
        # The masters are released first, whatever a reload in flight is doing
        # (halted: it can no longer swap plans); it is waited for only before
        # netlink closes under it.
        await run_each([self.lifecycle.halt, self._close_control, self._close_metrics,
                        self._release, self._stop_firewall, self.driver.close,
                        self.garp.close, self.trackers.close,
                        self.notifications.close, self._wait_for_reload, self.vmac.close,
                        self.netlink.close, self.systemd.close])

    async def _stop_firewall(self) -> None:
        # Only after the VIPs' release trip: when the drain gave up with a
        # slow trip in flight, the release trip still waits its turn, and a
        # table removed before it would leave its VIPs up unfiltered.
        firewall = self.netlink.firewall
        if firewall is not None and firewall.tables and self.vips.task is not None:
            try:
                await asyncio.wait_for(self.vips.idle(), FIREWALL_EXIT_WAIT)
            except TimeoutError:
                log.error("nftables: the tables stay: the VIPs are not all removed yet "
                          "(`hivrrp release` removes both, in order)")
                return
        await self.netlink.stop_firewall()

    async def _wait_for_reload(self) -> None:
        await self.lifecycle.stop(RELOAD_EXIT_WAIT)

    async def _close_control(self) -> None:
        if self.control is not None:
            await self.control.close()

    async def _close_metrics(self) -> None:
        if self.metrics is not None:
            await asyncio.to_thread(self.metrics.close)

    async def _release(self) -> None:
        # Our own VIP removals would only flood the monitor (4,000 RTM_DELADDR).
        self.links.monitor.stop()
        # Priority 0 first: backups take over after Skew_Time instead of waiting.
        # The stop events queue every master's routes and VIPs for removal.
        self.driver.closed = True
        self.running = False
        self.plan.engine.stop_all(now_us(self.loop))
        self.driver.after_engine_work()
        for group in self.plan.sync_groups:
            self.notifications.group(group, "STOP")
        await self.vips.drain(SHUTDOWN_WAIT)
        # The followers' STOP events still waiting for their slices go now:
        # the notifier closes next, and nothing else waits for them.
        if self.follow_report is not None:
            self.follow_report.cancel()
            self.follow_report = None
        self.report_followers()


def cause_of(reason: str, cause: tuple | None) -> str:
    """What made a transition, for its log line: the sender and priority of
    the advert that made a master step down, the master that went silent or
    sent priority 0 (take_events(causes=True) gives them as of the event)."""
    if cause is None:
        return ""
    master, priority, ours = cause
    if reason == "higher_priority" and master is not None:
        return f": advert from {ipaddress.ip_address(master)} with priority {priority}, ours {ours}"
    if reason == "master_down":
        if master is None:
            return f": no master heard, ours {ours}"
        return (f": master {ipaddress.ip_address(master)} (priority {priority}) went silent, "
                f"ours {ours}")
    if reason == "released" and master is not None:
        return f": master {ipaddress.ip_address(master)} sent priority 0, ours {ours}"
    if reason == "preempt":
        return f": a lower-priority master was heard, ours {ours}"
    return ""


def log_transitions(names: list[str], events: list[tuple]) -> None:
    """One INFO line per transition, as keepalived logs them, unless a batch
    moves more than LOG_EACH_UP_TO instances: then one INFO line per kind of
    transition with its count and first names, and each at DEBUG. At 4,000
    instances the lines cost 70 ms of a 0.36 s failover (formatting, mostly),
    and a few mass failovers would run into journald's rate limit (10,000
    lines per 30 s by default) and lose lines anyway. Events may carry their
    cause (a sixth item): the line then says it; and how many followers they
    moved (a seventh, take_events(defer_followers=True)): the line counts
    them, and theirs are at debug level (Daemon.report_followers)."""
    moved = [(names[event[0]], event[1], event[2], event[3],
              event[5] if len(event) > 5 else None, event[6] if len(event) > 6 else 0)
             for event in events if event[1] != event[2]]
    if len(moved) <= LOG_EACH_UP_TO:
        for name, old, new, reason, cause, followers in moved:
            log.info("(%s) %s -> %s (%s)%s%s", name, old, new, reason, cause_of(reason, cause),
                     with_followers(followers))
        return
    kinds: dict[tuple[str, str, str], list[str]] = {}
    taken: dict[tuple[str, str, str], int] = {}
    for name, old, new, reason, _cause, followers in moved:
        kinds.setdefault((old, new, reason), []).append(name)
        taken[old, new, reason] = taken.get((old, new, reason), 0) + followers
    for (old, new, reason), group in kinds.items():
        shown = ", ".join(group[:LOG_NAMES_SHOWN])
        more = f" and {len(group) - LOG_NAMES_SHOWN} more" if len(group) > LOG_NAMES_SHOWN else ""
        log.info("%s %s -> %s (%s)%s: %s%s (each at debug level; `hivrrp status` "
                 "lists them)", plural(len(group), "instance"), old, new, reason,
                 with_followers(taken[old, new, reason]), shown, more)
    if log.isEnabledFor(logging.DEBUG):
        for name, old, new, reason, cause, followers in moved:
            log.debug("(%s) %s -> %s (%s)%s%s", name, old, new, reason, cause_of(reason, cause),
                      with_followers(followers))


def with_followers(count: int) -> str:
    return f", {plural(count, 'follower')} with it" if count else ""


def run(config: Config, config_path: str, config_id: str | None,
        control_path: str | None = None,
        metrics: tuple[str, int, str | None] | None = None, send_path: str = "auto") -> int:
    """The caller holds the pid file's lock (hivrrp.ops.pidfile) throughout."""
    import uvloop

    return uvloop.run(Daemon(config, config_path, config_id, control_path=control_path,
                             metrics=metrics, send_path=send_path).main())
