"""Link types and file formats the capture reader understands (frames built by scapy)."""

import struct

from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, CookedLinux, Dot1AD, Dot1Q, Ether
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.packet import Raw
from scapy.utils import wrpcap

from hivrrp import _wire
from hivrrp.tools.decode.capture import read_vrrp

V4 = IP(src="192.0.2.1", dst="224.0.0.18", ttl=255) / VRRP(vrid=1, addrlist=["192.0.2.9"])
V6 = IPv6(src="fe80::1", dst="ff02::12", hlim=255) / VRRPv3(vrid=2, addrlist=["fd00::9"])
NOISE = [Ether() / ARP(), Ether() / IP(dst="192.0.2.7") / UDP(dport=53),
         Ether() / IPv6(dst="fd00::7") / UDP(dport=53)]


def decode_all(path):
    out = []
    for d in read_vrrp(str(path)):
        advert = (_wire.decode_ipv4(d.data) if d.family == 4
                  else _wire.decode_ipv6(d.data, d.src, d.dst, d.hoplimit))
        out.append((advert.error, advert.vrid, advert.src))
    return out


def test_ethernet_with_vlan_tags_and_noise(tmp_path):
    path = tmp_path / "eth.pcap"
    frames = [NOISE[0], Ether() / Dot1Q(vlan=10) / V4, NOISE[1],
              Ether() / Dot1AD(vlan=20) / Dot1Q(vlan=30) / V6, NOISE[2]]
    wrpcap(str(path), frames)
    assert decode_all(path) == [(None, 1, "192.0.2.1"), (None, 2, "fe80::1")]


def test_linux_cooked_v1(tmp_path):
    path = tmp_path / "sll.pcap"
    wrpcap(str(path), [CookedLinux(proto=0x0800) / V4, CookedLinux(proto=0x86DD) / V6])
    assert decode_all(path) == [(None, 1, "192.0.2.1"), (None, 2, "fe80::1")]


def test_raw_ip_link_type(tmp_path):
    path = tmp_path / "raw.pcap"
    wrpcap(str(path), [V4, V6], linktype=101)
    assert decode_all(path) == [(None, 1, "192.0.2.1"), (None, 2, "fe80::1")]


def test_ipv6_extension_header_and_ethernet_padding(tmp_path):
    path = tmp_path / "ext.pcap"
    padded = bytes(Ether() / V4) + b"\0" * 8
    # scapy fills VRRPv3 fields only right above IPv6, so the payload is ours.
    payload = _wire.encode(version=3, vrid=3, priority=100, interval=100, family=6,
                           addresses=["fd00::3"], src="fe80::1", dst="ff02::12")
    wrpcap(str(path), [Ether() / IPv6(src="fe80::1", dst="ff02::12", hlim=255) /
                       IPv6ExtHdrHopByHop(nh=112) / Raw(payload), Ether(padded)])
    assert decode_all(path) == [(None, 3, "fe80::1"), (None, 1, "192.0.2.1")]


def pcapng(interfaces, packets):
    """A little-endian pcapng file: one IDB per link type, EPBs as (interface, frame).

    Hand-built because scapy's writer allows one link type per file, which is
    exactly the case (`tcpdump -i any` beside Ethernet) this test is about.
    """
    def block(kind, body):
        body += b"\0" * (-len(body) % 4)
        return struct.pack("<II", kind, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    out = block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))
    for linktype in interfaces:
        out += block(1, struct.pack("<HHI", linktype, 0, 65535))
    for ts, (interface, frame) in enumerate(packets):
        out += block(6, struct.pack("<IIIII", interface, 0, ts, len(frame), len(frame)) + frame)
    return out


def test_pcapng_with_interfaces_of_different_link_types(tmp_path):
    path = tmp_path / "multi.pcapng"
    path.write_bytes(pcapng([1, 113], [(0, bytes(Ether() / V4)),
                                       (1, bytes(CookedLinux(proto=0x86DD) / V6)),
                                       (0, bytes(Ether() / V6))]))
    assert decode_all(path) == [(None, 1, "192.0.2.1"), (None, 2, "fe80::1"),
                                (None, 2, "fe80::1")]


def test_broken_vrrp_inside_a_capture_is_reported_not_skipped(tmp_path):
    path = tmp_path / "bad.pcap"
    broken = bytearray(bytes(Ether() / V4))
    broken[-1] ^= 0xFF  # last auth byte: checksum no longer matches
    wrpcap(str(path), [Ether(bytes(broken))])
    assert decode_all(path) == [("checksum", 1, "192.0.2.1")]
