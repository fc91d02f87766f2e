"""rtnetlink framing for the places that talk netlink without pyroute2: the
VIP batcher (hivrrp.kernel.addrbatch), the VMACs' requests (vmacnl), the link
and address monitor (netlink.Monitor) and the lab's address counter
(hivrrp.tools.lab.nsaddr). Each says why it does not use pyroute2."""

from __future__ import annotations

import struct
from collections.abc import Iterator

NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400        # in new-object requests
NLM_F_ACK_TLVS = 0x200                         # in error messages: extended ack follows

HEADER = struct.Struct("=IHHII")               # nlmsghdr: len, type, flags, seq, pid
IFADDRMSG = struct.Struct("=BBBBi")            # family, prefixlen, flags, scope, index
ATTR = struct.Struct("=HH")                    # rtattr: len, type


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return HEADER.pack(HEADER.size + len(body), kind, flags, seq & 0xFFFFFFFF, 0) + body


def messages(data: bytes) -> Iterator[tuple[int, int, int, bytes]]:
    """(type, flags, seq, body) of each message in a datagram; stops at a malformed one."""
    offset = 0
    while offset + HEADER.size <= len(data):
        length, kind, flags, seq, _pid = HEADER.unpack_from(data, offset)
        if length < HEADER.size or offset + length > len(data):
            return
        yield kind, flags, seq, data[offset + HEADER.size:offset + length]
        offset += (length + 3) & ~3


def attributes(data: bytes, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    """(type without the nested/byte-order flags, payload) of each rtattr from
    `offset`; stops at a malformed one."""
    while offset + ATTR.size <= len(data):
        length, kind = ATTR.unpack_from(data, offset)
        if length < ATTR.size or offset + length > len(data):
            return
        yield kind & 0x3FFF, data[offset + ATTR.size:offset + length]
        offset += (length + 3) & ~3
