"""Kernel news -> decisions (kernel/linkpolicy.py) and the source look-ups of daemon/plan.py."""

from hivrrp._engine import FAULT_INTERFACE, FAULT_NO_SOURCE

from helpers.plans import ADDRESSES, LINKS, instance_text, plan_of
from hivrrp.daemon.plan import source_appeared
from hivrrp.kernel.linkpolicy import InterfaceState, LinkTable, Rebuild, Resync, VipRemoved
from hivrrp.kernel.netlink import Address, Link

MAC = bytes(6)


def test_events_before_the_first_plan_are_held_and_replayed(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24"]))
    table = LinkTable(LINKS)
    # eth0 went down after the dump the plan was built on: that must not be lost.
    assert table.handle([("link", 2, "eth0", MAC, False)], None) == []
    assert table.handle([], plan) == [InterfaceState(2, False)]
    assert table.handle([], plan) == []   # replayed once


def test_an_overflowing_backlog_becomes_a_resync(tmp_path, monkeypatch):
    monkeypatch.setattr("hivrrp.kernel.linkpolicy.HELD_EVENTS_MAX", 3)
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24"]))
    table = LinkTable(LINKS)
    table.handle([("deladdr", 9, 4, "10.0.0.1")] * 4, None)
    assert table.handle([], plan) == [Resync()]


def test_link_changes_vips_removed_and_resync(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24"]))
    table = LinkTable(LINKS)
    events = [("link", 2, "eth0", MAC, True),          # no change
              ("link", 3, "eth1", MAC, False),         # down
              ("deladdr", 2, 4, "192.0.2.26"),         # one of ours
              ("deladdr", 2, 4, "192.0.2.99"),         # not ours
              ("resync",), ("resync",)]
    assert table.handle(events, plan) == [InterfaceState(3, False),
                                          VipRemoved("VI_1", 2, "192.0.2.26"), Resync()]


def test_an_interface_back_with_a_new_index_asks_for_a_rebuild(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24"]))
    table = LinkTable(LINKS)
    (decision,) = table.handle([("link", 7, "eth0", MAC, True)], plan)
    assert isinstance(decision, Rebuild)


def test_a_missing_interface_and_source_are_build_time_faults(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24"], interface="eth1")
                   + instance_text("VI_2", 52, ["192.0.2.52/24"], interface="late0"),
                   addresses=[ADDRESSES[0]])
    assert plan.instances["VI_1"].faults == FAULT_NO_SOURCE
    assert plan.instances["VI_2"].faults == FAULT_INTERFACE | FAULT_NO_SOURCE
    # Only an instance with an interface waits for an address on it.
    assert plan.waiting == {(3, 4): ["VI_1"]}


def test_a_source_address_that_appears_asks_for_one_rebuild_but_a_vip_does_not(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["198.51.100.26/24"], interface="eth1")
                   + instance_text("VI_2", 52, ["198.51.100.52/24"], interface="eth1"),
                   addresses=[ADDRESSES[0]])
    table = LinkTable(LINKS)
    assert table.handle([("newaddr", 3, 4, "198.51.100.26")], plan) == []   # our VIP
    assert table.handle([("newaddr", 3, 6, "fe80::1")], plan) == []         # other family
    assert table.handle([("newaddr", 2, 4, "192.0.2.9")], plan) == []       # other link
    decisions = table.handle([("newaddr", 3, 4, "198.51.100.1"),
                              ("newaddr", 3, 4, "198.51.100.2")], plan)
    assert len(decisions) == 1 and isinstance(decisions[0], Rebuild)


def test_source_appeared_reads_a_dump_the_way_build_does(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["198.51.100.26/24"], interface="eth1"),
                   addresses=[])
    assert not source_appeared(plan, [Address(3, 4, "198.51.100.26", 24, 0)])  # the VIP
    assert not source_appeared(plan, [Address(2, 4, "192.0.2.1", 24, 0)])
    assert source_appeared(plan, [Address(3, 4, "198.51.100.1", 24, 0)])


def test_ipv6_sources_are_link_local_only(tmp_path):
    text = instance_text("V6", 61, ["fd00::61/64"])
    global_only = [Address(2, 6, "fd00::1", 64, 0)]
    assert plan_of(tmp_path, text, addresses=global_only).instances["V6"].faults == FAULT_NO_SOURCE
    plan = plan_of(tmp_path, text, addresses=[*global_only, Address(2, 6, "fe80::1", 64, 253)])
    assert plan.instances["V6"].faults == 0


def test_a_dump_after_a_resync_reports_the_link_changes(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24"])
                   + instance_text("VI_2", 52, ["203.0.113.52/24"], interface="eth2"))
    table = LinkTable(LINKS)
    generation = table.generation
    fresh = dict(LINKS, eth1=Link(3, "eth1", MAC, False))
    assert table.replace(fresh, plan) == [InterfaceState(3, False)]
    assert table.replace(fresh, plan) == [] and table.generation > generation
    # An interface created during the overrun: the events never told, the dump does.
    (decision,) = table.replace(dict(fresh, eth2=Link(4, "eth2", MAC, True)), plan)
    assert isinstance(decision, Rebuild)


def test_what_changed_while_a_plan_was_built_is_judged_for_it(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24"])
                   + instance_text("VI_2", 52, ["203.0.113.52/24"], interface="eth2"))
    built_on = dict(LINKS)
    table = LinkTable(LINKS)
    table.handle([("link", 3, "eth1", MAC, False), ("link", 4, "eth2", MAC, True)], plan)
    decisions = table.since(built_on, plan)
    assert InterfaceState(3, False) in decisions
    assert any(isinstance(d, Rebuild) for d in decisions)
    assert table.since(dict(table.links), plan) == []


def test_build_and_the_rebuild_checks_agree_on_what_is_no_source(tmp_path):
    # 198.51.100.1 on eth1 is VI_B's VIP, and VI_B's interface is missing: the
    # rebuild check took it as a source that build() refused, and asked for
    # rebuilds forever.
    plan = plan_of(tmp_path, instance_text("VI_A", 51, ["198.51.100.51/24"], interface="eth1")
                   + instance_text("VI_B", 52, ["198.51.100.1/24"], interface="eth2")
                   + "vrrp_instance VI_C {\n interface eth0\n virtual_router_id 53\n"
                     " virtual_ipaddress {\n 192.0.2.53/24\n }\n"
                     " virtual_ipaddress_excluded {\n 198.51.100.9/24\n }\n}\n",
                   addresses=[ADDRESSES[0], Address(3, 4, "198.51.100.1", 24, 0),
                              Address(3, 4, "198.51.100.9", 24, 0)])
    assert plan.instances["VI_A"].faults == FAULT_NO_SOURCE
    assert not source_appeared(plan, [Address(3, 4, "198.51.100.1", 24, 0),
                                      Address(3, 4, "198.51.100.9", 24, 0)])
    table = LinkTable(LINKS)
    assert table.handle([("newaddr", 3, 4, "198.51.100.1"),
                         ("newaddr", 3, 4, "198.51.100.9")], plan) == []


def test_an_interface_deleted_during_an_overrun_is_down_after_the_resync(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["198.51.100.51/24"], interface="eth1"))
    table = LinkTable(LINKS)
    assert table.replace({"eth0": LINKS["eth0"]}, plan) == [InterfaceState(3, False)]
    assert not table.links["eth1"].up


def test_an_interface_named_only_by_a_vip_dev_asks_for_a_rebuild_when_it_appears(tmp_path):
    plan = plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.51/24",
                                                        "203.0.113.9/24 dev eth2"]))
    assert plan.interfaces == {"eth0": 2, "eth2": 0}
    (decision,) = LinkTable(LINKS).handle([("link", 4, "eth2", MAC, True)], plan)
    assert isinstance(decision, Rebuild)


def test_a_removed_vip_is_owned_by_exactly_the_instance_that_has_it_on_that_interface(tmp_path):
    plan = plan_of(tmp_path,
                   instance_text("VI_1", 51, ["192.0.2.26/24", "192.0.2.27/24 dev eth1"])
                   + instance_text("VI_2", 52, ["198.51.100.26/24"], interface="eth1")
                   # The same address as VI_1's on another interface, and again on eth0.
                   + instance_text("VI_3", 53, ["192.0.2.26/24"], interface="eth1")
                   + instance_text("VI_4", 54, ["192.0.2.26/24"]))
    assert plan.vip_owner(3, "198.51.100.26") == "VI_2"
    assert isinstance(plan.vip_owners["198.51.100.26"], str)   # the usual case: one probe
    assert plan.vip_owner(2, "198.51.100.26") is None           # ours, but not on that link
    assert plan.vip_owner(3, "192.0.2.27") == "VI_1"            # by dev, not VI_1's eth0
    assert plan.vip_owner(2, "192.0.2.27") is None
    assert plan.vip_owner(3, "192.0.2.26") == "VI_3"
    assert plan.vip_owner(2, "192.0.2.26") == "VI_4"            # the last one configured
    assert plan.vip_owner(2, "192.0.2.99") is None
    table = LinkTable(LINKS)
    assert table.handle([("deladdr", 3, 4, "192.0.2.26"), ("deladdr", 3, 4, "192.0.2.27")],
                        plan) == [VipRemoved("VI_3", 3, "192.0.2.26"),
                                  VipRemoved("VI_1", 3, "192.0.2.27")]
