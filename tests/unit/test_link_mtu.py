"""The MTU travels with a link, from the dump and from link events: how many
VIPs an advert may list depends on it (keepalived's eVIPs)."""

from helpers.plans import LINKS, instance_text, plan_of
from hivrrp.links import LinkTable
from hivrrp.netlink import Link, Netlink, _event

MAC = bytes(6)


class FakeIPRoute:
    def get_links(self):
        return [{"index": 7, "ifname": "jumbo0", "address": "02:00:00:00:00:07",
                 "flags": 0x41, "mtu": 9000},
                {"index": 8, "ifname": "odd0", "address": None, "flags": 0}]


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
    event = _event({"event": "RTM_NEWLINK", "index": 2, "ifname": "eth0",
                    "address": "00:00:00:00:00:00", "flags": 0x41, "mtu": 1280})
    assert event == ("link", 2, "eth0", MAC, True, 1280)
    table = LinkTable(LINKS)
    table.handle([event], plan_of(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24"])))
    assert table.links["eth0"].mtu == 1280
