"""Our codec against scapy's independent VRRP/VRRPv3 implementation, both ways."""

from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.utils import checksum as rfc1071

from helpers.packets import (
    ipv4,
    ipv4_dst,
    ipv4_lists,
    ipv6_dst,
    ipv6_lists,
    link_local,
    priority,
    scapy_recomputed_checksum,
    scapy_v6,
    scapy_vrrp,
    v2_interval,
    v3_interval,
    vrid,
)
from hivrrp import _wire

# ---- our encoder, read by scapy


@given(vrid=vrid, prio=priority, interval=v2_interval, addrs=ipv4_lists,
       auth_type=st.integers(0, 2), auth=st.binary(max_size=8), src=ipv4)
def test_v2_encode_read_by_scapy(vrid, prio, interval, addrs, auth_type, auth, src):
    msg = _wire.encode(version=2, vrid=vrid, priority=prio, interval=interval, addresses=addrs,
                       auth_type=auth_type, auth_data=auth)
    ip, layer = scapy_vrrp(_wire.ipv4_packet(msg, src, "224.0.0.18"))
    assert isinstance(layer, VRRP)
    assert (layer.version, layer.type, layer.vrid, layer.priority) == (2, 1, vrid, prio)
    assert (layer.ipcount, layer.adv, layer.authtype) == (len(addrs), interval, auth_type)
    assert layer.addrlist == addrs
    auth8 = auth.ljust(8, b"\0")
    assert (layer.auth1, layer.auth2) == (int.from_bytes(auth8[:4], "big"),
                                          int.from_bytes(auth8[4:], "big"))
    assert layer.chksum == scapy_recomputed_checksum(ip)
    assert ip.ttl == 255 and ip.proto == 112


@given(vrid=vrid, prio=priority, interval=v3_interval, addrs=ipv4_lists, src=ipv4, dst=ipv4_dst)
def test_v3_ipv4_pseudo_encode_read_by_scapy(vrid, prio, interval, addrs, src, dst):
    msg = _wire.encode(version=3, vrid=vrid, priority=prio, interval=interval, addresses=addrs,
                       src=src, dst=dst)
    ip, layer = scapy_vrrp(_wire.ipv4_packet(msg, src, dst))
    assert isinstance(layer, VRRPv3)
    assert (layer.version, layer.type, layer.vrid, layer.priority) == (3, 1, vrid, prio)
    assert (layer.ipcount, layer.adv, layer.res) == (len(addrs), interval, 0)
    assert layer.addrlist == addrs
    # scapy computes the v3/IPv4 checksum with the pseudo-header (RFC 5798 text).
    assert layer.chksum == scapy_recomputed_checksum(ip)


@given(vrid=vrid, prio=priority, interval=v3_interval, addrs=ipv4_lists, src=ipv4, dst=ipv4_dst)
def test_v3_ipv4_no_pseudo_encode_matches_rfc1071(vrid, prio, interval, addrs, src, dst):
    msg = _wire.encode(version=3, vrid=vrid, priority=prio, interval=interval, addresses=addrs,
                       pseudo_header=False)
    ip, layer = scapy_vrrp(_wire.ipv4_packet(msg, src, dst))
    assert layer.addrlist == addrs and layer.adv == interval
    zeroed = msg[:6] + b"\0\0" + msg[8:]
    assert layer.chksum == rfc1071(zeroed)


@given(vrid=vrid, prio=priority, interval=v3_interval, addrs=ipv6_lists, src=link_local,
       dst=ipv6_dst)
def test_v3_ipv6_encode_read_by_scapy(vrid, prio, interval, addrs, src, dst):
    msg = _wire.encode(version=3, vrid=vrid, priority=prio, interval=interval, addresses=addrs,
                       family=6, src=src, dst=dst)
    ip, layer = scapy_v6(msg, src, dst)
    assert (layer.version, layer.vrid, layer.priority, layer.adv) == (3, vrid, prio, interval)
    assert layer.addrlist == [str(IPv6(src=a).src) for a in addrs]
    assert layer.chksum == scapy_recomputed_checksum(ip)


# ---- scapy's builds, read by our decoder


@given(vrid=vrid, prio=priority, interval=v2_interval, addrs=ipv4_lists,
       auth_type=st.integers(0, 255), auth1=st.integers(0, 2**32 - 1),
       auth2=st.integers(0, 2**32 - 1), src=ipv4)
def test_scapy_v2_decoded(vrid, prio, interval, addrs, auth_type, auth1, auth2, src):
    pkt = IP(src=src, dst="224.0.0.18", ttl=255) / VRRP(
        vrid=vrid, priority=prio, adv=interval, addrlist=addrs, authtype=auth_type,
        auth1=auth1, auth2=auth2)
    advert = _wire.decode_ipv4(bytes(pkt))
    assert advert.error is None and advert.checksum == "ok"
    assert (advert.version, advert.type, advert.vrid, advert.priority) == (2, 1, vrid, prio)
    assert (advert.count, advert.interval, advert.interval_cs) == (len(addrs), interval,
                                                                   interval * 100)
    assert list(advert.addresses) == addrs
    assert advert.auth_type == auth_type
    assert advert.auth_data == auth1.to_bytes(4, "big") + auth2.to_bytes(4, "big")
    assert (advert.src, advert.dst, advert.ttl) == (src, "224.0.0.18", 255)


@given(vrid=vrid, prio=priority, interval=v3_interval, res=st.integers(0, 15),
       addrs=ipv4_lists, src=ipv4, dst=ipv4_dst)
def test_scapy_v3_ipv4_pseudo_decoded(vrid, prio, interval, res, addrs, src, dst):
    pkt = IP(src=src, dst=dst, ttl=255) / VRRPv3(vrid=vrid, priority=prio, adv=interval, res=res,
                                                 addrlist=addrs)
    advert = _wire.decode_ipv4(bytes(pkt))
    assert advert.error is None and advert.checksum == "ok-pseudo"
    # The 4 reserved bits are masked off the interval.
    assert (advert.version, advert.vrid, advert.priority, advert.interval) == (3, vrid, prio,
                                                                               interval)
    assert list(advert.addresses) == addrs and advert.auth_type is None


@given(vrid=vrid, prio=priority, interval=v3_interval, addrs=ipv4_lists, src=ipv4, dst=ipv4_dst)
def test_scapy_v3_ipv4_without_pseudo_header_decoded(vrid, prio, interval, addrs, src, dst):
    unchecked = VRRPv3(vrid=vrid, priority=prio, adv=interval, addrlist=addrs, chksum=0)
    message = bytes(IP(src=src, dst=dst) / unchecked)[20:]
    plain = rfc1071(message)  # the RFC 9568 reading: the message alone
    pkt = IP(src=src, dst=dst, ttl=255) / VRRPv3(vrid=vrid, priority=prio, adv=interval,
                                                 addrlist=addrs, chksum=plain)
    advert = _wire.decode_ipv4(bytes(pkt))
    assert advert.error is None
    with_pseudo = scapy_recomputed_checksum(IP(bytes(pkt)))
    # Both readings coincide only when the pseudo-header sums to zero.
    assert advert.checksum == ("ok-pseudo" if with_pseudo == plain else "ok-no-pseudo")


@given(vrid=vrid, prio=priority, interval=v3_interval, addrs=ipv6_lists, src=link_local,
       dst=ipv6_dst)
def test_scapy_v3_ipv6_decoded(vrid, prio, interval, addrs, src, dst):
    pkt = IPv6(src=src, dst=dst, hlim=255) / VRRPv3(vrid=vrid, priority=prio, adv=interval,
                                                     addrlist=addrs)
    raw = bytes(pkt)
    advert = _wire.decode_ipv6(raw[40:], src, dst, 255)
    assert advert.error is None and advert.checksum == "ok"
    assert (advert.version, advert.vrid, advert.priority, advert.interval) == (3, vrid, prio,
                                                                               interval)
    assert list(advert.addresses) == [str(IPv6(src=a).src) for a in addrs]
    # The same payload checked against another destination must fail: the
    # pseudo-header really covers the destination (keepalived #642).
    other = "ff02::12" if dst != "ff02::12" else "fd00::1"
    assert _wire.decode_ipv6(raw[40:], src, other, 255).error == "checksum"
