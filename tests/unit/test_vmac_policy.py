"""kernel/vmac_policy.py: which VMACs a configuration wants and what makes the
links so, without root (keepalived 2.2.7's rules, vrrp.c / vrrp_vmac.c)."""

from __future__ import annotations

from helpers.conf import load_text
from hivrrp.kernel.vmac_policy import (
    Adopt,
    Create,
    Delete,
    Fix,
    RpFilter,
    candidate_names,
    clear_rp_filter,
    ipv6_sources,
    parent_changes,
    parent_released,
    restore_rp_filter,
    retired,
    wanted,
)
from hivrrp.kernel.vmacnl import LinkInfo

ETH1 = LinkInfo(2, "eth1", bytes.fromhex("020000000001"), True, True, True, "veth",
                ipv4=tuple([0] * 7 + [0] + [0] * 10 + [0] + [0] * 20))
ETH2 = LinkInfo(3, "eth2", bytes.fromhex("020000000002"), True, True, True, "veth", group=7,
                master=9)
VRF = LinkInfo(9, "blue", bytes(6), True, True, False, "vrf")
LINKS = {"eth1": ETH1, "eth2": ETH2, "blue": VRF}
PRIVATE, BRIDGE = 1, 4


def config(tmp_path, *instances: str, global_defs: str = ""):
    text = (f"global_defs {{\n{global_defs}}}\n" if global_defs else "") + "".join(instances)
    result = load_text(tmp_path, text)
    assert result.ok, result.errors
    return result.config


def inst(name: str, vrid: int, vip: str = "192.0.2.26/24", interface: str = "eth1",
         extra: str = "    use_vmac\n") -> str:
    return (f"vrrp_instance {name} {{\n    interface {interface}\n    virtual_router_id {vrid}\n"
            f"{extra}    virtual_ipaddress {{\n        {vip}\n    }}\n}}\n")


def macvlan(index: int, name: str, mac: str, parent: int = 2, mode: int = PRIVATE) -> LinkInfo:
    return LinkInfo(index, name, bytes.fromhex(mac.replace(":", "")), True, True, True,
                    "macvlan", mode, parent)


def test_names_as_keepalived_makes_them():
    assert list(zip(range(3), candidate_names("vrrp", 51, 4))) == [
        (0, "vrrp.51"), (1, "vrrp1.51"), (2, "vrrp2.51")]
    # IPv6 tries PREFIX6 second, and skips 6 later.
    six = list(zip(range(9), candidate_names("vrrp", 51, 6)))
    assert [n for _, n in six] == ["vrrp.51", "vrrp6.51", "vrrp1.51", "vrrp2.51", "vrrp3.51",
                                   "vrrp4.51", "vrrp5.51", "vrrp7.51", "vrrp8.51"]
    # A long prefix is cut so that the name fits in IFNAMSIZ - 1 bytes.
    first, second = list(zip(range(2), candidate_names("averyverylongprefix", 200, 4)))
    assert first[1] == "averyverylo.200" and second[1] == "averyveryl1.200"


def test_a_fresh_vmac_per_instance_with_the_vrrp_mac(tmp_path):
    c = config(tmp_path, inst("VI_1", 51), inst("VI_6", 51, "fd00::26/64"),
               inst("VI_2", 51, "192.0.2.27/24", interface="eth2"))
    want = wanted(c, LINKS, set(), {"VI_6": "fe80::1"}, reload=False)
    assert [type(a) for a in want.actions] == [Create, Create, Create]
    v4, v6, other = (want.vmacs[n] for n in ("VI_1", "VI_6", "VI_2"))
    # Same VRID: IPv6 takes vrrp6.51 next, another parent vrrp1.51.
    assert (v4.name, v6.name, other.name) == ("vrrp.51", "vrrp6.51", "vrrp1.51")
    assert v4.mac == bytes.fromhex("00005e000133") and v6.mac == bytes.fromhex("00005e000233")
    assert (v4.parent_index, other.parent_index) == (2, 3)
    # IPv6 off on an IPv4 VMAC; the IPv6 one carries the source address.
    assert (v4.ipv6, v4.link_local, v6.ipv6, v6.link_local) == (False, None, True, "fe80::1")
    # Link group and master (a VRF) from the parent.
    assert (other.group, other.master, v4.group, v4.master) == (7, 9, 0, 0)


def test_a_bridge_master_of_the_parent_is_not_copied(tmp_path):
    """keepalived copies only a VRF master: the parent's bridge (or bond)
    would enslave the VMAC itself and take its frames."""
    bridge = LinkInfo(9, "br0", bytes(6), True, True, True, "bridge")
    c = config(tmp_path, inst("VI_2", 51, "192.0.2.27/24", interface="eth2"))
    want = wanted(c, {**LINKS, "blue": bridge}, set(), {}, reload=False)
    assert (want.vmacs["VI_2"].master, want.vmacs["VI_2"].group) == (0, 7)


def test_vmac_prefix_and_names_taken_by_other_links(tmp_path):
    links = {**LINKS, "vx.51": LinkInfo(5, "vx.51", b"\x02" * 6, True, True, True, "dummy")}
    c = config(tmp_path, inst("VI_1", 51), global_defs="    vmac_prefix vx\n")
    assert wanted(c, links, set(), {}, False).vmacs["VI_1"].name == "vx1.51"


def test_a_leftover_vmac_is_adopted_under_its_own_name(tmp_path):
    old = macvlan(8, "vrrp.51", "00:00:5e:00:01:33")
    want = wanted(config(tmp_path, inst("VI_1", 51)), {**LINKS, old.name: old}, set(), {}, False)
    assert want.actions == [Adopt(want.vmacs["VI_1"], 8)]
    # Another name too (a previous configuration's): the MAC on the parent decides.
    renamed = macvlan(8, "old", "00:00:5e:00:01:33")
    want = wanted(config(tmp_path, inst("VI_1", 51)), {**LINKS, "old": renamed}, set(), {},
                  False)
    assert want.vmacs["VI_1"].name == "old" and isinstance(want.actions[0], Adopt)


def test_a_leftover_in_the_wrong_mode_is_put_right(tmp_path):
    bridge = macvlan(8, "vrrp.51", "00:00:5e:00:01:33", mode=BRIDGE)
    want = wanted(config(tmp_path, inst("VI_1", 51)), {**LINKS, "vrrp.51": bridge}, set(), {},
                  False)
    assert want.actions == [Fix(want.vmacs["VI_1"], 8, "mode")]


def test_a_named_vmac_with_the_wrong_mac_is_put_right(tmp_path):
    named = macvlan(8, "mine", "02:99:99:99:99:99")
    c = config(tmp_path, inst("VI_1", 51, extra="    use_vmac mine\n"))
    want = wanted(c, {**LINKS, "mine": named}, set(), {}, False)
    assert want.actions == [Fix(want.vmacs["VI_1"], 8, "MAC")]
    assert want.vmacs["VI_1"].name == "mine"


def test_a_named_vmac_on_another_parent_is_made_again(tmp_path):
    elsewhere = macvlan(8, "mine", "00:00:5e:00:01:33", parent=3)
    c = config(tmp_path, inst("VI_1", 51, extra="    use_vmac mine\n"))
    want = wanted(c, {**LINKS, "mine": elsewhere}, set(), {}, False)
    assert want.actions == [Delete("mine", 8, "incompatible"), Create(want.vmacs["VI_1"])]


def test_a_name_held_by_another_kind_of_link_is_not_taken(tmp_path):
    c = config(tmp_path, inst("VI_1", 51, extra="    use_vmac eth2\n"))
    want = wanted(c, LINKS, set(), {}, False)
    assert want.vmacs["VI_1"].name == "vrrp.51"
    assert want.problems == ["(VI_1) interface eth2 already exists and is not a private "
                             "macvlan; ignoring vmac if_name"]


def test_a_renamed_vmac_is_adopted_at_start_and_made_again_at_a_reload(tmp_path):
    ours = macvlan(8, "vrrp.51", "00:00:5e:00:01:33")
    c = config(tmp_path, inst("VI_1", 51, extra="    use_vmac newname\n"))
    links = {**LINKS, "vrrp.51": ours}
    at_start = wanted(c, links, set(), {}, reload=False)
    assert at_start.vmacs["VI_1"].name == "vrrp.51"
    assert at_start.notes == ["(VI_1) vmac name mismatch newname <=> vrrp.51. changing to "
                              "vrrp.51."]
    at_reload = wanted(c, links, {"vrrp.51"}, {}, reload=True)
    assert at_reload.actions == [Delete("vrrp.51", 8, "renamed"),
                                 Create(at_reload.vmacs["VI_1"])]
    assert at_reload.vmacs["VI_1"].name == "newname"


def test_a_user_mac_and_a_missing_or_non_ethernet_parent(tmp_path):
    c = config(tmp_path, inst("VI_1", 51, extra="    use_vmac 02:11:22:33:44\n"),
               inst("VI_2", 52, interface="gone0"), inst("VI_3", 53, interface="tun0"))
    tun = LinkInfo(4, "tun0", b"", True, True, False, "tun")
    want = wanted(c, {**LINKS, "tun0": tun}, set(), {}, False)
    assert want.vmacs["VI_1"].mac == bytes.fromhex("021122334433")   # the VRID appended
    # A missing parent: named now, made when it appears (a rebuild).
    assert want.vmacs["VI_2"].name == "vrrp.52"
    assert [a.vmac.instance for a in want.actions] == ["VI_1"]
    assert "VI_3" not in want.vmacs and want.no_vmac["VI_3"]
    assert want.problems == ["(VI_3): vmacs are only supported on Ethernet type interfaces"]


def test_ipv6_with_xmit_base_carries_no_address_and_ipv6_evips_keep_ipv6_on(tmp_path):
    c = config(tmp_path,
               inst("VI_6", 51, "fd00::26/64", extra="    use_vmac\n    vmac_xmit_base\n"),
               inst("VI_4", 52, extra="    use_vmac\n    virtual_ipaddress_excluded {\n"
                                      "        fd00::99/64\n    }\n"))
    want = wanted(c, LINKS, set(), {"VI_6": "fe80::1"}, False)
    assert want.vmacs["VI_6"].link_local is None
    assert want.vmacs["VI_4"].ipv6 is True


def test_the_ipv6_source_is_the_configured_one_else_the_parents_link_local(tmp_path):
    c = config(tmp_path, inst("VI_6", 51, "fd00::26/64"),
               inst("VI_7", 52, "fd00::27/64", extra="    use_vmac\n    mcast_src_ip fe80::99\n"))
    sources = ipv6_sources(c, LINKS, [(2, 6, "fd00::5"), (2, 6, "fe80::5"), (2, 4, "192.0.2.1")])
    assert sources == {"VI_6": "fe80::5", "VI_7": "fe80::99"}


def test_the_parents_own_values_are_kept_until_its_last_vmac_goes():
    parents: dict = {}
    parent = LinkInfo(2, "eth1", b"", True, True, True, ipv4=tuple(
        2 if i == 18 else 0 for i in range(30)))        # arp_ignore 2, arp_filter 0
    assert parent_changes(parents, parent, "vrrp.51") == {"arp_ignore": 1, "arp_filter": 1}
    set_already = LinkInfo(2, "eth1", b"", True, True, True, ipv4=tuple(
        1 if i in (12, 18) else 0 for i in range(30)))
    assert parent_changes(parents, set_already, "vrrp.52") == {}
    assert parent_released(parents, "vrrp.51") == []
    assert parent_released(parents, "vrrp.52") == [(2, {"arp_ignore": 2, "arp_filter": 0})]
    assert parents == {}


def test_rp_filter_as_keepalived_clears_and_restores_it():
    state = RpFilter()
    eth1 = LinkInfo(2, "eth1", b"", True, True, True, ipv4=tuple(0 for _ in range(30)))
    lo = LinkInfo(1, "lo", b"", True, True, False, ipv4=tuple(2 if i == 7 else 0
                                                                 for i in range(30)))
    assert clear_rp_filter(RpFilter(), 0, 1, [eth1, lo]) == (None, [])   # all=0: nothing
    assert clear_rp_filter(state, 2, 1, [eth1, lo]) == (2, [(2, 2)])
    assert clear_rp_filter(state, 0, 2, [eth1, lo]) == (None, [])         # once
    # Each put back only where it is still what we made it.
    assert restore_rp_filter(state, 0, 2, {2: 2, 1: 2}) == (2, 1, [(2, 0)])
    assert not state.active
    state = RpFilter()
    clear_rp_filter(state, 1, 0, [eth1])
    assert restore_rp_filter(state, 1, 0, {2: 0}) == (None, None, [])    # changed since


def test_retired_are_ours_that_no_instance_wants():
    assert retired({"vrrp.51": 8, "vrrp.52": 9}, {"vrrp.52"}) == [
        Delete("vrrp.51", 8, "no longer configured")]
