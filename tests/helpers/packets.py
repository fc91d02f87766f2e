"""Hypothesis strategies and oracles shared by the codec tests."""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.vrrp import VRRP, VRRPv3

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
link_local = st.integers(1, 2**64 - 1).map(lambda n: str(ipaddress.IPv6Address((0xFE80 << 112) | n)))
vrid = st.integers(1, 255)
priority = st.integers(0, 255)
v2_interval = st.integers(1, 255)
v3_interval = st.integers(1, 4095)
ipv4_lists = st.lists(ipv4, min_size=1, max_size=20)
ipv6_lists = st.lists(ipv6, min_size=1, max_size=12)
# Multicast group, or a unicast peer: the pseudo-header uses the real destination.
ipv4_dst = st.one_of(st.just("224.0.0.18"), ipv4)
ipv6_dst = st.one_of(st.just("ff02::12"), ipv6)


def scapy_vrrp(packet: bytes):
    """Parse an IPv4 datagram with scapy and return its VRRP layer."""
    ip = IP(packet)
    layer = ip.getlayer(VRRPv3) or ip.getlayer(VRRP)
    assert layer is not None, ip.show(dump=True)
    return ip, layer


def scapy_v6(payload: bytes, src: str, dst: str):
    ip = IPv6(src=src, dst=dst, nh=112, hlim=255, plen=len(payload)) / payload
    parsed = IPv6(bytes(ip))
    return parsed, parsed[VRRPv3]


def scapy_recomputed_checksum(ip_packet) -> int:
    """Let scapy compute the checksum of a parsed packet from scratch."""
    clone = ip_packet.copy()
    layer = clone.getlayer(VRRPv3) or clone.getlayer(VRRP)
    layer.chksum = None
    rebuilt = type(clone)(bytes(clone))
    return (rebuilt.getlayer(VRRPv3) or rebuilt.getlayer(VRRP)).chksum
