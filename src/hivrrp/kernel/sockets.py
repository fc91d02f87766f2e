"""VRRP sockets: the raw IP ones (options, multicast memberships) and the packet one.

The kernel limits multicast memberships per socket (net.ipv4.igmp_max_memberships,
20 by default), so a host with hundreds of VLANs needs several sockets per
family. Every socket would also receive every *unicast* advert (raw sockets
get all of their protocol), so extra IPv4 sockets carry a BPF filter that
keeps multicast only: each datagram is read once.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

VRRP_PROTO = 112
SOL_IP, SOL_IPV6 = socket.IPPROTO_IP, socket.IPPROTO_IPV6
IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)
IP_MULTICAST_ALL = 49          # linux/in.h; not exported by Python's socket module
IP_MTU_DISCOVER = 10           # likewise
SIOCGIFMTU = 0x8921            # linux/sockios.h
IPV6_MULTICAST_ALL = 29        # linux/in6.h
SO_ATTACH_FILTER = 26
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
PRECEDENCE_NETWORK_CONTROL = 0xC0   # keepalived and FRR mark adverts this way

# BPF: accept when the IPv4 destination's first byte is 224..239, else drop.
# (ldb [16]; and #0xf0; jeq #0xe0 -> accept; ret #0; ret #0xffff)
_MULTICAST_ONLY = [
    (0x30, 0, 0, 16), (0x54, 0, 0, 0xF0), (0x15, 0, 1, 0xE0), (0x06, 0, 0, 0xFFFF),
    (0x06, 0, 0, 0),
]


def igmp_max_memberships() -> int:
    try:
        with open("/proc/sys/net/ipv4/igmp_max_memberships") as f:
            return max(1, int(f.read()))
    except (OSError, ValueError):
        return 20


def open_raw(family: int, buffer_bytes: int) -> socket.socket:
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    sock = socket.socket(af, socket.SOCK_RAW, VRRP_PROTO)
    try:
        sock.setblocking(False)
        force_buffers(sock, receive=buffer_bytes, send=buffer_bytes)
        if family == 4:
            sock.setsockopt(SOL_IP, IP_PKTINFO, 1)
            sock.setsockopt(SOL_IP, socket.IP_MULTICAST_TTL, 255)
            sock.setsockopt(SOL_IP, socket.IP_TTL, 255)
            sock.setsockopt(SOL_IP, socket.IP_MULTICAST_LOOP, 0)
            sock.setsockopt(SOL_IP, IP_MULTICAST_ALL, 0)
            sock.setsockopt(SOL_IP, socket.IP_TOS, PRECEDENCE_NETWORK_CONTROL)
        else:
            sock.setsockopt(SOL_IPV6, socket.IPV6_RECVPKTINFO, 1)
            sock.setsockopt(SOL_IPV6, socket.IPV6_RECVHOPLIMIT, 1)
            sock.setsockopt(SOL_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
            sock.setsockopt(SOL_IPV6, socket.IPV6_UNICAST_HOPS, 255)
            sock.setsockopt(SOL_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
            sock.setsockopt(SOL_IPV6, IPV6_MULTICAST_ALL, 0)
            sock.setsockopt(SOL_IPV6, socket.IPV6_TCLASS, PRECEDENCE_NETWORK_CONTROL)
    except OSError:
        sock.close()
        raise
    return sock


def open_packet(buffer_bytes: int) -> socket.socket:
    """The AF_PACKET socket adverts go out on as frames (_io.FramePath).

    Protocol 0: it receives nothing, so the kernel hands it no packet. No
    PACKET_QDISC_BYPASS: it saved 0.08 µs of ~1.5 per advert with a qdisc
    (none on a veth, bench/sendpath_micro.py), and bypassing also skips the
    taps, so `tcpdump` on the master would no longer show its own adverts,
    and the qdiscs (shaping, tc filters) an operator set."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        sock.setblocking(False)
        force_buffers(sock, send=buffer_bytes)
    except OSError:
        sock.close()
        raise
    return sock


def pmtudisc(sock: socket.socket) -> int:
    """A socket's IP_MTU_DISCOVER: whether its IPv4 datagrams carry DF. The
    kernel sets it from net.ipv4.ip_no_pmtu_disc when the socket is made."""
    return sock.getsockopt(SOL_IP, IP_MTU_DISCOVER)


def device_mtu(ifindex: int) -> int | None:
    """The interface's MTU as the kernel has it now (SIOCGIFMTU), or None
    when it is gone: for when a send says the one netlink last told is stale."""
    try:
        name = socket.if_indextoname(ifindex).encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            answer = fcntl.ioctl(sock, SIOCGIFMTU, struct.pack("16si", name, 0))
    except OSError:
        return None
    return struct.unpack_from("i", answer, 16)[0]


def force_buffers(sock: socket.socket, *, receive: int = 0, send: int = 0) -> None:
    """Socket buffer sizes that are not capped by net.core.rmem_max / wmem_max.

    Sized from the instance count (or a burst of netlink messages), they
    exceed Debian's default cap of 208 KiB, which SO_RCVBUF would silently
    apply; root may set more with the *BUFFORCE options, others get the cap.
    """
    for size, forced, capped in ((receive, SO_RCVBUFFORCE, socket.SO_RCVBUF),
                                 (send, SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        if size:
            try:
                sock.setsockopt(socket.SOL_SOCKET, forced, size)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, capped, size)


@contextlib.contextmanager
def borrowed(fd: int) -> Iterator[socket.socket]:
    """A socket object for a descriptor another library owns (pyroute2's), to set options."""
    duplicate = socket.socket(fileno=os.dup(fd))
    try:
        yield duplicate
    finally:
        duplicate.close()


def attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """Attach a classic BPF program (code, jt, jf, k) to a socket (SO_ATTACH_FILTER)."""
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *insn) for insn in program))
    fprog = struct.pack("HL", len(program), ctypes.addressof(code))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def attach_multicast_only_filter(sock: socket.socket) -> None:
    attach_filter(sock, _MULTICAST_ONLY)


def membership(sock: socket.socket, family: int, group: bytes, ifindex: int, *,
               join: bool) -> None:
    """Join or leave `group` on interface `ifindex`."""
    if family == 4:
        option = socket.IP_ADD_MEMBERSHIP if join else socket.IP_DROP_MEMBERSHIP
        sock.setsockopt(SOL_IP, option, struct.pack("4s4si", group, b"\0" * 4, ifindex))
    else:
        option = socket.IPV6_JOIN_GROUP if join else socket.IPV6_LEAVE_GROUP
        sock.setsockopt(SOL_IPV6, option, struct.pack("16sI", group, ifindex))


@dataclass
class SocketPool:
    """The raw sockets of one family and the memberships each one holds."""

    family: int
    buffer_bytes: int
    limit: int
    sockets: list[socket.socket] = field(default_factory=list)
    members: dict[tuple[bytes, int], int] = field(default_factory=dict)  # -> socket index
    counts: list[int] = field(default_factory=list)

    @classmethod
    def create(cls, family: int, buffer_bytes: int) -> SocketPool:
        limit = igmp_max_memberships() if family == 4 else 256
        pool = cls(family, buffer_bytes, limit)
        pool._add_socket()
        return pool

    @property
    def primary(self) -> socket.socket:
        return self.sockets[0]

    def _add_socket(self) -> int:
        sock = open_raw(self.family, self.buffer_bytes)
        if self.sockets and self.family == 4:
            attach_multicast_only_filter(sock)
        self.sockets.append(sock)
        self.counts.append(0)
        return len(self.sockets) - 1

    def join(self, group: bytes, ifindex: int) -> None:
        if (group, ifindex) in self.members:
            return
        index = next((i for i, c in enumerate(self.counts) if c < self.limit), None)
        if index is None:
            index = self._add_socket()
        membership(self.sockets[index], self.family, group, ifindex, join=True)
        self.members[(group, ifindex)] = index
        self.counts[index] += 1

    def leave(self, group: bytes, ifindex: int) -> None:
        index = self.members.pop((group, ifindex), None)
        if index is not None:
            try:
                membership(self.sockets[index], self.family, group, ifindex, join=False)
            except OSError:
                pass  # the interface is gone, and the membership with it
            self.counts[index] -= 1

    def resize(self, buffer_bytes: int) -> None:
        """Every socket's buffers to `buffer_bytes`, and those made later."""
        self.buffer_bytes = buffer_bytes
        for sock in self.sockets:
            force_buffers(sock, receive=buffer_bytes, send=buffer_bytes)

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()
