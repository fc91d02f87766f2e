"""The packet path's table of links against what the kernel says: every link
reaches the frames, whatever the order of the start's steps, and a link's
stale entries (an old name, a deleted link whose index was reused) never
overrule the live one. Without root: FramePath(-1) builds frames and sends
none."""

from __future__ import annotations

import asyncio
import logging

from hivrrp._io import FramePath

from helpers.conf import write
from helpers.engines import master_on
from helpers.fakedaemon import FakeMonitor, FakeNetlink, watching
from helpers.plans import ADDRESSES, LINKS, instance_text, plan_of
from hivrrp.config import load
from hivrrp.daemon.driver import Driver
from hivrrp.daemon.wiring import Daemon
from hivrrp.kernel.linkpolicy import InterfaceState, LinkTable
from hivrrp.kernel.netlink import Address, Link

ETH0_MAC = LINKS["eth0"].mac
ARPHRD_ETHER = 1


# ------------------------------------------------------------- the table at start

def test_a_start_that_removes_leftover_vips_still_sends_frames(tmp_path, monkeypatch):
    # A restart after a crash: the VIP the killed run added is still on eth0.
    # remove_leftovers() deletes it before the sockets open, and the kernel's
    # RTM_DELADDR reaches LinkWatch while there is no plan: carry_out() tells
    # the driver the table (generation 0) while it has no FramePath yet. It
    # recorded generation 0 as told (before the fix, and the driver forgot
    # the table). The table was filled by assignment (no
    # generation step), so install() finds nothing new to tell: the frames
    # know no link, and every multicast advert takes the raw socket (counted
    # as raw_link, logged nowhere) until some link changes. Seen live: a
    # daemon started over a leftover VIP had sent 0 frames and 29 raw_link.
    monkeypatch.setattr(Driver, "open_sockets",
                        lambda self, families, count: setattr(self, "frames", FramePath(-1)))
    monkeypatch.setattr(Driver, "set_memberships", lambda self, wanted: None)
    text = instance_text("VI_1", 1, ["192.0.2.10/24"], priority=255)
    path = write(tmp_path, "keepalived.conf", text)
    result = load(str(path), config_id="main", check_host=False)
    assert result.ok, result.errors
    netlink = FakeNetlink(LINKS, [*ADDRESSES, Address(2, 4, "192.0.2.10", 24, 0)])

    async def scenario():
        daemon = Daemon(result.config, str(path), "main", netlink=netlink,
                        monitor=FakeMonitor())
        apply = netlink.apply

        async def apply_and_tell(changes, drop=(), undrop=(), progress=None):
            failures = await apply(changes, drop, undrop, progress=progress)
            # The monitor's news of each removal, on the loop before the trip's
            # answer (the kernel multicasts RTM_DELADDR before it acks).
            daemon.links.on_netlink(
                [("deladdr", c.index, c.family, c.address) for c in changes if not c.add])
            return failures

        netlink.apply = apply_and_tell
        await daemon.start()
        assert [c.address for c in netlink.applied if not c.add][:1] == ["192.0.2.10"]
        return daemon.driver.frames

    frames = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert frames.link(2) is not None, "the frames were never told eth0"
    assert frames.frames(master_on(2))[0][1] is not None     # VI_1's adverts go as frames


# ---------------------------------------------------- links the table keeps by name

def test_a_mac_change_after_a_rename_and_back_is_the_frames_source(tmp_path):
    # Before the fix LinkTable kept links by name and never dropped one, so
    # eth0 renamed to lan0 and back left "lan0" behind with eth0's index.
    # sync_links walked every entry and told the frames each one whose (mac,
    # mtu, type) differed from what it last told for that index: after eth0's
    # MAC changed, the stale lan0 (later in the dict) was told last and its
    # old MAC won. The raw socket would use the kernel's MAC; a stale MTU the
    # same way makes frames the device refuses. The announcements took their
    # MAC and name from the same stale entry (by_index()).
    plan = plan_of(tmp_path, instance_text("VI_1", 1, ["192.0.2.10/24"]))
    new_mac = bytes.fromhex("020000000099")
    driver = Driver(None, lambda events: None)
    driver.frames = FramePath(-1)

    async def scenario():
        watch = watching(plan, driver, asyncio.get_running_loop())
        watch.on_netlink([("link", 2, "lan0", ETH0_MAC, True, 1500, ARPHRD_ETHER)])
        watch.on_netlink([("link", 2, "eth0", ETH0_MAC, True, 1500, ARPHRD_ETHER)])
        watch.on_netlink([("link", 2, "eth0", new_mac, True, 1500, ARPHRD_ETHER)])

        return watch

    watch = asyncio.run(scenario())
    assert driver.frames.link(2)[0] == new_mac, driver.frames.link(2)
    assert watch.table.by_index()[2] == Link(2, "eth0", new_mac, True)
    assert "lan0" not in watch.table.links


def test_news_of_another_link_logs_no_mac_change(tmp_path, caplog):
    # eth1 is deleted (the table keeps it by name, down) and a link moved in
    # from another namespace keeps its index 3 there (dev_change_net_namespace
    # keeps a free index). Before the fix every table change re-told index 3
    # twice, the dead eth1 and the live one, and logged two "MAC ... -> ...:
    # adverts go out from the new one" lines that nothing changed: an
    # unrelated link going down below said the MAC of index 3 moved twice.
    plan = plan_of(tmp_path, instance_text("VI_1", 1, ["192.0.2.10/24"]))
    moved_in = bytes.fromhex("020000000077")
    driver = Driver(None, lambda events: None)
    driver.frames = FramePath(-1)

    async def scenario():
        watch = watching(plan, driver, asyncio.get_running_loop())
        watch.on_netlink([("link", 3, "eth1", LINKS["eth1"].mac, False, 1500, ARPHRD_ETHER),
                          ("dellink", 3, "eth1")])
        watch.on_netlink([("link", 3, "veth9", moved_in, True, 1500, ARPHRD_ETHER)])
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="hivrrp"):
            watch.on_netlink([("link", 2, "eth0", ETH0_MAC, False, 1500, ARPHRD_ETHER)])

    asyncio.run(scenario())
    assert driver.frames.link(3)[0] == moved_in
    mac_lines = [r.getMessage() for r in caplog.records if "MAC" in r.getMessage()]
    assert mac_lines == [], mac_lines


def test_a_resync_after_a_rename_and_back_faults_nothing(tmp_path):
    # The old name left in the table after eth0 went lan0 and back was missing
    # from the next dump: the resync took it for a deleted link, judged it
    # down, and put index 2's instances (eth0's, up all along) in FAULT.
    plan = plan_of(tmp_path, instance_text("VI_1", 1, ["192.0.2.10/24"]))
    table = LinkTable(LINKS)
    eth0 = LINKS["eth0"]
    table.handle([("link", 2, "lan0", eth0.mac, True, 1500, ARPHRD_ETHER),
                  ("link", 2, "eth0", eth0.mac, True, 1500, ARPHRD_ETHER)], plan)
    assert table.replace(LINKS, plan) == []
    assert table.links == LINKS and table.by_index() == {2: eth0, 3: LINKS["eth1"]}


def test_a_resync_keeps_a_deleted_link_s_mtu(tmp_path, caplog):
    # A link missing from the dump stays in the table, down; it was put there
    # with the default MTU (1500), which said "MTU 9000 -> 1500" of a link
    # that had gone, and warned about its instances' adverts.
    jumbo = {**LINKS, "eth1": Link(3, "eth1", LINKS["eth1"].mac, True, 9000)}
    plan = plan_of(tmp_path, instance_text("VI_1", 1, ["198.51.100.10/24"], interface="eth1"),
                   links=jumbo)
    table = LinkTable(jumbo)
    with caplog.at_level(logging.INFO, logger="hivrrp"):
        decisions = table.replace({"eth0": LINKS["eth0"]}, plan)
    assert decisions == [InterfaceState(3, False)]
    assert table.links["eth1"] == Link(3, "eth1", LINKS["eth1"].mac, False, 9000)
    assert 3 not in table.by_index()
    assert "MTU" not in caplog.text, caplog.text


# ------------------------------------------------------------- the work per event

def test_a_link_event_tells_the_frames_only_that_link(tmp_path):
    # sync_links compared every link on every netlink batch (0.93 ms at
    # 10,000 links, for each VLAN going up or down): now only those changed.
    links = {**LINKS, **{f"vlan{k}": Link(100 + k, f"vlan{k}", bytes([2, 0, 0, 1, k >> 8, k & 255]),
                                          True) for k in range(2000)}}
    plan = plan_of(tmp_path, instance_text("VI_1", 1, ["192.0.2.10/24"]), links=links)
    driver = Driver(None, lambda events: None)
    driver.frames = FramePath(-1)
    told = []

    async def scenario():
        watch = watching(plan, driver, asyncio.get_running_loop(), links)
        watch.on_link_table = lambda live, changed: told.append(set(changed)) or \
            driver.sync_links(live, changed)
        watch.on_netlink([("link", 150, "vlan50", bytes.fromhex("020000000042"), False, 1500,
                           ARPHRD_ETHER), ("dellink", 151, "vlan51")])
        watch.on_netlink([("newaddr", 2, 4, "192.0.2.99")])       # no link changed

    asyncio.run(scenario())
    assert told == [{150, 151}]
    assert driver.frames.link(150)[0] == bytes.fromhex("020000000042")
    assert driver.frames.link(151)[2] is False and 151 not in driver.links_told
    assert len(driver.links_told) == len(links) - 1
