"""Pull VRRP datagrams out of pcap/pcapng captures.

scapy's raw readers handle the file formats (pcapng with one link type per
interface, as `tcpdump -i any` writes). The link and IP headers are taken
apart here rather than with scapy's dissectors because the codec must see the
exact bytes on the wire: re-serialised packets would hide checksum errors.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

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


class CaptureError(Exception):
    """The capture file cannot be read (missing, not a capture, corrupt)."""


@dataclass(frozen=True, slots=True)
class Datagram:
    """An IP datagram with protocol 112, shaped as our raw sockets deliver it."""

    time: float
    family: int
    data: bytes  # IPv4: whole IP packet; IPv6: the VRRP payload
    src: bytes | None = None  # IPv6 only
    dst: bytes | None = None  # IPv6 only
    hoplimit: int = 0  # IPv6 only


def read_vrrp(path: str) -> Iterator[Datagram]:
    """Yield every protocol-112 datagram in the capture at path, in order."""
    try:
        import scapy.utils  # noqa: F401
    except ImportError:
        raise CaptureError(
            "reading captures needs scapy: pip install 'hivrrp[pcap]'"
        ) from None
    # scapy reports a damaged pcapng block only as a log warning and then
    # stops as if at the end of the file: collect those and fail loudly.
    damage = _WarningCollector()
    scapy_log = logging.getLogger("scapy.runtime")
    scapy_log.addHandler(damage)
    scapy_log.propagate = False
    try:
        yield from _read(path, damage)
    finally:
        scapy_log.removeHandler(damage)


class _WarningCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _read(path: str, damage: _WarningCollector) -> Iterator[Datagram]:
    from scapy.error import Scapy_Exception
    from scapy.utils import RawPcapNgReader, RawPcapReader

    try:
        reader = RawPcapReader(path)
    except OSError as exc:
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None
    except (Scapy_Exception, EOFError, ValueError) as exc:
        raise CaptureError(f"{path}: not a pcap or pcapng capture ({exc})") from None
    with reader:
        is_ng = isinstance(reader, RawPcapNgReader)
        try:
            for frame, meta in reader:
                if is_ng:
                    linktype = meta.linktype
                    ticks = ((meta.tshigh or 0) << 32) | (meta.tslow or 0)
                    time = ticks / meta.tsresol
                else:
                    if len(frame) < meta.caplen:
                        raise CaptureError(f"{path}: truncated capture (last record cut short)")
                    linktype = reader.linktype
                    time = meta.sec + meta.usec / (1e9 if reader.nano else 1e6)
                datagram = _from_frame(frame, linktype, time)
                if datagram is not None:
                    yield datagram
        except (Scapy_Exception, ValueError, OSError, IndexError) as exc:
            raise CaptureError(f"{path}: corrupt capture ({exc})") from None
    if damage.messages:
        raise CaptureError(f"{path}: corrupt capture ({damage.messages[0]})")


def _from_frame(frame: bytes, linktype: int, time: float) -> Datagram | None:
    ip = _ip_payload(frame, linktype)
    if not ip:
        return None
    version = ip[0] >> 4
    if version == 4:
        if len(ip) < 20 or ip[9] != VRRP_PROTO:
            return None
        return Datagram(time, 4, bytes(ip))
    if version == 6:
        return _from_ipv6(ip, time)
    return None


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


def _from_ipv6(ip: bytes, time: float) -> Datagram | None:
    if len(ip) < 40:
        return None
    payload_len = int.from_bytes(ip[4:6], "big")
    next_header, offset = ip[6], 40
    end = min(len(ip), 40 + payload_len)  # drop link-layer padding
    for _ in range(8):  # bounded: real packets carry a handful of extension headers
        if next_header == VRRP_PROTO:
            return Datagram(time, 6, bytes(ip[offset:end]), src=bytes(ip[8:24]),
                            dst=bytes(ip[24:40]), hoplimit=ip[7])
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
