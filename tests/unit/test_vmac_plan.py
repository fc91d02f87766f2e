"""A use_vmac instance in the plan, without root: it runs on its VMAC (on its
parent with vmac_xmit_base), its VIPs go on the VMAC, its source is the
parent's address, and the VMAC's link state faults it."""

from __future__ import annotations

from hivrrp._engine import FAULT_INTERFACE, FAULT_NO_SOURCE

from helpers.conf import load_text
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.daemon.plan import build, source_appeared
from hivrrp.kernel.linkpolicy import InterfaceState, LinkTable, Rebuild
from hivrrp.kernel.netlink import Address, Link

VMAC = Link(9, "vrrp.51", bytes.fromhex("00005e000133"), True)
WITH_VMAC = {**LINKS, "vrrp.51": VMAC}


def plan(tmp_path, extra="    use_vmac\n", links=None, addresses=None, vips=("192.0.2.26/24",),
         vmacs=None):
    result = load_text(tmp_path, instance_text("VI_1", 51, list(vips), extra=extra))
    assert result.ok, result.errors
    return build(result.config, WITH_VMAC if links is None else links,
                 ADDRESSES if addresses is None else addresses, 0,
                 vmacs={"VI_1": "vrrp.51"} if vmacs is None else vmacs)


def test_the_instance_runs_on_its_vmac_with_the_parents_source(tmp_path):
    p = plan(tmp_path, vips=("192.0.2.26/24", "192.0.2.27/24 dev eth0",
                             "198.51.100.9/24 dev eth1"))
    inst = p.instances["VI_1"]
    assert (inst.ifindex, inst.vmac, inst.faults) == (9, "vrrp.51", 0)
    # On the VMAC, as keepalived: `dev` naming its own interface too, not another.
    assert [(c.index, c.address) for c in inst.vips] == [
        (9, "192.0.2.26"), (9, "192.0.2.27"), (3, "198.51.100.9")]
    assert p.engine.master_address(0) is None and p.memberships() == {
        (4, bytes([224, 0, 0, 18]), 9)}
    assert p.interfaces == {"eth0": 2, "vrrp.51": 9, "eth1": 3}
    assert p.vmacs == {"vrrp.51": "VI_1"} and p.vmac_watch == {}


def test_without_the_mapping_nothing_changes(tmp_path):
    # decode, release: a plan without VMACs puts the VIPs on the interface itself.
    inst = plan(tmp_path, vmacs={}).instances["VI_1"]
    assert (inst.ifindex, inst.vmac, [c.index for c in inst.vips]) == (2, None, [2])


def test_xmit_base_runs_on_the_parent_and_watches_both(tmp_path):
    p = plan(tmp_path, extra="    use_vmac\n    vmac_xmit_base\n")
    inst = p.instances["VI_1"]
    assert inst.ifindex == 2 and [c.index for c in inst.vips] == [9]
    assert p.vmac_watch == {2: ["VI_1"], 9: ["VI_1"]}
    assert p.memberships() == {(4, bytes([224, 0, 0, 18]), 2)}


def test_a_missing_or_down_vmac_faults_the_instance(tmp_path):
    missing = plan(tmp_path, links=LINKS)
    assert missing.instances["VI_1"].faults & FAULT_INTERFACE
    assert missing.instances["VI_1"].vips == ()          # nowhere to put them yet
    assert missing.interfaces["vrrp.51"] == 0             # its making asks for a rebuild
    p = plan(tmp_path)
    down = {**WITH_VMAC, "vrrp.51": Link(9, "vrrp.51", VMAC.mac, False)}
    assert p.faults_now(down) == {"VI_1": FAULT_INTERFACE}
    assert p.faults_now(WITH_VMAC) == {}
    xmit = plan(tmp_path, extra="    use_vmac\n    vmac_xmit_base\n")
    assert xmit.faults_now(down) == {"VI_1": FAULT_INTERFACE}


def test_a_source_that_appears_on_the_parent_is_seen(tmp_path):
    p = plan(tmp_path, addresses=[])
    assert p.instances["VI_1"].faults & FAULT_NO_SOURCE
    # Waited for where it will appear: the parent, not the VMAC.
    assert p.waiting == {(2, 4): ["VI_1"]}
    assert source_appeared(p, [Address(2, 4, "192.0.2.1", 24, 0)])


def test_a_vmac_deleted_behind_our_back_is_made_again(tmp_path):
    p = plan(tmp_path)
    table = LinkTable(WITH_VMAC)
    gone = ("link", 9, "vrrp.51", VMAC.mac, False, 1500)
    decisions = table.handle([gone, ("dellink", 9, "vrrp.51")], p)
    assert decisions == [InterfaceState(9, False), Rebuild("VMAC vrrp.51 was deleted")]
    # Set down only: FAULT, not made again.
    table = LinkTable(WITH_VMAC)
    assert table.handle([gone], p) == [InterfaceState(9, False)]
    # Another link deleted: nothing to make.
    assert LinkTable(WITH_VMAC).handle([("dellink", 3, "eth1")], p) == []


def test_while_a_reload_builds_a_new_vmac_asks_for_nothing(tmp_path):
    p = plan(tmp_path)
    table = LinkTable(WITH_VMAC)
    table.building = True
    made_again = ("link", 12, "vrrp.51", VMAC.mac, True, 1500)
    assert table.handle([("dellink", 9, "vrrp.51"), made_again], p) == []
    table.building = False
    assert table.handle([("link", 13, "vrrp.52", VMAC.mac, True, 1500)], p) == [
        InterfaceState(13, True)]
