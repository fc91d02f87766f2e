"""Print the priority of every VRRP advert seen on an interface, one line each:
`<monotonic seconds> <source> <vrid> <priority>`. Run inside a test namespace:

    python advert_watch.py IFNAME OUTFILE SECONDS

A raw IP socket (protocol 112) after joining 224.0.0.18 on IFNAME; the
priority is read by scapy's dissector, independent of our codec.
"""

import socket
import struct
import sys
import time

from scapy.layers.inet import IP
from scapy.layers.vrrp import VRRP, VRRPv3  # noqa: F401  (binds IP protocol 112)


def main() -> None:
    ifname, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
    index = socket.if_nametoindex(ifname)
    mreq = struct.pack("4s4si", socket.inet_aton("224.0.0.18"), socket.inet_aton("0.0.0.0"),
                       index)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    sock.settimeout(0.2)
    deadline = time.monotonic() + seconds
    with open(out, "a", buffering=1) as f:
        while time.monotonic() < deadline:
            try:
                data = sock.recv(2048)
            except TimeoutError:
                continue
            packet = IP(data)
            vrrp = packet.payload
            f.write(f"{time.monotonic():.3f} {packet.src} {vrrp.vrid} {vrrp.priority}\n")


if __name__ == "__main__":
    main()
