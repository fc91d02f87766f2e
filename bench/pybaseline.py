"""A straightforward pure-Python VRRP decoder/refresher: the baseline bench/codec.py
compares the Cython codec with. Same checks, idiomatic struct code, no tricks."""

from __future__ import annotations

import struct

_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_VRRP = struct.Struct("!BBBBBBH")


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def decode_ipv4(packet: bytes) -> tuple[str, dict | None]:
    if len(packet) < 20:
        return "length", None
    ver_ihl, _tos, total, _id, _frag, ttl, proto, _sum, src, dst = _IPV4.unpack_from(packet)
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or ihl < 20 or total < ihl:
        return "ip_header", None
    if len(packet) < total:
        return "length", None
    if proto != 112:
        return "protocol", None
    if ttl != 255:
        return "ttl", None
    msg = packet[ihl:total]
    if len(msg) < 8:
        return "length", None
    ver_type, vrid, prio, count, b4, b5, _ck = _VRRP.unpack_from(msg)
    version = ver_type >> 4
    if version == 2:
        expected = 16 + 4 * count
        interval = b5
    elif version == 3:
        expected = 8 + 4 * count
        interval = ((b4 << 8) | b5) & 0x0FFF
    else:
        return "version", None
    if ver_type & 0x0F != 1:
        return "type", None
    if len(msg) != expected:
        return "length", None
    total_sum = checksum(msg)
    if version == 3 and total_sum != 0xFFFF:
        total_sum = checksum(src + dst + struct.pack("!BBH", 0, 112, len(msg)) + msg)
    if total_sum != 0xFFFF:
        return "checksum", None
    if vrid == 0:
        return "vrid", None
    if interval == 0:
        return "interval", None
    addrs = [msg[8 + 4 * i : 12 + 4 * i] for i in range(count)]
    return "ok", {"version": version, "vrid": vrid, "priority": prio, "interval": interval,
                  "addresses": addrs}


def refresh(message: bytearray, priority: int, interval: int) -> None:
    """Rewrite priority/interval of a v2 message and recompute its checksum."""
    message[2] = priority
    message[5] = interval
    message[6:8] = b"\0\0"
    message[6:8] = struct.pack("!H", ~checksum(bytes(message)) & 0xFFFF)
