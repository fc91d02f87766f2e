"""How long N VIP additions and removals take: hivrrp's batcher against pyroute2.

    python bench/vips.py [--vips 4000] [--interfaces 16] [--rounds 5]

Runs itself inside a throwaway network namespace (root needed): N /16
addresses spread over veth interfaces, added then removed, by
hivrrp.kernel.addrbatch.AddressBatcher and by pyroute2's nlm_request_batch in
batches of 128 (what the daemon used before), alternating; prints the median
seconds of each and their ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

from hivrrp.kernel.addrbatch import AddressBatcher, Change


def pyroute2_apply(ipr, changes: list[Change]) -> None:
    from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
    from pyroute2.netlink.rtnl import RTM_DELADDR, RTM_NEWADDR
    from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

    def message(change: Change):
        msg = ifaddrmsg()
        msg["family"] = socket.AF_INET
        msg["prefixlen"] = change.prefixlen
        msg["index"] = change.index
        msg["attrs"] = [("IFA_LOCAL", change.address), ("IFA_ADDRESS", change.address)]
        msg["header"]["type"] = RTM_NEWADDR if change.add else RTM_DELADDR
        msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK | (
            NLM_F_CREATE | NLM_F_EXCL if change.add else 0)
        return msg

    for k in range(0, len(changes), 128):
        for _ in ipr.nlm_request_batch([message(c) for c in changes[k:k + 128]], noraise=True):
            pass


def inside(vips: int, interfaces: int, rounds: int) -> None:
    from pyroute2 import IPRoute

    indexes = []
    for k in range(interfaces):
        subprocess.run(["ip", "link", "add", f"v{k}", "type", "veth", "peer", "name", f"w{k}"],
                       check=True)
        subprocess.run(["ip", "link", "set", f"v{k}", "up"], check=True)
        indexes.append(socket.if_nametoindex(f"v{k}"))
    adds = [Change(True, indexes[n % interfaces], 4, f"10.{100 + n % interfaces}.{n // 250}."
                   f"{n % 250 + 1}", 16) for n in range(vips)]
    removes = [c.removal() for c in adds]
    batcher, ipr = AddressBatcher(), IPRoute()
    timings: dict[str, list[float]] = {"hivrrp add": [], "hivrrp remove": [],
                                       "pyroute2 add": [], "pyroute2 remove": []}
    for round_ in range(rounds):
        order = ("hivrrp", "pyroute2") if round_ % 2 == 0 else ("pyroute2", "hivrrp")
        for who in order:
            for verb, changes in (("add", adds), ("remove", removes)):
                started = time.perf_counter()
                if who == "hivrrp":
                    failures = batcher.apply(changes)
                    assert not failures, failures[:3]
                else:
                    pyroute2_apply(ipr, changes)
                timings[f"{who} {verb}"].append(time.perf_counter() - started)
            left = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True,
                                  text=True).stdout.count("10.1")
            assert left == 0, f"{who} left {left} addresses"
    print(f"{vips} VIPs on {interfaces} interfaces, median of {rounds} rounds (seconds):")
    for verb in ("add", "remove"):
        ours = statistics.median(timings[f"hivrrp {verb}"])
        theirs = statistics.median(timings[f"pyroute2 {verb}"])
        print(f"  {verb:<7} hivrrp {ours:7.3f}   pyroute2 batches of 128 {theirs:7.3f}   "
              f"ratio {theirs / ours:5.1f}x")
    print(json.dumps({"vips": vips, "interfaces": interfaces, "rounds": rounds,
                      **{f"{key.replace(' ', '_')}_s_median": round(statistics.median(v), 4)
                         for key, v in timings.items()}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vips", type=int, default=4000)
    parser.add_argument("--interfaces", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (1 <= args.vips <= 60000 and 1 <= args.interfaces <= 100 and 1 <= args.rounds <= 50):
        sys.exit("--vips 1..60000, --interfaces 1..100, --rounds 1..50")
    if args.inside:
        inside(args.vips, args.interfaces, args.rounds)
        return
    if os.geteuid() != 0:
        sys.exit("bench/vips.py needs root (it works in a network namespace)")
    ns = f"hvb{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "--inside",
                        "--vips", str(args.vips), "--interfaces", str(args.interfaces),
                        "--rounds", str(args.rounds)], check=True)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
