"""Read a namespace's IPv4 addresses over a netlink socket that lives in it.

The lab counts VIPs many times a second while daemons run. Starting `ip` for
every look stalled for over 60 s now and then (the new process waited in
filemap_fault, paging in its binary from a slow disk), and pyroute2's
IPRoute(netns=...) forks a helper, which then ran our own SIGTERM handler
instead of dying. Here a short-lived thread enters the namespace (setns moves
only the calling thread), opens the socket and leaves; the dump uses the
framing of hivrrp.kernel.rtnl.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
from collections.abc import Iterator

from hivrrp.kernel.rtnl import (
    IFADDRMSG,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    RTM_GETADDR,
    RTM_NEWADDR,
    message,
    messages,
)

CLONE_NEWNET = 0x40000000


def socket_in_netns(name: str) -> socket.socket:
    """A NETLINK_ROUTE socket in /run/netns/`name`."""
    made: dict[str, object] = {}

    def enter_and_open() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    error = ctypes.get_errno()
                    raise OSError(error, f"setns {name}: {os.strerror(error)}")
            finally:
                os.close(fd)
            made["socket"] = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW,
                                           socket.NETLINK_ROUTE)
        except OSError as exc:
            made["error"] = exc

    thread = threading.Thread(target=enter_and_open, name=f"netns-{name}")
    thread.start()
    thread.join()
    if "error" in made:
        raise made["error"]  # type: ignore[misc]
    return made["socket"]  # type: ignore[return-value]


def ipv4_addresses(sock: socket.socket, seq: int = 1) -> Iterator[tuple[int, int, int, int]]:
    """(prefixlen, ifa_flags, scope, ifindex) of every IPv4 address, from one dump."""
    sock.send(message(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq,
                      IFADDRMSG.pack(socket.AF_INET, 0, 0, 0, 0)))
    while True:
        for kind, _flags, got_seq, body in messages(sock.recv(1 << 20)):
            if got_seq != seq:
                continue
            if kind == NLMSG_DONE:
                return
            if kind == NLMSG_ERROR:
                (code,) = struct.unpack_from("=i", body)
                raise OSError(-code, os.strerror(-code))
            if kind == RTM_NEWADDR:
                family, prefixlen, flags, scope, index = IFADDRMSG.unpack_from(body)
                if family == socket.AF_INET:
                    yield prefixlen, flags, scope, index
