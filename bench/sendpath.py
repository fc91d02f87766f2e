"""The advert's send path: `hivrrp run --send-path raw` against `auto`, in one run.

    python bench/sendpath.py [--instances 10000] [--interval 0.1] [--topologies p2p,bridge]
                             [--compare-instances 4000] [--compare-topology p2p]
                             [--rounds 3] [--window 10] [--daemons hivrrp,keepalived] [--json]

Groups, each on a topology of its own built once:

  --instances VRRPv3 instances at --interval on each of --topologies:
      p2p     namespaces r1 and r2, one veth pair per 250 instances, no bridge
      bridge  the lab's (r1, r2 and a client on one bridge per 250 instances)
    hivrrp with --send-path raw (the raw IP socket) and --send-path auto
  --compare-instances at --interval on --compare-topology: hivrrp with both
    paths and keepalived (0: no such group)

Every variant runs once per round, the order alternating between rounds. Each
run (bench/rig.py): master and backup steady CPU (% of one core, whole process
trees) and RSS over --window seconds, the packets the master sent, then SIGKILL
of the master: seconds until the first and until every VIP appeared on the
peer, stamped by a netlink address monitor in its namespace (on the bridge the
master's switch ports go down with it). Medians over the rounds, and the ratios
auto/raw and hivrrp/keepalived taken within each round. A hivrrp without
--send-path runs its only path, labelled "default", and the report says so.
Needs root and iproute2.
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
    keepalived_conf,
    master_down_interval,
)
from hivrrp.util.text import plural  # noqa: E402
from rig import TOPOLOGIES, hivrrp_features, measure, progress  # noqa: E402

KEYS = ("topology", "instances", "daemon", "send_path")
PATHS = ("raw", "auto")


def variants(with_send_path: bool, keepalived: bool) -> list[tuple[str, str | None]]:
    """(daemon, send path) of a group: both paths, or hivrrp's only one."""
    out: list[tuple[str, str | None]] = ([("hivrrp", p) for p in PATHS] if with_send_path
                                         else [("hivrrp", "default")])
    if keepalived:
        out.append(("keepalived", None))
    return out


def plan(args, features: dict) -> list[tuple[str, int, list[tuple[str, str | None]]]]:
    """(topology, instances, variants) of every group."""
    daemons = set(args.daemons.split(","))
    groups = []
    if "hivrrp" in daemons:
        for topology in args.topologies.split(","):
            groups.append((topology, args.instances, variants(features["send_path"], False)))
    if args.compare_instances:
        chosen = variants(features["send_path"], "keepalived" in daemons)
        chosen = [v for v in chosen if v[0] in daemons]
        if chosen:
            groups.append((args.compare_topology, args.compare_instances, chosen))
    return groups


def run_group(topology: str, n: int, chosen: list[tuple[str, str | None]], args) -> list[dict]:
    workdir = Path(tempfile.mkdtemp(prefix="hivrrp-sendpath-"))
    lab = TOPOLOGIES[topology](n, workdir)
    mdi = round(master_down_interval(LOW, args.interval, 3), 4)
    runs: list[dict] = []
    gave_up: dict[tuple, str] = {}
    if shutil.which("keepalived") is None:
        gave_up[("keepalived", None)] = "skipped: keepalived is not installed"
    try:
        progress(f"{topology} N={n}: building ({plural(-(-n // PER_SEGMENT), 'segment')}) "
                 f"in namespaces {lab.topology.prefix}-*")
        lab.build()
        confs = {name: keepalived_conf(lab.segments, n, priority, version=3,
                                       advert_int=args.interval)
                 for name, priority in (("r1", HIGH), ("r2", LOW))}
        for round_ in range(args.rounds):
            for daemon, path in (chosen if round_ % 2 == 0 else chosen[::-1]):
                result = {"topology": topology, "instances": n, "daemon": daemon,
                          "send_path": path, "version": 3, "advert_int": args.interval,
                          "master_down_interval_s": mdi, "round": round_}
                if (daemon, path) in gave_up:
                    result["note"] = gave_up[(daemon, path)]
                else:
                    label = f"round {round_ + 1}/{args.rounds} {topology} N={n} {daemon}"
                    progress(f"{label}{f' --send-path {path}' if path else ''}: start, "
                             f"{args.window:g} s steady, SIGKILL")
                    extra = ("--send-path", path) if path in PATHS else ()
                    measure(lab, result, daemon, confs, f"{daemon}-{path}", args.window, mdi,
                            hivrrp_args=extra)
                    if "start_s" not in result or "unstable" in result.get("note", ""):
                        gave_up[(daemon, path)] = (f"skipped: could not hold it in round "
                                                   f"{round_ + 1}")
                    progress(json.dumps(result))
                runs.append(result)
    finally:
        with ignoring_signals():
            lab.close()
            shutil.rmtree(workdir, ignore_errors=True)
    return runs


def all_ratios(runs: list[dict]) -> dict[str, dict]:
    """auto/raw within each topology and size; hivrrp (each path) / keepalived."""
    out = {}
    groups = sorted({(r["topology"], r["instances"]) for r in runs}, key=str)
    for topology, n in groups:
        def case(daemon, path, topology=topology, n=n):
            return (topology, n, daemon, path)
        for figure in ("master_cpu_percent", "backup_cpu_percent", "kill_all_vips_s"):
            ratios = round_ratios(runs, KEYS, case("hivrrp", "auto"), case("hivrrp", "raw"),
                                  figure)
            if ratios:
                out[f"{topology} N={n}: auto/raw {figure}"] = ratio_summary(ratios)
        for path in (*PATHS, "default"):
            ratios = round_ratios(runs, KEYS, case("hivrrp", path), case("keepalived", None),
                                  "master_cpu_percent")
            if ratios:
                out[f"{topology} N={n}: hivrrp {path}/keepalived master_cpu_percent"] = (
                    ratio_summary(ratios))
    return out


COLUMNS = (("topology", "topology", "<9"), ("N", "instances", ">6"),
           ("daemon", "daemon", "<11"),
           ("path", "send_path", "<8"), ("MDI s", "master_down_interval_s", ">7"),
           ("start s", "start_s", ">8"), ("CPU m %", "master_cpu_percent", ">8"),
           ("CPU b %", "backup_cpu_percent", ">8"), ("RSS m", "master_rss_mib", ">7"),
           ("RSS b", "backup_rss_mib", ">7"), ("pps m", "master_pps", ">7"),
           ("first s", "kill_first_vip_s", ">8"), ("all s", "kill_all_vips_s", ">8"),
           ("rounds", "rounds", ">7"), ("ok", "complete", ">4"), ("note", "note", "<"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10000)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--topologies", default="p2p,bridge")
    parser.add_argument("--compare-instances", type=int, default=4000)
    parser.add_argument("--compare-topology", default="p2p")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--daemons", default="hivrrp,keepalived")
    parser.add_argument("--json", action="store_true", help="one JSON line at the end")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/sendpath.py needs root (network namespaces)")
    for tool in ("ip", "nsenter"):
        if shutil.which(tool) is None:
            sys.exit(f"bench/sendpath.py needs {tool}")
    topologies = [t for t in args.topologies.split(",") if t]
    if (not 1 <= args.instances <= 20000 or not 0 <= args.compare_instances <= 20000
            or not 1 <= args.rounds <= 20 or not 1 <= args.window <= 600
            or not 0.01 <= args.interval <= 40
            or not set(topologies) | {args.compare_topology} <= set(TOPOLOGIES)
            or not set(args.daemons.split(",")) <= {"hivrrp", "keepalived"}):
        sys.exit("instances 1..20000, compare instances 0..20000, rounds 1..20, window "
                 f"1..600 s, interval 0.01..40 s, topologies {'|'.join(TOPOLOGIES)}, "
                 "daemons hivrrp|keepalived")
    args.topologies = ",".join(topologies)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    features = hivrrp_features()
    if not features["send_path"]:
        print(f"--send-path is not supported by this build ({features['send_path_reason']}): "
              "hivrrp's default path only", file=sys.stderr, flush=True)
    runs: list[dict] = []
    for topology, n, chosen in plan(args, features):
        runs += run_group(topology, n, chosen, args)
    summary = medians(runs, KEYS)
    ratios = all_ratios(runs)
    print(f"VRRPv3 at {args.interval:g} s; medians of {args.rounds} round(s), {args.window:g} s "
          "window" + ("" if features["send_path"] else
                      "; --send-path not supported by this build: default path only"))
    for line in text_table(summary, COLUMNS):
        print(line)
    for name, r in ratios.items():
        print(f"{name}: median {r['median']:.3f}x (rounds "
              f"{', '.join(f'{x:.3f}' for x in r['rounds'])})")
    if args.json:
        print(json.dumps({"runs": runs, "summary": summary, "ratios": ratios,
                          "features": features, "interval": args.interval,
                          "window_s": args.window, "rounds": args.rounds}))


if __name__ == "__main__":
    main()
