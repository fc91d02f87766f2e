"""The real Daemon (plan, driver, reactor, VIP queue, GARP policy, lifecycle,
link watch) over stand-ins for netlink, the monitor and the raw sockets: the
wiring tested without root, a kernel or signals."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers.conf import write
from helpers.plans import LINKS
from hivrrp.config import load
from hivrrp.daemon.driver import Driver
from hivrrp.daemon.lifecycle import Lifecycle
from hivrrp.daemon.wiring import Daemon
from hivrrp.kernel.addrbatch import Encoded
from hivrrp.kernel.linkwatch import LinkWatch
from hivrrp.kernel.vmac import NONE


class FakeSocket:
    def __init__(self, sent: list) -> None:
        self.sent = sent

    def sendto(self, frame, where) -> None:
        self.sent.append(frame)

    def close(self) -> None:
        pass


class FakeNetlink:
    """Answers from `links_now` / `addresses_now`; records what was applied."""

    def __init__(self, links, addresses) -> None:
        self.links_now = dict(links)
        self.addresses_now = list(addresses)
        self.applied: list = []        # every change, a follower group's unit unpacked
        self.trips: list = []          # each trip's changes as the queue sent them
        # (add, address) in the order the no_accept drop sets were told, and
        # where the address changes fell between them ("vips", count).
        self.drops: list = []
        self.firewall = None
        self.firewall_started: tuple | None = None    # (settings, families)
        self.firewall_stopped = False
        self.link_dumps = 0
        self.on_link_dump = None       # called after a links() dump was taken
        self.closed = False

    async def start(self) -> None:
        pass

    async def run(self, function, *args):
        # VmacManager's thread work: the fake kernel has no link to make a
        # VMAC on, and a test must never reach the host's links, sysctls or
        # run directory (the sysctl state file) through it.
        return NONE if getattr(function, "__name__", "") == "_ensure" else None

    async def links(self):
        snapshot = dict(self.links_now)
        self.link_dumps += 1
        if self.on_link_dump is not None:
            self.on_link_dump()
        await asyncio.sleep(0)
        return snapshot

    async def addresses(self):
        await asyncio.sleep(0)
        return list(self.addresses_now)

    async def apply(self, changes, drop=(), undrop=(), progress=None):
        await asyncio.sleep(0)
        self.drops += [(True, c.address) for c in drop]
        if drop or undrop:
            self.drops.append(("vips", len(changes)))
        self.drops += [(False, c.address) for c in undrop]
        self.trips.append(list(changes))
        for change in changes:
            self.applied.extend(change.changes if isinstance(change, Encoded) else [change])
        if progress is not None:
            progress(len(changes))
        return []

    async def start_firewall(self, settings, families) -> None:
        self.firewall_started = (settings, families)

    async def stop_firewall(self) -> None:
        self.firewall_stopped = True

    async def routing(self, add, entries):
        await asyncio.sleep(0)
        return []

    def close(self) -> None:
        self.closed = True


class FakeMonitor:
    new_addresses = False

    def start(self) -> None:
        pass

    def want_new_addresses(self, wanted: bool) -> None:
        self.new_addresses = wanted

    def stop(self) -> None:
        pass


def watching(plan, driver: Driver, loop, links=None) -> LinkWatch:
    """The daemon's LinkWatch on `plan` over `links` (plans.LINKS), telling
    `driver` the link table as the daemon does."""
    lifecycle = Lifecycle(None, None, lambda: plan.config)
    watch = LinkWatch(loop, object(), lifecycle, lambda: plan, lambda actions: None,
                      lambda: None, monitor=FakeMonitor())
    watch.on_link_table = driver.sync_links
    links = LINKS if links is None else links
    watch.table.links = dict(links)
    watch.installed(plan, dict(links))
    return watch


async def started(directory: Path, text: str, links, addresses, monkeypatch) -> Daemon:
    """A Daemon running `text`, its instances started, GARP frames recorded in .frames."""
    monkeypatch.setattr(Driver, "open_sockets", lambda self, families, count: None)
    monkeypatch.setattr(Driver, "set_memberships", lambda self, wanted: None)
    path = write(directory, "keepalived.conf", text)
    result = load(str(path), config_id="main", check_host=False)
    assert result.ok, result.errors
    daemon = Daemon(result.config, str(path), "main", netlink=FakeNetlink(links, addresses),
                    monitor=FakeMonitor())
    daemon.directory = directory
    await daemon.start()
    daemon.frames = []
    daemon.garp.announcer.packet_socket = FakeSocket(daemon.frames)
    daemon.garp.announcer.icmp6_socket = FakeSocket(daemon.frames)
    return daemon


async def reload(daemon: Daemon, text: str | None = None) -> None:
    """Rewrite the file (if given), reload, and wait for the lifecycle to settle."""
    if text is not None:
        write(daemon.directory, "keepalived.conf", text)
    daemon.lifecycle.request_reload()
    await settle(daemon)


async def settle(daemon: Daemon) -> None:
    for _ in range(500):
        await asyncio.sleep(0.005)
        if daemon.lifecycle.task is None and daemon.vips.task is None:
            return
    raise AssertionError("the daemon did not settle")
