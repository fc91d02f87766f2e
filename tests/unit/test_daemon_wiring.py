"""The daemon's wiring around reloads and kernel news, without root: each test
is an interleaving a review found (the events arrive while a reload builds)."""

import asyncio

import hivrrp.daemon.wiring as daemon_module
from helpers.fakedaemon import reload, settle, started
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.kernel.netlink import Address, Link

MAC = bytes(6)
ETH1_DOWN = dict(LINKS, eth1=Link(3, "eth1", MAC, False))


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 10))


def test_a_link_that_comes_up_while_a_reload_builds_is_up_after_it(tmp_path, monkeypatch):
    text = instance_text("VI_1", 51, ["198.51.100.51/24"], interface="eth1", priority=255)

    async def scenario():
        d = await started(tmp_path, text, ETH1_DOWN, ADDRESSES, monkeypatch)
        assert d.plan.states() == {"VI_1": "FAULT"}
        real_build = daemon_module.build_off_loop

        async def build_while_the_link_comes_up(config, built_on, *args):
            # The snapshot (eth1 down) is taken: now the carrier comes back.
            d.links.on_netlink([("link", 3, "eth1", MAC, True)])
            return await real_build(config, built_on, *args)

        monkeypatch.setattr(daemon_module, "build_off_loop", build_while_the_link_comes_up)
        await reload(d)
        # Before: the stale build-time fault came back with the new plan and no
        # event ever cleared it (the table already said "up").
        assert d.plan.states() == {"VI_1": "MASTER"}
        assert [c.address for c in d.netlink.applied if c.add] == ["198.51.100.51"]
        assert not any(not c.add for c in d.netlink.applied)
    run(scenario())


def test_an_interface_created_while_a_reload_builds_is_picked_up(tmp_path, monkeypatch):
    first = instance_text("VI_1", 51, ["192.0.2.51/24"], priority=255)
    second = first + instance_text("VI_2", 52, ["203.0.113.52/24"], interface="eth2",
                                   priority=255)

    async def scenario():
        d = await started(tmp_path, first, LINKS, ADDRESSES, monkeypatch)
        real_build = daemon_module.build_off_loop

        async def build_while_eth2_appears(config, built_on, *args):
            d.netlink.links_now["eth2"] = Link(4, "eth2", MAC, True)
            d.netlink.addresses_now.append(Address(4, 4, "203.0.113.1", 24, 0))
            d.links.on_netlink([("link", 4, "eth2", MAC, True)])
            return await real_build(config, built_on, *args)

        monkeypatch.setattr(daemon_module, "build_off_loop", build_while_eth2_appears)
        await reload(d, second)
        monkeypatch.setattr(daemon_module, "build_off_loop", real_build)
        await settle(d)   # the rebuild the new interface asked for
        assert d.plan.instances["VI_2"].ifindex == 4
        assert d.plan.states() == {"VI_1": "MASTER", "VI_2": "MASTER"}
    run(scenario())


def test_a_source_address_added_unseen_is_found_by_the_next_reload(tmp_path, monkeypatch):
    text = (instance_text("VI_A", 51, ["198.51.100.51/24"], interface="eth1", priority=255)
            + instance_text("VI_B", 52, ["198.51.100.52/24"], interface="eth1", priority=255))

    async def scenario():
        d = await started(tmp_path, text, LINKS, [ADDRESSES[0]], monkeypatch)
        assert set(d.plan.states().values()) == {"FAULT"}
        assert d.links.monitor.new_addresses        # waiting: additions let through
        # An addition the monitor did not report (judged against an older plan).
        d.netlink.addresses_now.append(Address(3, 4, "198.51.100.1", 24, 0))
        await reload(d)
        await settle(d)
        assert d.plan.states() == {"VI_A": "MASTER", "VI_B": "MASTER"}
        assert not d.links.monitor.new_addresses
    run(scenario())


def test_a_rename_does_not_end_the_refresh_chain_of_the_name_taken_over(tmp_path, monkeypatch):
    prefix = "global_defs {\n    vrrp_garp_master_refresh 30\n}\n"
    before = prefix + (instance_text("A", 51, ["192.0.2.51/24"], priority=255)
                       + instance_text("C", 52, ["192.0.2.52/24"], priority=255))
    after = prefix + (instance_text("B", 51, ["192.0.2.51/24"], priority=255)
                      + instance_text("A", 52, ["192.0.2.52/24"], priority=255))

    async def scenario():
        d = await started(tmp_path, before, LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        assert {n for n, kinds in d.garp.pending.items() if "refresh" in kinds} == {"A", "C"}
        await reload(d, after)
        assert {n for n, kinds in d.garp.pending.items() if "refresh" in kinds} == {"A", "B"}
    run(scenario())


def test_a_resync_dump_overtaken_by_a_link_event_is_taken_again(tmp_path, monkeypatch):
    text = instance_text("VI_1", 51, ["198.51.100.51/24"], interface="eth1", priority=255)

    async def scenario():
        d = await started(tmp_path, text, LINKS, ADDRESSES, monkeypatch)
        assert d.plan.states() == {"VI_1": "MASTER"}

        def link_goes_down_after_the_first_dump():
            d.netlink.on_link_dump = None
            d.netlink.links_now["eth1"] = Link(3, "eth1", MAC, False)
            d.links.on_netlink([("link", 3, "eth1", MAC, False)])

        d.netlink.on_link_dump = link_goes_down_after_the_first_dump
        dumps = d.netlink.link_dumps
        await d.links.resync()
        # Before: the older dump ("up") was laid over the newer event ("down").
        assert d.netlink.link_dumps == dumps + 2
        assert d.plan.states() == {"VI_1": "FAULT"}
        assert not d.links.table.links["eth1"].up
    run(scenario())


def test_plans_are_built_off_the_loop_thread(tmp_path, monkeypatch):
    """A 4,000-instance build on the loop took longer than a v3 Master_Down_Interval."""
    import threading

    import hivrrp.daemon.plan as plan_module
    threads = []
    real_build = plan_module.build

    def recording_build(*args, **kwargs):
        threads.append(threading.current_thread())
        return real_build(*args, **kwargs)

    monkeypatch.setattr(plan_module, "build", recording_build)
    text = instance_text("VI_1", 51, ["192.0.2.51/24"], priority=255)

    async def scenario():
        d = await started(tmp_path, text, LINKS, ADDRESSES, monkeypatch)
        await reload(d)
    run(scenario())
    assert len(threads) == 2 and threading.main_thread() not in threads


def test_a_kept_master_faulted_by_the_new_plan_keeps_none_of_its_new_vips(tmp_path,
                                                                           monkeypatch):
    before = instance_text("VI_1", 51, ["198.51.100.51/24"], interface="eth1", priority=255)
    after = instance_text("VI_1", 51, ["198.51.100.51/24", "198.51.100.52/24"],
                          interface="eth1", priority=255)

    async def scenario():
        d = await started(tmp_path, before, LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        real_build = daemon_module.build_off_loop

        async def build_without_a_source_and_with_link_news(config, built_on, addresses, *args):
            # eth1 lost its address (the new plan faults VI_1: no source), and
            # another link changed meanwhile, so the swap has link news to carry out.
            addresses = [a for a in addresses if a.index != 3]
            result = await real_build(config, built_on, addresses, *args)
            d.links.on_netlink([("link", 2, "eth0", MAC, False)])
            return result

        monkeypatch.setattr(daemon_module, "build_off_loop",
                            build_without_a_source_and_with_link_news)
        await reload(d, after)
        assert d.plan.states() == {"VI_1": "FAULT"}
        final = {}
        for change in d.netlink.applied:
            final[change.address] = change.add
        # The reload's "add .52" was queued after the FAULT's "remove all" and won.
        assert final["198.51.100.51"] is False
        assert final.get("198.51.100.52", False) is False, d.netlink.applied
    run(scenario())
