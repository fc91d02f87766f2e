"""The critical path of a mass takeover by follower instances, phase by phase.

    python bench/takeover_path.py [--leaders 40] [--followers 249] [--rounds 3] [--one-by-one]

Root: runs itself inside a throwaway network namespace. Two figures:

1. The kernel's cost per address: LEADERS x (FOLLOWERS + 1) VIP additions (one
   veth each leader, /16 addresses) sent by the VIP batcher pre-encoded, as a
   follower group's are, then the same changes encoded as the batcher does
   for single ones; and their removals.
2. The daemon itself (hivrrp.daemon.wiring.Daemon, real netlink, real
   sockets) on LEADERS leaders (VRRPv3, advert_int 0.01) with FOLLOWERS
   followers each: every round the leaders are put in FAULT (their followers
   go BACKUP, all VIPs go), then released; alone on the LAN, they become
   master one Master_Down_Interval later and move their followers. Times,
   from the loop timer's wake-up that ran the leaders' master-down:
   events     the engine's work and take_events (C), until Python has the events
   dispatched the daemon's handling of the leaders' events (VIP units queued)
   trip start  the VIP queue's task hands the trip to the netlink thread
   kernel done the netlink thread's last request answered: every VIP in place
   trip end    the loop hears of it (announcements follow)
   reported    the followers' own events handed over (nobody listens here: none
               has a notify script and there is no FIFO, so they are counted off)
   garp        the first gratuitous ARP of every VIP sent (what a client needs
               to reach the new master)
   and the VIPs then present (a netlink dump), and the loop's longest stall
   from the leaders' release to the last of those first GARPs (a 1 ms ticker's
   worst lateness, daemon/stall.py: adverts wait that long; uvloop's clock
   counts whole milliseconds) and the longest single call of the announcer's
   drain in that time (perf_counter).

Prints a table and one JSON line. It is a measurement, not a test: run it
alone (two benchmarks at once measure each other).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from hivrrp.kernel.addrbatch import ENCODED_SEQ, AddressBatcher, Change, encode_all

FAULT_TRACKER = 2


def veths(leaders: int) -> list[int]:
    indexes = []
    for k in range(leaders):
        subprocess.run(["ip", "link", "add", f"v{k}", "type", "veth", "peer", "name", f"w{k}"],
                       check=True)
        for name in (f"v{k}", f"w{k}"):
            subprocess.run(["ip", "link", "set", name, "up"], check=True)
        subprocess.run(["ip", "addr", "add", f"10.{k}.0.1/16", "dev", f"v{k}"], check=True)
        indexes.append(socket.if_nametoindex(f"v{k}"))
    return indexes


def vip(k: int, n: int) -> str:
    """The n-th VIP (0: the leader's) of leader k."""
    return f"10.{k}.{1 + n // 250}.{n % 250 + 1}"


def kernel_cost(indexes: list[int], followers: int, rounds: int) -> dict:
    batcher = AddressBatcher()
    per_link = [[Change(True, index, 4, vip(k, n), 16) for n in range(followers + 1)]
                for k, index in enumerate(indexes)]
    units, seq = [], ENCODED_SEQ
    for changes in per_link:
        units.append(encode_all(changes, seq, object()))
        seq += len(changes)
    removals = []
    for changes in per_link:
        removals.append(encode_all([c.removal() for c in changes], seq, object()))
        seq += len(changes)
    plain = [c for changes in per_link for c in changes]
    out: dict[str, list[float]] = {"encoded add": [], "encoded remove": [], "plain add": [],
                                   "plain remove": []}
    for _ in range(rounds):
        for label, work in (("encoded add", units), ("encoded remove", removals),
                            ("plain add", plain), ("plain remove", [c.removal() for c in plain])):
            started = time.perf_counter()
            failures = batcher.apply(work)
            out[label].append(time.perf_counter() - started)
            assert not failures, failures[:3]
    batcher.close()
    return {label: statistics.median(values) for label, values in out.items()}


def config_text(leaders: int, followers: int) -> str:
    out = []
    for k in range(leaders):
        out.append(f"vrrp_instance L{k} {{\n    interface v{k}\n    version 3\n"
                   f"    virtual_router_id 1\n    priority 100\n    advert_int 0.01\n"
                   f"    virtual_ipaddress {{\n        {vip(k, 0)}/16\n    }}\n}}\n")
        for n in range(1, followers + 1):
            out.append(f"vrrp_instance L{k}F{n} {{\n    interface v{k}\n    version 3\n"
                       f"    virtual_router_id {n + 1}\n    priority 100\n    advert_int 1\n"
                       f"    follow L{k}\n"
                       f"    virtual_ipaddress {{\n        {vip(k, n)}/16\n    }}\n}}\n")
    return "".join(out)


def present() -> int:
    shown = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True,
                           text=True).stdout
    return sum(1 for line in shown.splitlines() if "/16" in line and ".0.1/16" not in line)


async def daemon_path(leaders: int, followers: int, rounds: int, workdir: str,
                      one_by_one: bool) -> list[dict]:
    from hivrrp.config import load
    from hivrrp.daemon import wiring
    from hivrrp.daemon.driver import now_us
    from hivrrp.daemon.stall import StallProbe
    from hivrrp.daemon.wiring import Daemon

    path = os.path.join(workdir, "keepalived.conf")
    with open(path, "w") as f:
        f.write(config_text(leaders, followers))
    result = load(path, config_id="bench", check_host=False)
    assert result.ok, result.errors[:3]
    d = Daemon(result.config, path, "bench")
    if one_by_one:
        # For comparison: every follower's event and actions on the way to
        # netlink, as for independent instances (the group units unused).
        wiring.reactor.group_transition = lambda *args: None
    marks: dict[str, float] = {}
    trips: list[int] = []           # VIP changes in each trip of the round
    waiting = asyncio.Event()

    await d.start()
    real_timer, real_events = d.driver.on_timer, d.on_engine_events
    real_apply, real_report = d.vips.apply_vips, d.report_followers
    real_thread_apply = d.netlink._apply

    def thread_apply(*args):
        # On the netlink thread: when the kernel has the last VIP, before the
        # loop hears of it.
        failures = real_thread_apply(*args)
        marks["kernel done"] = time.perf_counter()
        trips.append(sum(len(c) if hasattr(c, "changes") else 1 for c in args[0]))
        return failures

    woke = [0.0]

    def on_timer():
        woke[0] = time.perf_counter()
        real_timer()

    def on_events(events):
        moving = any(e[2] == "MASTER" and e[-1] for e in events)
        if moving and "events" not in marks:
            marks["woke"], marks["events"] = woke[0], time.perf_counter()
        real_events(events)
        if moving and "dispatched" not in marks:
            marks["dispatched"] = time.perf_counter()

    async def apply(changes, **kw):
        if "dispatched" in marks:
            marks.setdefault("trip start", time.perf_counter())
            failures = await real_apply(changes, **kw)
            marks["trip end"] = time.perf_counter()
            if sum(trips) >= total_vips:
                waiting.set()
            return failures
        return await real_apply(changes, **kw)

    def report(everything=True):
        real_report(everything)
        if "events" in marks and not d.follow_spans:
            marks["reported"] = time.perf_counter()       # the last of them

    announcer = d.garp.announcer
    real_drain = announcer._drain
    sent_before = [0]
    probe = StallProbe(d.loop)
    stalls: list[float] = []
    drains: list[float] = []

    def first_frames() -> int:
        # An announcer that counts each address's first frame apart says so;
        # one that sends every address's first frame before any second (one
        # round after the trip) has sent that many frames in all.
        return getattr(announcer, "first", announcer.sent)

    def drain(loop, interval):
        # One frame for every VIP: the first round of the gratuitous ARPs.
        started = time.perf_counter()
        real_drain(loop, interval)
        if "garp" not in marks:
            drains.append(time.perf_counter() - started)
        if "dispatched" in marks and "garp" not in marks and (
                first_frames() - sent_before[0] >= total_vips):
            marks["garp"] = time.perf_counter()
            stalls.append(probe.stop())

    announcer._drain = drain
    d.netlink._apply = thread_apply
    d.driver.on_timer, d.on_engine_events = on_timer, on_events
    d.driver.on_events = on_events
    d.vips.apply_vips, d.report_followers = apply, report
    out = []
    leader_indexes = [d.plan.index[f"L{k}"] for k in range(leaders)]
    total_vips = leaders * (followers + 1)
    try:
        for round_ in range(rounds + 1):
            # Everything master (the start-up's takeover is round 0, not counted).
            marks.clear()
            trips.clear()
            waiting.clear()
            sent_before[0] = first_frames()
            drains.clear()
            if round_ > 0:
                before = await asyncio.to_thread(present)
                assert before == 0, f"{before} VIPs still there before round {round_}"
                engine = d.plan.engine
                probe.start()
                for i in leader_indexes:
                    engine.set_fault(i, FAULT_TRACKER, False, now_us(d.loop))
                d.driver.after_engine_work()
            await asyncio.wait_for(waiting.wait(), 30)
            for _ in range(200):
                if "reported" in marks and "garp" in marks and d.vips.task is None:
                    break
                await asyncio.sleep(0.01)
            vips = await asyncio.to_thread(present)
            if round_ > 0:
                zero = marks["woke"]
                out.append({k: round((v - zero) * 1000, 2) for k, v in marks.items()}
                           | {"stall": round(stalls[-1] * 1000, 2),
                              "drain max": round(max(drains) * 1000, 2), "vips": vips,
                              "trips": list(trips)})
            # Everything back down, for the next round.
            engine = d.plan.engine
            for i in leader_indexes:
                engine.set_fault(i, FAULT_TRACKER, True, now_us(d.loop))
            d.driver.after_engine_work()
            await asyncio.sleep(0.5)
            await d.vips.idle()
            await asyncio.sleep(0.5)
    finally:
        await d.shutdown()
    return out


def inside(leaders: int, followers: int, rounds: int, one_by_one: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="hvtp") as workdir:
        # INFO, as a daemon runs, to a file: the lines are made as in production.
        logging.basicConfig(level=logging.INFO, filename=os.path.join(workdir, "log"))
        measure(leaders, followers, rounds, workdir, one_by_one)


def measure(leaders: int, followers: int, rounds: int, workdir: str, one_by_one: bool) -> None:
    indexes = veths(leaders)
    total = leaders * (followers + 1)
    kernel = kernel_cost(indexes, followers, rounds)
    print(f"kernel: {total} VIPs on {leaders} veths, median of {rounds} rounds")
    for label, seconds in kernel.items():
        print(f"  {label:<15} {seconds * 1000:8.1f} ms  "
              f"{seconds / total * 1e6:6.2f} us per address")
    import uvloop
    phases = uvloop.run(daemon_path(leaders, followers, rounds, workdir, one_by_one))
    keys = ("events", "dispatched", "trip start", "kernel done", "trip end", "reported", "garp",
            "stall", "drain max")
    print(f"daemon: {leaders} leaders x {followers} followers + the leaders "
          f"({total} instances){', one by one' if one_by_one else ''}, ms from the loop "
          f"timer's wake-up (stall, drain max: the loop's longest stall and drain call), "
          f"median of {rounds}")
    medians = {k: statistics.median(p[k] for p in phases) for k in keys}
    for k in keys:
        print(f"  {k:<11} {medians[k]:8.2f}   rounds: "
              + ", ".join(f"{p[k]:.2f}" for p in phases))
    print(f"  VIPs present after each round: {[p['vips'] for p in phases]} of {total}; "
          f"VIP changes per netlink trip: {[p['trips'] for p in phases]}")
    print(json.dumps({"leaders": leaders, "followers": followers, "instances": total,
                      "rounds": rounds, "one_by_one": one_by_one,
                      "kernel_ms": {k: round(v * 1000, 2) for k, v in kernel.items()},
                      "daemon_ms_median": medians, "daemon_rounds": phases}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaders", type=int, default=40)
    parser.add_argument("--followers", type=int, default=249)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one-by-one", action="store_true",
                        help="for comparison: the followers' events one by one on the way to "
                             "netlink, as independent instances' (no group units)")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (1 <= args.leaders <= 250 and 0 <= args.followers <= 254 and 1 <= args.rounds <= 20):
        sys.exit("--leaders 1..250, --followers 0..254, --rounds 1..20")
    if args.inside:
        inside(args.leaders, args.followers, args.rounds, args.one_by_one)
        return
    if os.geteuid() != 0:
        sys.exit("bench/takeover_path.py needs root (it works in a network namespace)")
    ns = f"hvtp{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, "--inside",
                        "--leaders", str(args.leaders), "--followers", str(args.followers),
                        "--rounds", str(args.rounds),
                        *(["--one-by-one"] if args.one_by_one else [])], check=True, timeout=600)
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


if __name__ == "__main__":
    main()
