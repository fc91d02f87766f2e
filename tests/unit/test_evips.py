"""More VIPs than fit in an advert: keepalived's eVIPs.

keepalived 2.2.7 lists the first N VIPs in its adverts (N = 255, or fewer by
the interface's MTU) and keeps the rest on the interface unadvertised; a peer
compares the list it receives with its own first N. hivrrp does the same, so a
config `check` accepts runs, and two peers with the same config (hivrrp or
keepalived) accept each other's adverts.
"""

from __future__ import annotations

import logging

import pytest
from hivrrp._wire import Reason, RxBatch, advert_room, decode_ipv4, decode_ipv6, ipv4_packet

from helpers.plans import LINKS, instance_text, plan_of
from hivrrp.kernel.netlink import Address, Link

SECOND = 1_000_000
EVIP_LINE = ("(VI_1) Number of VIPs (1000) exceeds maximum/space available in packet "
             "(max 255 addresses) - excess moved to eVIPs")
PASS = "    authentication {\n        auth_type PASS\n        auth_pass secret\n    }\n"


def v4(n: int) -> list[str]:
    return [f"10.{1 + k // 65025}.{k // 255 % 255}.{k % 255 + 1}" for k in range(n)]


def v6(n: int) -> list[str]:
    return [f"fd00::1:{k + 1:x}" for k in range(n)]


def conf(vips, *, priority=100, version=2) -> str:
    auth = PASS if version == 2 else ""
    return instance_text("VI_1", 51, [f"{v}/{'24' if ':' not in v else '64'}" for v in vips],
                         priority=priority, extra=f"    version {version}\n{auth}")


# keepalived's vrrp_complete_instance(): (mtu - Ethernet 14 - IP header - VRRP 8
# [- v2 auth 8]) // address size, at most 255.
@pytest.mark.parametrize("family, version, mtu, room", [
    (4, 2, 1500, 255), (4, 3, 1500, 255), (6, 3, 1500, 89), (6, 3, 1280, 76),
    (6, 3, 9000, 255), (4, 2, 576, 131), (4, 3, 576, 133), (4, 2, 68, 4), (4, 3, 68, 6),
    (6, 3, 0, 89),   # a link that reports no MTU: keepalived's default 1500
])
def test_advert_room_is_keepalived_s(family, version, mtu, room):
    assert advert_room(family, version, mtu) == room


def test_the_first_255_are_advertised_and_all_1000_go_on_the_interface(tmp_path, caplog):
    vips = v4(1000)
    with caplog.at_level(logging.WARNING, logger="hivrrp"):
        plan = plan_of(tmp_path, conf(vips, priority=255))
    assert [r.getMessage() for r in caplog.records if "eVIPs" in r.getMessage()] == [EVIP_LINE]
    assert [c.address for c in plan.instances["VI_1"].vips] == vips
    plan.engine.start_all(0)
    [(_, _, _, _, _, message)] = plan.engine.tx_packets()
    advert = decode_ipv4(ipv4_packet(message, "192.0.2.1", "224.0.0.18"))
    assert advert.reason == Reason.OK and advert.count == 255
    assert advert.addresses == tuple(vips[:255])


@pytest.mark.parametrize("mtu, room", [(1500, 89), (1280, 76), (9000, 200)])
def test_ipv6_room_follows_the_mtu_the_link_has_at_build(tmp_path, mtu, room):
    vips = v6(200)
    links = {"eth0": Link(2, "eth0", bytes(6), True, mtu)}
    plan = plan_of(tmp_path, conf(vips, priority=255, version=3), links=links,
                   addresses=[Address(2, 6, "fe80::1", 64, 253)])
    plan.engine.start_all(0)
    [(_, _, _, src, dst, message)] = plan.engine.tx_packets()
    advert = decode_ipv6(message, src, dst, 255)
    assert advert.reason == Reason.OK and advert.addresses == tuple(vips[:room])
    assert len(plan.instances["VI_1"].vips) == 200


def advert_from(tmp_path, vips, source: str, *, version=2) -> bytes:
    """What a master with priority 255 and these VIPs sends first, as an IPv4 datagram."""
    plan = plan_of(tmp_path, conf(vips, priority=255, version=version),
                   addresses=[Address(2, 4, source, 24, 0)])
    plan.engine.start_all(0)
    [(_, _, _, src, dst, message)] = plan.engine.tx_packets()
    return ipv4_packet(message, src, dst)


def received(tmp_path, vips, datagram: bytes, *, version=2) -> dict:
    """The counters of a backup with these VIPs once it got `datagram`."""
    plan = plan_of(tmp_path, conf(vips, version=version))
    plan.engine.start_all(0)
    batch = RxBatch(1)
    batch.add_ipv4(datagram, ifindex=LINKS["eth0"].index)
    plan.engine.receive(batch, SECOND)
    counters = plan.engine.counters(0)
    return {k: counters[k] for k in ("adverts_received", "address_list_errors")}


@pytest.mark.parametrize("version", [2, 3])
def test_peers_with_the_same_1000_vips_accept_each_other(tmp_path, version):
    vips = v4(1000)
    datagram = advert_from(tmp_path / "a", vips, "192.0.2.2", version=version)
    assert received(tmp_path / "b", vips, datagram, version=version) == {
        "adverts_received": 1, "address_list_errors": 0}


@pytest.mark.parametrize("ours, theirs", [
    (v4(3), v4(255)),             # more addresses than we have: as before
    (v4(1000), v4(1000)[1:]),     # another first 255 (a peer that orders its VIPs otherwise)
    (v4(1000), v4(254)),          # a peer with one VIP fewer in the advert
])
def test_an_advert_with_another_list_is_an_address_list_error(tmp_path, ours, theirs):
    datagram = advert_from(tmp_path / "a", theirs, "192.0.2.2")
    assert received(tmp_path / "b", ours, datagram) == {
        "adverts_received": 0, "address_list_errors": 1}
