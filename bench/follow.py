"""Follower instances against independent ones, and keepalived, in one run.

    python bench/follow.py [--instances 10000] [--leader-int 0.01] [--follower-int 1]
                           [--follow-refresh S] [--independent-int 0.1] [--rounds 3]
                           [--window 10] [--daemons hivrrp,keepalived]
                           [--ping-segments 4] [--ping-interval 0.002] [--json]

One bridged lab (hivrrp.tools.lab: r1, r2 and a client on one bridge per 250
instances, one VIP per instance), r1 at priority 200 and r2 at 100, serves
three cases in turn, in alternating order over --rounds rounds:

  follow       hivrrp, in each segment one leader (VRRPv3, advert_int
               --leader-int) and every other instance `follow`ing it: no
               periodic adverts of their own
  independent  hivrrp, every instance on its own at VRRPv3 --independent-int
  independent  keepalived on that same configuration

Each run (bench/rig.py): the time until r1 holds every VIP; steady CPU (% of
one core, whole process trees) and RSS of both routers and the packets r1
sent over --window seconds; then SIGKILL of r1's daemon with its switch ports
down (a power cut): from the kill until the first and until the last VIP
appeared on r2, stamped by a netlink address monitor in r2's namespace, and
the ping gap (longest time without a reply) of a client pinging, every
--ping-interval, the leader's, the first and the last follower's VIP of
--ping-segments segments spread over the lab. The table gives the medians over
the rounds. A daemon that cannot hold the configuration (every VIP on r1
within the start time-out, none on r2 after the window) gets a note and is not
run again; a hivrrp without `follow` gets "not supported by this build".
Needs root, iproute2 and ping.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import medians, ratio_summary, round_ratios, text_table  # noqa: E402
from cleanup import ignoring_signals  # noqa: E402
from hivrrp.tools.lab import (  # noqa: E402
    HIGH,
    LOW,
    PER_SEGMENT,
    Segment,
    keepalived_conf,
    master_down_interval,
)
from hivrrp.util.text import plural  # noqa: E402
from rig import Bridged, hivrrp_features, measure, progress  # noqa: E402

KEYS = ("case", "daemon")
CASES = (("follow", "hivrrp"), ("independent", "hivrrp"), ("independent", "keepalived"))


def leader_of(segment: Segment) -> str:
    return f"seg{segment.index}_vr1"


def follow_conf(segments: list[Segment], instances: int, priority: int, *, leader_int: float,
                follower_int: float, follow_refresh: float | None = None) -> str:
    """The lab's configuration with, in each segment, VRID 1 the leader and every
    other instance following it. Same names, VRIDs and VIPs as keepalived_conf."""
    lines = ["global_defs {", "    router_id lab", "    vrrp_version 3",
             "    vrrp_garp_master_delay 0", "}"]
    for n in range(instances):
        segment, vrid = segments[n // PER_SEGMENT], n % PER_SEGMENT + 1
        leader = vrid == 1
        lines += [f"vrrp_instance seg{segment.index}_vr{vrid} {{",
                  f"    interface lab{segment.index}",
                  f"    virtual_router_id {vrid}",
                  f"    priority {priority}",
                  f"    advert_int {leader_int if leader else follower_int:g}"]
        if not leader:
            lines.append(f"    follow {leader_of(segment)}")
            if follow_refresh is not None:
                lines.append(f"    follow_refresh {follow_refresh:g}")
        lines += ["    virtual_ipaddress {", f"        {segment.vip(vrid)}/16", "    }", "}"]
    return "\n".join(lines) + "\n"


def ping_targets(segments: list[Segment], instances: int, count: int) -> list[str]:
    """The leader's, the first and the last follower's VIP in `count` segments
    spread evenly from the first to the last."""
    if count <= 0 or not segments:
        return []
    count = min(count, len(segments))
    picks = sorted({round(i * (len(segments) - 1) / max(count - 1, 1)) for i in range(count)})
    out = []
    for k in picks:
        size = min(PER_SEGMENT, instances - k * PER_SEGMENT)
        for vrid in sorted({1, min(2, size), size}):
            out.append(segments[k].vip(vrid))
    return out


def check_followers_quiet(result: dict, leader_int: float) -> None:
    """A note if r1 sent far more than its leaders' adverts: a build that reads
    `follow` but whose followers still advertise gives no follower figures."""
    expected = result["leaders"] / leader_int
    sent = result.get("master_pps")
    if sent is not None and sent > 1.5 * expected + 100:
        note = (f"r1 sent {sent} packets/s, its leaders' adverts are {expected:.0f}/s: "
                "the followers advertise")
        result["note"] = f"{result['note']}; {note}" if result.get("note") else note


def configs(case: str, lab: Bridged, args) -> dict[str, str]:
    n = lab.instances
    if case == "follow":
        return {name: follow_conf(lab.segments, n, priority, leader_int=args.leader_int,
                                  follower_int=args.follower_int,
                                  follow_refresh=args.follow_refresh)
                for name, priority in (("r1", HIGH), ("r2", LOW))}
    return {name: keepalived_conf(lab.segments, n, priority, version=3,
                                  advert_int=args.independent_int)
            for name, priority in (("r1", HIGH), ("r2", LOW))}


def run_all(args, features: dict) -> list[dict]:
    daemons = set(args.daemons.split(","))
    chosen = [c for c in CASES if c[1] in daemons]
    n = args.instances
    workdir = Path(tempfile.mkdtemp(prefix="hivrrp-follow-"))
    lab = Bridged(n, workdir)
    runs: list[dict] = []
    gave_up: dict[tuple, str] = {}
    if "follow" in (c[0] for c in chosen) and not features["follow"]:
        gave_up[("follow", "hivrrp")] = (f"not supported by this build "
                                         f"({features['follow_reason']})")
    if "keepalived" in daemons and shutil.which("keepalived") is None:
        gave_up[("independent", "keepalived")] = "skipped: keepalived is not installed"
    try:
        progress(f"N={n}: building the bridged lab ({plural(-(-n // PER_SEGMENT), 'segment')}) "
                 f"in namespaces {lab.topology.prefix}-*")
        lab.build()
        pings = ping_targets(lab.segments, n, args.ping_segments)
        for round_ in range(args.rounds):
            for case, daemon in (chosen if round_ % 2 == 0 else chosen[::-1]):
                interval = args.leader_int if case == "follow" else args.independent_int
                leaders = -(-n // PER_SEGMENT) if case == "follow" else n
                result = {"case": case, "daemon": daemon, "instances": n, "version": 3,
                          "advert_int": interval, "leaders": leaders,
                          "followers": n - leaders, "round": round_,
                          "master_down_interval_s": round(
                              master_down_interval(LOW, interval, 3), 4)}
                if (case, daemon) in gave_up:
                    result["note"] = gave_up[(case, daemon)]
                else:
                    label = f"round {round_ + 1}/{args.rounds} {case} {daemon} N={n}"
                    progress(f"{label}: start, {args.window:g} s steady, SIGKILL")
                    measure(lab, result, daemon, configs(case, lab, args),
                            f"{case}-{daemon}", args.window, result["master_down_interval_s"],
                            pings=pings, ping_interval=args.ping_interval)
                    if case == "follow":
                        check_followers_quiet(result, args.leader_int)
                    if "start_s" not in result or "unstable" in result.get("note", ""):
                        gave_up[(case, daemon)] = (f"skipped: could not hold it in round "
                                                   f"{round_ + 1}")
                    progress(json.dumps(result))
                runs.append(result)
    finally:
        with ignoring_signals():
            lab.close()
            shutil.rmtree(workdir, ignore_errors=True)
    return runs


COLUMNS = (("case", "case", "<12"), ("daemon", "daemon", "<11"),
           ("MDI s", "master_down_interval_s", ">7"),
           ("start s", "start_s", ">8"), ("CPU m %", "master_cpu_percent", ">8"),
           ("CPU b %", "backup_cpu_percent", ">8"), ("RSS m", "master_rss_mib", ">7"),
           ("RSS b", "backup_rss_mib", ">7"), ("pps m", "master_pps", ">7"),
           ("first s", "kill_first_vip_s", ">8"), ("all s", "kill_all_vips_s", ">8"),
           ("gap max", "kill_ping_gap_max_ms", ">8"), ("gap med", "kill_ping_gap_median_ms", ">8"),
           ("rounds", "rounds", ">7"), ("ok", "complete", ">4"), ("note", "note", "<"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10000)
    parser.add_argument("--leader-int", type=float, default=0.01)
    parser.add_argument("--follower-int", type=float, default=1.0,
                        help="the followers' own advert_int (their refresh adverts carry it)")
    parser.add_argument("--follow-refresh", type=float, default=None,
                        help="follow_refresh of every follower (default: the daemon's)")
    parser.add_argument("--independent-int", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--daemons", default="hivrrp,keepalived")
    parser.add_argument("--ping-segments", type=int, default=4)
    parser.add_argument("--ping-interval", type=float, default=0.002)
    parser.add_argument("--json", action="store_true", help="one JSON line at the end")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/follow.py needs root (network namespaces)")
    for tool in ("ip", "ping", "nsenter"):
        if shutil.which(tool) is None:
            sys.exit(f"bench/follow.py needs {tool}")
    if (not 2 <= args.instances <= 20000 or not 1 <= args.rounds <= 20
            or not 1 <= args.window <= 600 or not 0.01 <= args.leader_int <= 40
            or not 0.01 <= args.independent_int <= 40 or not 0.01 <= args.follower_int <= 40
            or not 0 <= args.ping_segments <= 80 or not 0.0002 <= args.ping_interval <= 1
            or not set(args.daemons.split(",")) <= {"hivrrp", "keepalived"}):
        sys.exit("instances 2..20000, rounds 1..20, window 1..600 s, intervals 0.01..40 s, "
                 "ping segments 0..80, ping interval 0.0002..1 s, daemons hivrrp|keepalived")
    # SIGTERM unwinds like Ctrl-C, through the finally blocks that stop the
    # daemons and delete the namespaces.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    features = hivrrp_features()
    runs = run_all(args, features)
    summary = medians(runs, KEYS)
    ratios = {"follow/independent hivrrp master CPU": ratio_summary(round_ratios(
        runs, KEYS, ("follow", "hivrrp"), ("independent", "hivrrp"), "master_cpu_percent")),
              "follow/independent hivrrp backup CPU": ratio_summary(round_ratios(
        runs, KEYS, ("follow", "hivrrp"), ("independent", "hivrrp"), "backup_cpu_percent"))}
    print(f"N={args.instances}: follow = leaders at v3 {args.leader_int:g} s, the rest following; "
          f"independent = every instance at v3 {args.independent_int:g} s; medians of "
          f"{args.rounds} round(s), {args.window:g} s window")
    for line in text_table(summary, COLUMNS):
        print(line)
    for name, r in ratios.items():
        if r["median"] is not None:
            print(f"{name}: median {r['median']:.3f}x (rounds "
                  f"{', '.join(f'{x:.3f}' for x in r['rounds'])})")
    if args.json:
        print(json.dumps({"runs": runs, "summary": summary, "ratios": ratios,
                          "features": features, "instances": args.instances,
                          "leader_int": args.leader_int, "independent_int": args.independent_int,
                          "window_s": args.window, "rounds": args.rounds}))


if __name__ == "__main__":
    main()
