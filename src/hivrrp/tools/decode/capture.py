"""Pull VRRP datagrams out of pcap/pcapng captures.

The file formats are pcapfile's; the link and IP headers are taken apart here
on the exact bytes of the capture: the codec must see what was on the wire,
checksum errors and all.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from hivrrp.tools.decode.pcapfile import CaptureError, frames

__all__ = ["CaptureError", "Datagram", "read_vrrp"]

VRRP_PROTO = 112

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = (12, 14, 101)  # 12 and 14 are the raw-IP values of some BSDs
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = (0x8100, 0x88A8, 0x9100)

# IPv6 extension headers that may sit between the fixed header and VRRP.
IPV6_EXT_HEADERS = {0, 43, 60}
IPV6_FRAGMENT = 44
IPV6_AH = 51


@dataclass(frozen=True, slots=True)
class Datagram:
    """An IP datagram with protocol 112, shaped as our raw sockets deliver it."""

    time: float | None
    family: int
    data: bytes  # IPv4: whole IP packet; IPv6: the VRRP payload
    src: bytes | None = None  # IPv6 only
    dst: bytes | None = None  # IPv6 only
    hoplimit: int = 0  # IPv6 only
    interface: str | None = None  # where it was captured, when the file says (pcapng)


def read_vrrp(path: str) -> Iterator[Datagram]:
    """Yield every protocol-112 datagram in the capture at path, in order."""
    for frame in frames(path):
        datagram = _from_frame(frame.data, frame.linktype, frame.time, frame.interface)
        if datagram is not None:
            yield datagram


def _from_frame(frame: bytes, linktype: int, time: float | None,
                interface: str | None) -> Datagram | None:
    ip = _ip_payload(frame, linktype)
    if not ip:
        return None
    version = ip[0] >> 4
    if version == 4:
        if len(ip) < 20 or ip[9] != VRRP_PROTO:
            return None
        return Datagram(time, 4, bytes(ip), interface=interface)
    if version == 6:
        return _from_ipv6(ip, time, interface)
    return None


def ipv4_checksum_ok(ip: bytes) -> bool:
    """The IPv4 header checksum, which the kernel's ip_rcv() checks: a packet
    that fails never reaches a raw socket, nor any VRRP daemon. (A header too
    short to hold its IHL is left to the engine, which says ip_header.)"""
    ihl = (ip[0] & 0x0F) * 4 if ip else 0
    if ihl < 20 or len(ip) < ihl:
        return True
    total = sum(int.from_bytes(ip[i:i + 2], "big") for i in range(0, ihl, 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total == 0xFFFF


def _ip_payload(frame: bytes, linktype: int) -> bytes | None:
    """The IP packet inside a link-layer frame, or None for anything else."""
    if linktype in LINKTYPE_RAW or linktype in (LINKTYPE_IPV4, LINKTYPE_IPV6):
        return frame
    if linktype == LINKTYPE_ETHERNET:
        offset, ethertype = 12, None
        while len(frame) >= offset + 2:
            ethertype = int.from_bytes(frame[offset : offset + 2], "big")
            if ethertype not in ETHERTYPE_VLAN:
                break
            offset += 4
        return frame[offset + 2 :] if ethertype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6) else None
    if linktype == LINKTYPE_LINUX_SLL:
        header, proto_at = 16, 14
    elif linktype == LINKTYPE_LINUX_SLL2:
        header, proto_at = 20, 0
    else:
        return None
    if len(frame) < header:
        return None
    ethertype = int.from_bytes(frame[proto_at : proto_at + 2], "big")
    return frame[header:] if ethertype in (ETHERTYPE_IPV4, ETHERTYPE_IPV6) else None


def _from_ipv6(ip: bytes, time: float | None, interface: str | None) -> Datagram | None:
    if len(ip) < 40:
        return None
    payload_len = int.from_bytes(ip[4:6], "big")
    next_header, offset = ip[6], 40
    end = min(len(ip), 40 + payload_len)  # drop link-layer padding
    for _ in range(8):  # bounded: real packets carry a handful of extension headers
        if next_header == VRRP_PROTO:
            return Datagram(time, 6, bytes(ip[offset:end]), src=bytes(ip[8:24]),
                            dst=bytes(ip[24:40]), hoplimit=ip[7], interface=interface)
        if offset + 8 > end or next_header == IPV6_FRAGMENT:
            return None  # fragments of VRRP do not exist in a sane network
        if next_header in IPV6_EXT_HEADERS:
            length = (ip[offset + 1] + 1) * 8
        elif next_header == IPV6_AH:
            length = (ip[offset + 1] + 2) * 4
        else:
            return None
        next_header, offset = ip[offset], offset + length
    return None
