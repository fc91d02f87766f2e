"""Notifications for the running configuration: engine events -> notify.Notifier.

Holds what the events need from the config (each instance's and group's
scripts, notify_priority_changes) and the script-security verdicts, which
the trackers' scripts obey too. Replaced on reload with the new config.
"""

from __future__ import annotations

import asyncio
import logging

from hivrrp.config.model import Config, Script
from hivrrp.daemon import reactor
from hivrrp.notify.notifier import Notifier
from hivrrp.notify.scriptsec import SecurityReport, Verdict, check_scripts

log = logging.getLogger("hivrrp")

CLOSE_WAIT = 10.0     # seconds for notify_stop scripts at shutdown


def all_scripts(config: Config) -> list[Script | None]:
    g = config.global_defs
    scripts: list[Script | None] = [g.notify_fifo_script, g.vrrp_notify_fifo_script]
    for inst in config.instances:
        scripts += [*inst.notify.values(), inst.notify_master_rx_lower_pri]
    for group in config.sync_groups:
        scripts += group.notify.values()
    scripts += [s.script for s in config.scripts.values()]
    return scripts


def security_of(config: Config) -> SecurityReport:
    """Every script of `config` judged, its problems logged. It stats paths
    and looks users up: call it off the event loop (security_off_loop)."""
    g = config.global_defs
    report = check_scripts(all_scripts(config), g.enable_script_security, g.script_user,
                           g.script_group)
    for message in report.messages:
        log.warning("%s", message)
    return report


async def security_off_loop(config: Config) -> SecurityReport:
    """security_of on a worker thread: on the loop, 1,000 instances with six
    notify lines each held it 1.0-1.3 s (user lookups through NSS), long
    enough for a peer to take over. The loop then only looks verdicts up."""
    return await asyncio.to_thread(security_of, config)


def _fifo_settings(config: Config) -> tuple:
    g = config.global_defs
    return (g.notify_fifo, g.vrrp_notify_fifo, g.notify_fifo_script, g.vrrp_notify_fifo_script)


class Notifications:
    def __init__(self, loop: asyncio.AbstractEventLoop, config: Config,
                 security: SecurityReport) -> None:
        g = config.global_defs
        fifos = [p for p in (g.notify_fifo, g.vrrp_notify_fifo) if p]
        fifo_scripts = {p: s for p, s in ((g.notify_fifo, g.notify_fifo_script),
                                          (g.vrrp_notify_fifo, g.vrrp_notify_fifo_script))
                        if p and s}
        self.fifos = _fifo_settings(config)
        self.carried_faults: set[str] = set()   # see Daemon.apply_config
        self.security = security
        self.notifier = Notifier(loop, fifo_paths=fifos, fifo_scripts=fifo_scripts,
                                 concurrency=g.notify_script_concurrency,
                                 timeout=g.notify_script_timeout, secure=self.allows,
                                 script_user=g.script_user, script_group=g.script_group)
        self._configure(config, security)

    def configure(self, config: Config, security: SecurityReport) -> None:
        """A reload's configuration. `security`: security_of(config), made off the loop."""
        g = config.global_defs
        self.notifier.set_script_identity(g.script_user, g.script_group)
        self.notifier.set_limits(g.notify_script_concurrency, g.notify_script_timeout)
        if _fifo_settings(config) != self.fifos:
            log.warning("notify_fifo / vrrp_notify_fifo changes take effect at the next "
                        "restart; the FIFOs opened at start stay in use")
        self._configure(config, security)

    def _configure(self, config: Config, security: SecurityReport) -> None:
        self.security = security
        self.instances = {inst.name: inst for inst in config.instances}
        self.groups = {group.name: group for group in config.sync_groups}
        # Nobody hears of a follower's state change (no FIFO open, no follower
        # with a notify script): the daemon need not hand them over one by
        # one. The FIFOs are the notifier's, opened at start, whatever a
        # reloaded file says.
        self.followers_silent = not self.notifier.writes_fifo and not any(
            inst.notify for inst in config.instances if inst.follow is not None)
        self.priority_changes = config.global_defs.notify_priority_changes

    def allows(self, script: Script) -> Verdict:
        return self.security.allows(script)

    def run_as(self, script: Script) -> tuple[str | None, str | None]:
        return self.security.run_as(script)

    def event(self, name: str, old: str, new: str, reason: str, priority: int) -> None:
        inst = self.instances.get(name)
        if inst is None:
            return
        if name in self.carried_faults and old != new:
            self.carried_faults.discard(name)
            if old == "INIT" and new == "FAULT":
                return
        changes = (inst.notify_priority_changes if inst.notify_priority_changes is not None
                   else self.priority_changes)
        for notice in reactor.notices(name, old, new, reason, priority, changes):
            if notice.kind == "instance":
                self.notifier.instance(name, notice.state, priority, inst.notify)
            elif notice.kind == "rx_lower":
                self.notifier.rx_lower_priority(name, priority, inst.notify_master_rx_lower_pri)
            else:
                self.notifier.priority_changed(name, notice.state, priority)

    def group(self, name: str, state: str) -> None:
        group = self.groups.get(name)
        if group is not None:
            self.notifier.group(name, state, group.notify)

    def removed(self, old_plan, kept: dict[str, str], old_states: dict[str, str]) -> None:
        """Instances a reload removed: DELETED (FAULT without notify_deleted),
        as keepalived, for those that were running."""
        carried = set(kept.values())
        for name in old_plan.names:
            if name not in carried and old_states.get(name, "INIT") != "INIT":
                inst = self.instances.get(name)
                if inst is not None:
                    i = old_plan.index[name]
                    self.notifier.instance(name, "DELETED",
                                           old_plan.engine.effective_priority(i), inst.notify)

    async def close(self) -> None:
        await self.notifier.close(CLOSE_WAIT)
