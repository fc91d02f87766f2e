"""The daemon's VMACs: made, adopted, put right and deleted on the netlink
thread; vmac_policy.py decides, vmacnl.py speaks netlink.

Everything here but the async front runs on the netlink thread (one at a
time, in order), which owns the state: the VMACs this daemon made or adopted,
the parents' own sysctl values and what it did to rp_filter. The loop awaits
plain results.

Making a thousand VMACs is a few batches whatever their number (vmacnl.py):
the macvlans; then, by the index a dump tells, their IPv4 sysctls and IPv6
address mode (netlink) and the parents' ARP sysctls; IPv6 on or off
(/proc/sys/net/ipv6/conf/NAME/disable_ipv6: no netlink request sets it); then
up, and the IPv6 VMACs' source address. A sysctl or link the kernel refuses is
logged with its reason, once per kind of failure, and the instance faults for
want of its VMAC rather than running half set up.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from hivrrp.config.model import Config
from hivrrp.kernel import vmacnl
from hivrrp.kernel.netlink import Address, Netlink
from hivrrp.kernel.vmac_policy import (
    VMAC_SYSCTLS,
    Adopt,
    Create,
    Delete,
    Fix,
    ParentState,
    RpFilter,
    Vmac,
    clear_rp_filter,
    ipv6_sources,
    parent_changes,
    parent_released,
    restore_rp_filter,
    retired,
    wanted,
)
from hivrrp.kernel.vmac_state import StateFile, encode
from hivrrp.kernel.vmacnl import LinkInfo
from hivrrp.util.text import plural

log = logging.getLogger("hivrrp")

SYSCTL = "/proc/sys/net/{family}/conf/{interface}/{key}"
IGMP_LLM_REPORTS = "/proc/sys/net/ipv4/igmp_link_local_mcast_reports"
RUNNING_WAIT = 3.0            # seconds for new VMACs to show their carrier
RUNNING_POLL = 0.02
GROUP_DELETE_MIN = 4          # VMACs deleted at once from which a link group is worth it


@dataclass(frozen=True)
class Vmacs:
    """What the plan needs: each `use_vmac` instance's VMAC name (missing links
    fault it), and the state the monitor will report the ones just made or
    changed in (index, up), for the daemon to wait for before it builds."""
    names: dict[str, str] = field(default_factory=dict)
    settling: dict[str, tuple[int, bool]] = field(default_factory=dict)
    xmit_base: frozenset[str] = frozenset()


NONE = Vmacs()


def say_refused(what: str, refused: list[tuple[str, str]]) -> None:
    """One ERROR line per reason, naming the first and counting the others: a
    kernel that refuses 1,000 VMACs (EPERM, EBUSY) for one reason says it once
    per batch, not 1,000 times per reload."""
    by_why: dict[str, list[str]] = {}
    for name, why in refused:
        by_why.setdefault(why, []).append(name)
    for why, names in by_why.items():
        more = f" and {plural(len(names) - 1, 'other')}" if len(names) > 1 else ""
        log.error("%s %s%s: %s", what, names[0], more, why)


def needs_addrgen(link: LinkInfo) -> bool:
    """Its IPv6 address generation mode to set (a link without IPv6 has none)."""
    return link.addrgen is not None and link.addrgen != vmacnl.IN6_ADDR_GEN_MODE_NONE


def needs_sysctls(v: Vmac, link: LinkInfo) -> bool:
    return v.family == 4 and any(link.devconf(key) != value
                                 for key, value in VMAC_SYSCTLS.items())


def configured(v: Vmac, link: LinkInfo) -> bool:
    """Has the VMAC its sysctls and address generation mode already?"""
    return not needs_addrgen(link) and not needs_sysctls(v, link)


class VmacManager:
    def __init__(self, netlink: Netlink, state_path: str | None = None) -> None:
        self.netlink = netlink
        self.batcher: vmacnl.LinkBatcher | None = None
        self.ours: dict[str, int] = {}            # VMAC name -> ifindex
        self.family: dict[str, int] = {}          # VMAC name -> family
        self.parents: dict[int, ParentState] = {}
        self.rp = RpFilter()
        self.igmp_reports: int | None = None      # igmp_link_local_mcast_reports before us
        self.disable_local_igmp = False           # keepalived's keyword: even without VMACs
        self.failed_sysctls: set[str] = set()     # kinds already logged
        # The sysctls' own values on disk too (vmac_state.py); read once, at
        # the first call on the netlink thread (its path takes /proc look-ups).
        self.state = StateFile(state_path)
        self.state_loaded = False

    # ------------------------------------------------------------ the loop's side

    async def ensure(self, config: Config, addresses: list[Address], reload: bool) -> Vmacs:
        """Make the links what `config` asks (nothing at all without use_vmac)."""
        if (self.state_loaded and not self.ours and not self.parents
                and not any(i.use_vmac for i in config.instances)
                and not config.global_defs.disable_local_igmp and self.igmp_reports is None):
            return NONE
        try:
            return await self.netlink.run(self._ensure, config, addresses, reload)
        except OSError as exc:
            # The dump or a batch as a whole failed (each refused request is
            # logged by itself): a start stops here, a reload is refused.
            log.error("cannot set up the VMACs: %s", exc)
            raise

    async def retire(self, keep: Iterable[str]) -> None:
        """Delete our VMACs that are not in `keep` (after a reload's swap)."""
        keep = set(keep)
        if any(name not in keep for name in self.ours):
            await self.netlink.run(self._delete, retired(self.ours, keep))

    async def close(self) -> None:
        """At exit: every VMAC of ours deleted, the sysctls we changed put back."""
        if self.ours or self.rp.active or self.igmp_reports is not None or self.parents:
            self.disable_local_igmp = False      # put back at exit whatever asked for it
            await self.netlink.run(self._stop)
        if self.batcher is not None:
            await self.netlink.run(self.batcher.close)
            self.batcher = None

    async def release(self, config: Config) -> list[str]:
        """`hivrrp release` after a daemon died: the VMACs of `config` it left
        (a macvlan of an instance's interface with the instance's MAC) deleted,
        and the sysctls it changed put back (from the file it kept them in).
        The deletions that failed ("NAME: reason")."""
        return await self.netlink.run(self._release, config)

    # ------------------------------------------------------------ the netlink thread

    def _load_state(self) -> None:
        """A daemon that died with sysctls changed left their own values: those
        are put back, not the changed ones this one would read."""
        if self.state_loaded:
            return
        self.state_loaded = True
        state = self.state.load()
        if state is None:
            return
        self.rp, self.igmp_reports, self.parents = state
        # Put back by hand (or by `hivrrp release`) meanwhile: what we would
        # change is the present value again, read as usual.
        if self.rp.active and self._read("ipv4", "all", "rp_filter") != 0:
            self.rp = RpFilter()
        if self.igmp_reports is not None and self._read_path(IGMP_LLM_REPORTS) != 0:
            self.igmp_reports = None
        log.info("NOTICE: the sysctls' own values from %s (left by a daemon that did not "
                 "put them back)", self.state.path)

    def _save_state(self) -> None:
        self.state.save(encode(self.rp, self.igmp_reports, self.parents))

    def _forget_parents(self, keep: Iterable[str]) -> None:
        """Parents whose recorded VMACs are none of `keep` (a dead daemon's):
        their own values put back."""
        keep = set(keep)
        gone = {name for p in self.parents.values() for name in p.vmacs if name not in keep}
        if not gone:
            return
        links = {link.index: link for link in self._links().values()}
        requests, names = [], []
        for name in gone:
            for index, values in parent_released(self.parents, name):
                if index in links:
                    requests.append(vmacnl.devconf(index, values))
                    names.append(links[index].name)
        for position, why in self._send(requests):
            log.error("cannot put back the sysctls of %s: %s", names[position], why)

    def _stop(self) -> list[str]:
        failures = self._delete(retired(self.ours, set(), "stopping"))
        self._forget_parents(())
        self._restore_unused()
        self._save_state()
        return failures

    def _release(self, config: Config) -> list[str]:
        """The deletions that failed ("NAME: reason")."""
        self._load_state()
        if not any(i.use_vmac for i in config.instances):
            return self._stop()
        want = wanted(config, self._links(), (), {}, reload=False)
        # Only what has the instance's MAC on its interface: a link that merely
        # bears a configured name may be someone else's.
        leftovers = [Delete(a.vmac.name, a.index, "left by a daemon that died")
                     for a in want.actions
                     if isinstance(a, Adopt) or (isinstance(a, Fix) and a.why == "mode")]
        failures = self._delete(leftovers)
        return failures + self._stop()

    def _links(self) -> dict[str, LinkInfo]:
        if self.batcher is None:
            self.batcher = vmacnl.LinkBatcher()
        return self.batcher.links()

    def _ensure(self, config: Config, addresses: list[Address], reload: bool) -> Vmacs:
        started = time.monotonic()
        self._load_state()
        links = self._links()
        sources = ipv6_sources(config, links, [(a.index, a.family, a.address)
                                               for a in addresses])
        want = wanted(config, links, self.ours, sources, reload)
        for line in want.problems:
            log.error("%s", line)
        for line in want.notes:
            log.info("%s", line)
        deletions = [a for a in want.actions if isinstance(a, Delete)]
        if deletions:
            self._delete(deletions)
            links = self._links()
        self.disable_local_igmp = config.global_defs.disable_local_igmp
        if any(v.family == 4 for v in want.vmacs.values()):
            self._clear_rp_filter(links.values())
        if self.disable_local_igmp or any(v.family == 4 for v in want.vmacs.values()):
            self._quiet_igmp()
        made = self._make(want.actions, links)
        self._forget_parents(self.ours)       # a dead daemon's VMACs' parents
        self._restore_unused()
        self._save_state()
        if made:
            log.info("VMACs: %s made, %s put right, %s adopted in %.2f s",
                     made["made"], made["fixed"], made["adopted"], time.monotonic() - started)
        xmit = frozenset(inst.name for inst in config.instances
                         if inst.use_vmac and inst.vmac_xmit_base)
        return Vmacs({name: v.name for name, v in want.vmacs.items()}, made.get("settling", {}),
                     xmit)

    def _make(self, actions: list, links: dict[str, LinkInfo]) -> dict:
        todo = [a for a in actions if isinstance(a, (Create, Fix, Adopt))]
        if not todo:
            return {}
        # 1. the macvlans
        requests, whose = [], []
        for action in todo:
            v = action.vmac
            if isinstance(action, Create):
                requests.append(vmacnl.create_macvlan(v.name, v.parent_index, v.mac, v.master,
                                                      v.group))
                whose.append(action)
            elif isinstance(action, Fix):
                requests.append(vmacnl.update_macvlan(action.index, v.mac))
                whose.append(action)
        refused: dict[str, list[tuple[str, str]]] = {"create": [], "update": []}
        for position, why in self._send(requests):
            action = whose[position]
            refused["create" if isinstance(action, Create) else "update"].append(
                (f"{action.vmac.name} ({action.vmac.instance})", why))
        for verb, items in refused.items():
            say_refused(f"Unable to {verb} VMAC interface", items)
        if requests:
            links = self._links()       # the new ones' indexes
        ready: list[tuple[Vmac, LinkInfo, str]] = []
        for action in todo:
            v = action.vmac
            link = links.get(v.name)
            if (link is None or link.kind != "macvlan" or link.parent != v.parent_index
                    or link.mac != v.mac or link.mode != vmacnl.MACVLAN_MODE_PRIVATE):
                continue          # not made, or not ours after all: left alone
            ready.append((v, link, type(action).__name__))
            self.ours[v.name] = link.index
            self.family[v.name] = v.family
        # 2. sysctls: the VMACs' (netlink), their parents' (netlink), IPv6 on or off (/proc).
        # A VMAC found as it should be is left alone: every request that changes
        # a link is a netlink event for the monitor, a thousand at each reload.
        requests, what = [], []
        for v, link, _kind in ready:
            if needs_addrgen(link):
                requests.append(vmacnl.addrgen_none(link.index))
                what.append(f"the IPv6 address generation mode of {v.name}")
            if needs_sysctls(v, link):
                requests.append(vmacnl.devconf(link.index, VMAC_SYSCTLS))
                what.append(f"the sysctls of {v.name}")
            if v.family == 4:
                parent = links.get(v.parent)
                if parent is not None:
                    changes = parent_changes(self.parents, parent, v.name)
                    if changes:
                        self._save_state()      # their own values first
                        requests.append(vmacnl.devconf(parent.index, changes))
                        what.append(f"arp_ignore and arp_filter of {parent.name}")
        say_refused("cannot set", [(what[position], why)
                                   for position, why in self._send(requests)])
        for v, link, _kind in ready:
            wanted_value = 0 if v.ipv6 else 1
            if link.disable_ipv6 is None and not v.ipv6:
                continue          # no IPv6 on the link: nothing to turn off
            if link.disable_ipv6 != wanted_value:
                self._sysctl("ipv6", v.name, "disable_ipv6", wanted_value)
        # 3. up, then the IPv6 source address (one already there: EEXIST, no event)
        requests, what = [], []
        for v, link, _kind in ready:
            if not link.up:
                requests.append(vmacnl.set_up(link.index))
                what.append(f"{v.name} up")
            if v.link_local is not None:
                requests.append(vmacnl.link_local(link.index, v.link_local))
                what.append(f"{v.link_local} on {v.name}")
        say_refused("(VMAC) cannot set", [(what[position], why)
                                          for position, why in self._send(requests)
                                          if not why.startswith("File exists")])
        settling = self._wait_running({v.name: link.index for v, link, _ in ready}, links)
        counts = {"made": 0, "fixed": 0, "adopted": 0}
        for _v, _link, kind in ready:
            counts[{"Create": "made", "Fix": "fixed", "Adopt": "adopted"}[kind]] += 1
        return {**counts, "settling": settling}

    def _wait_running(self, made: dict[str, int],
                      before: dict[str, LinkInfo]) -> dict[str, tuple[int, bool]]:
        """The state each VMAC ends in: up with a carrier when its parent has
        one. Waited for (a little), so that the monitor has said so before
        the daemon builds on it: a VMAC judged down while it came up would
        fault its instance for a moment."""
        by_index = {link.index: link for link in before.values()}
        deadline = time.monotonic() + RUNNING_WAIT
        while True:
            links = self._links()
            expect, late = {}, []
            for name, index in made.items():
                link = links.get(name)
                if link is None or link.index != index:
                    continue          # gone meanwhile: the monitor says so
                expect[name] = (index, link.running)
                parent = by_index.get(link.parent)
                if parent is not None and parent.running and not link.running:
                    late.append(name)
            if not late:
                return expect
            if time.monotonic() > deadline:
                log.warning("%s not up after %.0f s: %s", plural(len(late), "VMAC"),
                            RUNNING_WAIT, ", ".join(late[:8]))
                return expect
            time.sleep(RUNNING_POLL)

    def _delete(self, deletions: list[Delete]) -> list[str]:
        """The VMACs deleted; the failures returned ("NAME: reason"), said once
        per reason."""
        if not deletions and not self.rp.active and self.igmp_reports is None:
            return []
        links = {link.index: link for link in self._links().values()}
        doomed, requests, parents = [], [], []
        for d in deletions:
            link = links.get(d.index)
            # Only a macvlan still at that index: an index is not reused soon,
            # but nothing else is ever deleted here.
            if link is not None and link.kind == "macvlan":
                doomed.append(d)
            self.ours.pop(d.name, None)
            self.family.pop(d.name, None)
            for index, values in parent_released(self.parents, d.name):
                if index in links:
                    requests.append(vmacnl.devconf(index, values))
                    parents.append(links[index].name)
        failures = self._delete_links(doomed, links)
        say_refused("cannot delete VMAC", failures)
        say_refused("cannot put back the sysctls of",
                    [(parents[position], why) for position, why in self._send(requests)])
        failed = {name for name, _why in failures}
        deleted = [d.name for d in doomed if d.name not in failed]
        if deleted:
            log.info("VMACs deleted (%s): %s", deletions[0].why, ", ".join(deleted[:8])
                     + (f" and {len(deleted) - 8} more" if len(deleted) > 8 else ""))
        self._restore_unused()
        self._save_state()
        return [f"{name}: {why}" for name, why in failures]

    def _delete_links(self, doomed: list[Delete],
                      links: dict[int, LinkInfo]) -> list[tuple[str, str]]:
        """The links deleted: many moved to a link group of their own, then
        the group deleted in one request (a stop with 1,000 VMACs within
        TimeoutStopSec); a few, or when the group holds a link not ours (put
        there meanwhile) or is refused, one request each. The failures."""
        if len(doomed) < GROUP_DELETE_MIN:
            return self._delete_each(doomed)
        used = {link.group for link in links.values()}
        group = next(g for g in (random.randrange(1 << 20, 1 << 31) for _ in range(100))
                     if g not in used)
        refused = {position for position, _why in
                   self._send([vmacnl.set_group(d.index, group) for d in doomed])}
        moved = [d for position, d in enumerate(doomed) if position not in refused]
        in_group = {link.index for link in self._links().values() if link.group == group}
        if moved and in_group == {d.index for d in moved}:
            if not self._send([vmacnl.delete_group(group)]):
                return self._delete_each([d for position, d in enumerate(doomed)
                                          if position in refused])
        return self._delete_each(doomed)

    def _delete_each(self, doomed: list[Delete]) -> list[tuple[str, str]]:
        return [(doomed[position].name, why)
                for position, why in self._send([vmacnl.delete(d.index) for d in doomed])
                if "No such device" not in why]     # gone already: as good as deleted

    def _restore_unused(self) -> None:
        """rp_filter and IGMP put back when no IPv4 VMAC of ours is left."""
        if not any(f == 4 for f in self.family.values()):
            if self.rp.active:
                self._restore_rp_filter()
            if self.igmp_reports is not None and not self.disable_local_igmp:
                self._restore_igmp()

    def _send(self, requests: list) -> list[tuple[int, str]]:
        if not requests:
            return []
        return self.batcher.send(requests)

    # ------------------------------------------------------------ rp_filter

    def _clear_rp_filter(self, links: Iterable[LinkInfo]) -> None:
        all_value = self._read("ipv4", "all", "rp_filter")
        default_value = self._read("ipv4", "default", "rp_filter")
        if all_value is None or default_value is None:
            return
        new_default, raise_ = clear_rp_filter(self.rp, all_value, default_value, links)
        if not self.rp.active:
            return
        self._save_state()                      # their own values first
        if new_default is not None:
            log.info("NOTICE: setting sysctl net.ipv4.conf.default.rp_filter from %d to %d",
                     default_value, new_default)
            self._sysctl("ipv4", "default", "rp_filter", new_default)
        for position, why in self._send([vmacnl.devconf(index, {"rp_filter": value})
                                         for index, value in raise_]):
            log.error("cannot raise rp_filter of interface %d: %s", raise_[position][0], why)
        log.info("NOTICE: setting sysctl net.ipv4.conf.all.rp_filter from %d to 0", all_value)
        self._sysctl("ipv4", "all", "rp_filter", 0)

    def _restore_rp_filter(self) -> None:
        links = self._links()
        now = {link.index: link.devconf("rp_filter") for link in links.values()}
        all_now = self._read("ipv4", "all", "rp_filter")
        default_now = self._read("ipv4", "default", "rp_filter")
        all_value, default_value, interfaces = restore_rp_filter(
            self.rp, all_now if all_now is not None else -1,
            default_now if default_now is not None else -1, now)
        self._send([vmacnl.devconf(index, {"rp_filter": value}) for index, value in interfaces])
        if all_value is not None:
            log.info("NOTICE: resetting sysctl net.ipv4.conf.all.rp_filter to %d", all_value)
            self._sysctl("ipv4", "all", "rp_filter", all_value)
        if default_value is not None:
            log.info("NOTICE: resetting sysctl net.ipv4.conf.default.rp_filter to %d",
                     default_value)
            self._sysctl("ipv4", "default", "rp_filter", default_value)

    # ------------------------------------------------------------ IGMP

    def _quiet_igmp(self) -> None:
        """A backup's VMAC joins the VRRP group and would report it by IGMP from
        the virtual MAC: switches then learn that MAC at the backup, and the
        master's traffic goes there until its next advert. keepalived moves
        those reports to the parent with nftables, or with `disable_local_igmp`
        has the kernel send none for 224.0.0.0/24, which RFC 4541 has switches
        flood anyway: the latter here, as long as an IPv4 VMAC exists."""
        if self.igmp_reports is not None:
            return
        value = self._read_path(IGMP_LLM_REPORTS)
        if not value:
            return                 # 0 already (or unreadable: said)
        self.igmp_reports = value
        self._save_state()                      # its own value first
        if not self._write_path(IGMP_LLM_REPORTS, 0, "net.ipv4.igmp_link_local_mcast_reports"):
            self.igmp_reports = None
            self._save_state()
        else:
            log.info("NOTICE: setting sysctl net.ipv4.igmp_link_local_mcast_reports from %d to "
                     "0: no IGMP report from a VMAC's virtual MAC", value)

    def _restore_igmp(self) -> None:
        if self._read_path(IGMP_LLM_REPORTS) == 0:
            log.info("NOTICE: resetting sysctl net.ipv4.igmp_link_local_mcast_reports to %d",
                     self.igmp_reports)
            self._write_path(IGMP_LLM_REPORTS, self.igmp_reports,
                             "net.ipv4.igmp_link_local_mcast_reports")
        self.igmp_reports = None

    # ------------------------------------------------------------ /proc/sys

    def _read(self, family: str, interface: str, key: str) -> int | None:
        return self._read_path(SYSCTL.format(family=family, interface=interface, key=key))

    def _read_path(self, path: str) -> int | None:
        try:
            with open(path) as f:
                return int(f.read())
        except (OSError, ValueError) as exc:
            log.error("cannot read %s: %s", path, exc)
            return None

    def _sysctl(self, family: str, interface: str, key: str, value: int) -> bool:
        """Only what netlink cannot set: IPv6's disable_ipv6, all/default rp_filter."""
        return self._write_path(SYSCTL.format(family=family, interface=interface, key=key),
                                value, f"net.{family}.conf.{interface}.{key}")

    def _write_path(self, path: str, value: int, name: str) -> bool:
        try:
            with open(path, "w") as f:
                f.write(str(value))
            return True
        except OSError as exc:
            kind = f"{name.split('.conf.')[0]}/{name.rsplit('.', 1)[-1]}/{exc.errno}"
            if kind not in self.failed_sysctls:
                self.failed_sysctls.add(kind)
                hint = (" (under systemd: it must be writable, see "
                        "ReadWritePaths= in hivrrp.service)" if exc.errno == 30 else "")
                log.error("cannot set %s = %d: %s%s (said once for this setting)", name, value,
                          exc.strerror or exc, hint)
            return False
