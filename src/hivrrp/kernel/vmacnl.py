"""The netlink messages of VMACs: link requests encoded, link dumps decoded,
and requests sent in batches with every failure reported.

Encoded by hand, as the VIP batcher (addrbatch.py) is, and for the same
reason: a thousand VMACs are four thousand link requests. pyroute2 spent
hundreds of microseconds of Python on each, one round trip at a time, while
these are a few struct.pack calls and go to the kernel 256 to a sendmsg, which
answers only failures plus one acknowledgement per batch. keepalived sends one
request at a time and then reads the netlink socket (kernel_netlink_poll) so
that it does not overrun; here nothing is waiting to be read but the answers.

The requests that configure a VMAC name it by index, learnt from a dump after
the creating batch: by name, a failed creation (the name taken meanwhile)
would have had them change someone else's link.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from dataclasses import dataclass

from hivrrp.kernel.addrbatch import errors, request_socket
from hivrrp.kernel.rtnl import (
    IFA_F_NODAD,
    IFA_LOCAL,
    IFADDRMSG,
    IFINFOMSG,
    IFLA_ADDRESS,
    IFLA_IFNAME,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_DUMP,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_DELLINK,
    RTM_GETLINK,
    RTM_NEWADDR,
    RTM_NEWLINK,
    attr,
    attributes,
    message,
    messages,
)

IFF_UP, IFF_RUNNING = 0x1, 0x40
ARPHRD_ETHER = 1

IFLA_LINK, IFLA_MASTER = 5, 10
IFLA_LINKINFO, IFLA_AF_SPEC, IFLA_GROUP, IFLA_LINK_NETNSID = 18, 26, 27, 37
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_MACVLAN_MODE = 1
MACVLAN_MODE_PRIVATE = 1
IFLA_INET_CONF = 1
IFLA_INET6_CONF, IFLA_INET6_ADDR_GEN_MODE = 2, 8
IN6_ADDR_GEN_MODE_NONE = 1
DEVCONF6_DISABLE_IPV6 = 26                    # index in IFLA_INET6_CONF (linux/ipv6.h)
IFA_CACHEINFO, IFA_FLAGS = 6, 8
INFINITY_LIFE_TIME = 0xFFFFFFFF

# IPv4 devconf settings by their IFLA_INET_CONF index (linux/ip.h IPV4_DEVCONF_*).
DEVCONF = {"rp_filter": 8, "arp_filter": 13, "arp_ignore": 19, "promote_secondaries": 20,
           "accept_local": 23}

BATCH = 256                    # requests per sendmsg
RECEIVE_BUFFER = 4 << 20
ACK_TIMEOUT = 10.0             # seconds for the kernel to answer one batch (creating links)
DUMP_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What the VMAC policy needs to know of one link."""
    index: int
    name: str
    mac: bytes
    up: bool                      # administratively
    running: bool                 # and the carrier with it (the Link.up of netlink.py)
    ether: bool                   # hardware type Ethernet
    kind: str | None = None       # "macvlan", "veth", ... (None: a plain device)
    mode: int | None = None       # macvlan mode
    parent: int = 0               # IFLA_LINK in this namespace, 0: none
    master: int = 0               # IFLA_MASTER (a VRF, a bridge)
    group: int = 0
    ipv4: tuple[int, ...] = ()    # IPv4 devconf values by IPV4_DEVCONF_* index - 1
    disable_ipv6: int | None = None
    addrgen: int | None = None    # IPv6 address generation mode

    def devconf(self, name: str) -> int | None:
        index = DEVCONF[name] - 1
        return self.ipv4[index] if index < len(self.ipv4) else None


# ------------------------------------------------------------------ encoding

def _u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def _name(name: str) -> bytes:
    return attr(IFLA_IFNAME, name.encode() + b"\0")


Request = tuple[int, int, bytes]          # (type, flags, body): the batch gives the sequence


def create_macvlan(name: str, parent: int, mac: bytes, master: int = 0,
                   group: int = 0) -> Request:
    """A private-mode macvlan on `parent` (keepalived's netlink_link_add_vmac).
    Private: frames from a host with our MAC (the peer's VMAC) reach only it."""
    info = attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"macvlan")
                 + attr(IFLA_INFO_DATA, _u32(IFLA_MACVLAN_MODE, MACVLAN_MODE_PRIVATE)))
    body = (IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + info + _u32(IFLA_LINK, parent)
            + _name(name) + attr(IFLA_ADDRESS, mac))
    if master:
        body += _u32(IFLA_MASTER, master)
    if group:
        body += _u32(IFLA_GROUP, group)
    return RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body


def update_macvlan(index: int, mac: bytes) -> Request:
    """An existing macvlan put right: private mode, our MAC."""
    info = attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"macvlan")
                 + attr(IFLA_INFO_DATA, _u32(IFLA_MACVLAN_MODE, MACVLAN_MODE_PRIVATE)))
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0) + info + attr(IFLA_ADDRESS, mac)
    return RTM_NEWLINK, 0, body


def addrgen_none(index: int) -> Request:
    """No IPv6 address generation on a link (no link-local from its MAC).

    A request of its own, not with the IPv4 devconf: on a link without IPv6
    (MTU below 1280, ipv6.disable=1) the kernel refuses the AF_INET6 part
    (EAFNOSUPPORT) and the whole request with it, as keepalived, which sets
    them apart, does not. Not in the creating request: the kernel ignores
    IFLA_AF_SPEC there."""
    spec = attr(socket.AF_INET6, attr(IFLA_INET6_ADDR_GEN_MODE,
                                        bytes([IN6_ADDR_GEN_MODE_NONE])))
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0) + attr(IFLA_AF_SPEC, spec)
    return RTM_NEWLINK, 0, body


def devconf(index: int, values: dict[str, int]) -> Request:
    """IPv4 devconf of an existing link by index (a VMAC's, its parent's,
    rp_filter): netlink, as keepalived's netlink_set_interface_flags, no
    /proc/sys write."""
    spec = attr(socket.AF_INET, attr(IFLA_INET_CONF, b"".join(
        _u32(DEVCONF[key], value) for key, value in values.items())))
    body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0) + attr(IFLA_AF_SPEC, spec)
    return RTM_NEWLINK, 0, body


def set_up(index: int) -> Request:
    """Up, after the address generation mode: up first would give the VMAC a
    link-local address made from its MAC (RFC 9568 7.4 wants none)."""
    return RTM_NEWLINK, 0, IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)


def delete(index: int) -> Request:
    return RTM_DELLINK, 0, IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0)


def set_group(index: int, group: int) -> Request:
    return RTM_NEWLINK, 0, IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, 0, 0) + _u32(IFLA_GROUP,
                                                                                     group)


def delete_group(group: int) -> Request:
    """Every link of a link group, deleted in one request (`ip link delete
    group N`): the kernel waits out one RCU grace period for them all, where
    one request per link waits one each (~16 ms: 1,000 VMACs ~16 s)."""
    return RTM_DELLINK, 0, IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0) + _u32(IFLA_GROUP, group)


def link_local(index: int, address: str) -> Request:
    """The IPv6 source address on a VMAC as keepalived adds it: /64, no DAD,
    deprecated (preferred lifetime 0) so the kernel never picks it on its own."""
    packed = socket.inet_pton(socket.AF_INET6, address)
    cache = struct.pack("=IIII", 0, INFINITY_LIFE_TIME, 0, 0)
    body = (IFADDRMSG.pack(socket.AF_INET6, 64, IFA_F_NODAD, 253, index)
            + attr(IFA_LOCAL, packed) + attr(IFA_CACHEINFO, cache)
            + _u32(IFA_FLAGS, IFA_F_NODAD))
    return RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, body


# ------------------------------------------------------------------ decoding

def _text(payload: bytes) -> str:
    return payload.split(b"\0", 1)[0].decode(errors="replace")


def _int(payload: bytes) -> int:
    return struct.unpack_from("=I", payload)[0] if len(payload) >= 4 else 0


def decode_link(body: bytes) -> LinkInfo | None:
    if len(body) < IFINFOMSG.size:
        return None
    _family, hwtype, index, flags, _change = IFINFOMSG.unpack_from(body)
    name, mac, kind, mode = "", b"", None, None
    parent = master = group = 0
    ipv4: tuple[int, ...] = ()
    disable = addrgen = None
    other_namespace = False
    for key, payload in attributes(body, IFINFOMSG.size):
        if key == IFLA_IFNAME:
            name = _text(payload)
        elif key == IFLA_ADDRESS:
            mac = bytes(payload)
        elif key == IFLA_LINK:
            parent = _int(payload)
        elif key == IFLA_LINK_NETNSID:
            other_namespace = True
        elif key == IFLA_MASTER:
            master = _int(payload)
        elif key == IFLA_GROUP:
            group = _int(payload)
        elif key == IFLA_LINKINFO:
            for sub, value in attributes(payload):
                if sub == IFLA_INFO_KIND:
                    kind = _text(value)
                elif sub == IFLA_INFO_DATA:
                    for item, data in attributes(value):
                        if item == IFLA_MACVLAN_MODE:
                            mode = _int(data)
        elif key == IFLA_AF_SPEC:
            for family, value in attributes(payload):
                for item, data in attributes(value):
                    if family == socket.AF_INET and item == IFLA_INET_CONF:
                        ipv4 = struct.unpack(f"={len(data) // 4}I", data[:len(data) // 4 * 4])
                    elif family == socket.AF_INET6 and item == IFLA_INET6_CONF:
                        if len(data) >= 4 * (DEVCONF6_DISABLE_IPV6 + 1):
                            disable = struct.unpack_from("=i", data, 4 * DEVCONF6_DISABLE_IPV6)[0]
                    elif family == socket.AF_INET6 and item == IFLA_INET6_ADDR_GEN_MODE:
                        addrgen = data[0] if data else None
    return LinkInfo(index, name, mac, bool(flags & IFF_UP),
                    bool(flags & IFF_UP) and bool(flags & IFF_RUNNING), hwtype == ARPHRD_ETHER,
                    kind, mode,
                    0 if other_namespace else parent, master, group, ipv4, disable, addrgen)


# ------------------------------------------------------------------ the socket

class LinkBatcher:
    """A NETLINK_ROUTE socket of its own; used from one thread (netlink's)."""

    def __init__(self) -> None:
        self.sock = request_socket(RECEIVE_BUFFER)
        self.seq = int.from_bytes(os.urandom(3), "big")

    def links(self) -> dict[str, LinkInfo]:
        """Every link of the namespace (one dump), by name."""
        seq, self.seq = self.seq, (self.seq + 1) & 0xFFFFFFFF
        self.sock.send(message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, seq,
                               IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)))
        out: dict[str, LinkInfo] = {}
        deadline = time.monotonic() + DUMP_TIMEOUT
        while True:
            data = self._receive(deadline)
            for kind, _flags, got, body in messages(data):
                if got != seq:
                    continue                   # a late answer to an earlier batch
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    (code,) = struct.unpack_from("=i", body)
                    if -code == errno.EINTR:
                        return self.links()    # the dump was interrupted by a change: again
                    raise OSError(-code, f"link dump: {os.strerror(-code)}")
                if kind == RTM_NEWLINK:
                    link = decode_link(body)
                    if link is not None:
                        out[link.name] = link

    def send(self, requests: list[Request]) -> list[tuple[int, str]]:
        """Send in order; returns (position, why) of every request that failed."""
        failures: list[tuple[int, str]] = []
        for k in range(0, len(requests), BATCH):
            chunk = requests[k:k + BATCH]
            first, self.seq = self.seq, (self.seq + len(chunk)) & 0xFFFFFFFF
            last = len(chunk) - 1
            # Only the last asks for an acknowledgement: the kernel handles a
            # batch in order, so it comes after every error of the batch.
            data = b"".join(message(kind, NLM_F_REQUEST | flags | (NLM_F_ACK if i == last else 0),
                                    first + i, body)
                            for i, (kind, flags, body) in enumerate(chunk))
            try:
                self.sock.send(data)
                failures += [(k + i, why) for i, why in self._answers(len(chunk), first)]
            except OSError as exc:
                failures += [(k + i, f"netlink: {exc.strerror or exc}") for i in range(len(chunk))]
        return failures

    def _answers(self, count: int, first: int) -> list[tuple[int, str]]:
        failures = []
        deadline = time.monotonic() + ACK_TIMEOUT
        while True:
            for seq, code, text in errors(self._receive(deadline)):
                index = (seq - first) & 0xFFFFFFFF
                if index >= count:
                    continue
                if code:
                    failures.append((index, os.strerror(code) + (f" ({text})" if text else "")))
                if index == count - 1:
                    return failures

    def _receive(self, deadline: float) -> bytes:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise OSError(errno.ETIMEDOUT, "no answer from the kernel")
            self.sock.settimeout(remaining)
            try:
                return self.sock.recv(1 << 20)
            except socket.timeout:
                continue

    def close(self) -> None:
        self.sock.close()
