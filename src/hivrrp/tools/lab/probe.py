"""Who answers for each VIP? ARP probing from the lab's client namespace.

    python -m hivrrp.tools.lab.probe --timeout S IFACE=SRC=MAC=VIP,VIP... [...]

Sends ARP requests for every VIP (each round, so no cache hides a change)
and prints one JSON line: seconds until every VIP answered from the MAC
expected on its segment (each router interface has its own), or null, and
how many did. Run by `hivrrp lab` inside the client's namespace.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import time

from hivrrp.kernel.announce import ETH_P_ARP, arp_request

ROUND = 0.05     # seconds between rounds of requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("segments", nargs="+", help="IFACE=SRC=MAC=VIP,VIP,...")
    args = parser.parse_args()
    sockets, wanted = [], {}
    for spec in args.segments:
        iface, src, expected_mac, vips = spec.split("=", 3)
        expect = bytes.fromhex(expected_mac.replace(":", ""))
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
        sock.bind((iface, ETH_P_ARP))
        sock.setblocking(False)
        mac = sock.getsockname()[4]
        frames = [arp_request(mac, socket.inet_aton(src), socket.inet_aton(v))
                  for v in vips.split(",")]
        sockets.append((sock, frames))
        for v in vips.split(","):
            wanted[socket.inet_aton(v)] = expect
    start = time.monotonic()
    answered_by: dict[bytes, bytes] = {}
    done_at = None
    while time.monotonic() - start < args.timeout:
        if all(answered_by.get(v) == mac for v, mac in wanted.items()):
            done_at = time.monotonic() - start
            break
        for sock, frames in sockets:
            for frame in frames:
                target = frame[38:42]  # the ARP target IP
                if answered_by.get(target) != wanted[target]:
                    try:
                        sock.send(frame)
                    except BlockingIOError:
                        pass
        round_end = time.monotonic() + ROUND
        while (now := time.monotonic()) < round_end:
            ready, _, _ = select.select([s for s, _ in sockets], [], [], round_end - now)
            for sock in ready:
                while True:
                    try:
                        frame = sock.recv(128)
                    except BlockingIOError:
                        break
                    if len(frame) >= 42 and frame[12:14] == b"\x08\x06" and frame[20:22] == b"\0\2":
                        answered_by[frame[28:32]] = frame[22:28]   # sender IP -> sender MAC
    good = sum(1 for v, mac in wanted.items() if answered_by.get(v) == mac)
    print(json.dumps({"seconds": None if done_at is None else round(done_at, 3),
                      "answered": good, "vips": len(wanted)}))


if __name__ == "__main__":
    main()
