"""The MTU travels with a link, from the dump and from link events: how many
VIPs an advert may list depends on it (keepalived's eVIPs)."""

from helpers.plans import LINKS, instance_text, plan_of
from hivrrp.kernel.linkpolicy import LinkTable
from hivrrp.kernel.netlink import IFINFOMSG, RTM_NEWLINK, Link, Netlink, _events
from hivrrp.kernel.rtnl import ATTR

MAC = bytes(6)


class FakeIPRoute:
    def get_links(self):
        return [{"index": 7, "ifname": "jumbo0", "address": "02:00:00:00:00:07",
                 "flags": 0x41, "mtu": 9000},
                {"index": 8, "ifname": "odd0", "address": None, "flags": 0}]


def attr(kind: int, payload: bytes) -> bytes:
    return ATTR.pack(ATTR.size + len(payload), kind) + payload + bytes(-len(payload) % 4)


def newlink(index: int, name: str, mac: bytes, flags: int, mtu: int) -> bytes:
    """An RTM_NEWLINK body as the kernel sends it (the parts the monitor reads)."""
    return (IFINFOMSG.pack(0, 1, index, flags, 0) + attr(3, name.encode() + b"\0")
            + attr(1, mac) + attr(4, mtu.to_bytes(4, "little")))


def test_the_dump_reads_each_link_s_mtu():
    netlink = Netlink()
    netlink.ipr = FakeIPRoute()
    try:
        links = netlink._links()
    finally:
        netlink.executor.shutdown()
    assert links["jumbo0"] == Link(7, "jumbo0", bytes.fromhex("020000000007"), True, 9000)
    assert links["odd0"].mtu == 1500       # none reported: keepalived's default


def test_a_link_event_carries_the_mtu_into_the_table(tmp_path):
    [event] = _events(RTM_NEWLINK, newlink(2, "eth0", MAC, 0x41, 1280))
    assert event == ("link", 2, "eth0", MAC, True, 1280, 1)     # 1: ARPHRD_ETHER
    table = LinkTable(LINKS)
    table.handle([event], plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24"])))
    assert table.links["eth0"].mtu == 1280


def test_an_mtu_change_that_changes_an_advert_is_said_at_once(tmp_path, caplog):
    """The running adverts keep their list; the next reload or rebuild sizes it
    for the new MTU, and peers that differ then drop each other's adverts. It
    was silent until it bit."""
    vips = [f"fd00::{k:x}/64" for k in range(1, 101)]
    text = (instance_text("VI_6", 61, vips, extra="    version 3\n")
            + instance_text("VI_4", 41, ["192.0.2.26/24"]))
    plan = plan_of(tmp_path, text, addresses=[])
    table = LinkTable(LINKS)
    caplog.set_level("INFO", logger="hivrrp")
    caplog.clear()                          # the build's own lines
    table.handle([("link", 2, "eth0", LINKS["eth0"].mac, True, 1280)], plan)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == ["(VI_6) interface eth0's MTU went 1500 -> 1280: from the next reload "
                        "its adverts list 76 of its 100 VIPs, not 89; its peers' must list the "
                        "same, or each drops the other's adverts"]
    assert "interface eth0: MTU 1500 -> 1280" in caplog.text


def test_the_evip_line_is_kept_to_a_few_instances_a_build(tmp_path, caplog):
    from hivrrp.daemon.plan import EVIP_LINES
    text = "".join(instance_text(f"VI_{k}", k, [f"10.{k}.{a // 250}.{a % 250}/32"
                                                  for a in range(300)])
                   for k in range(1, 21))
    caplog.set_level("INFO", logger="hivrrp")
    plan_of(tmp_path, text)
    lines = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len([line for line in lines if "excess moved to eVIPs" in line]) == EVIP_LINES
    assert any("more instances have more VIPs than an advert holds" in line for line in lines)
