"""rtnetlink framing for the places that talk netlink without pyroute2: the
VIP batcher (hivrrp.kernel.addrbatch), the VMACs' requests (vmacnl), the
nftables messages' attributes (nftables), the link and address monitor
(netlink.Monitor) and the lab's address counter (hivrrp.tools.lab.nsaddr). Each says why it does not use pyroute2."""

from __future__ import annotations

import struct
from collections.abc import Iterator

NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400        # in new-object requests
NLM_F_ACK_TLVS = 0x200                         # in error messages: extended ack follows

HEADER = struct.Struct("=IHHII")               # nlmsghdr: len, type, flags, seq, pid
IFADDRMSG = struct.Struct("=BBBBi")            # family, prefixlen, flags, scope, index
IFINFOMSG = struct.Struct("=BxHiII")           # family, type, index, flags, change
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU = 1, 3, 4
ARPHRD_ETHER = 1                               # ifinfomsg's type of an Ethernet link
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFA_F_NODAD = 0x02
ATTR = struct.Struct("=HH")                    # rtattr: len, type


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes (rtnetlink's and nfnetlink's alike)."""
    length = ATTR.size + len(payload)
    return ATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


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
