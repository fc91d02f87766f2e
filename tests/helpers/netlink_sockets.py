"""Netlink sockets for tests of the request batchers."""

from __future__ import annotations

import socket

CAPPED_SEND_BUFFER = 64 << 10


def capped_request_socket(receive, send=0, protocol=socket.NETLINK_ROUTE):
    """addrbatch.request_socket as a process that may not force its buffers
    gets it: SO_SNDBUF, which the kernel caps."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CAPPED_SEND_BUFFER)
    return sock
