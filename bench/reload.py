"""A SIGHUP at scale: does the peer take over, do VIPs churn, how long does the loop stall?

    python bench/reload.py [--instances 4000] [--version 3] [--advert-int 0.1] [--rounds 3]

Two hivrrp routers (master r1 priority 200, backup r2 priority 100) on one
veth segment per 250 instances in namespaces, as `hivrrp lab` builds them.
Once r1 holds every VIP, each round sends SIGHUP (unchanged file) to r1 and
then to r2 and reports, per reload: the longest loop stall the daemon
measured during it and in as long a time right after it (what the loop's
own work, a master's burst of 4,000 adverts, costs anyway), how long the reload took, whether any instance changed
state on either router (a takeover by the peer, a flap), and the fewest VIPs
r1 held while it ran (sampled every 20 ms; no churn keeps it at N).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import tempfile
import time
from pathlib import Path

from hivrrp.tools.lab import Lab

STALL = re.compile(r"longest loop stall during the reload: ([0-9.]+) ms")
STEADY = re.compile(r"longest loop stall in as long after the reload: ([0-9.]+) ms")
RELOADED = re.compile(r"reloaded: (\d+) instances? kept, (\d+) started, (\d+) removed, "
                      r"(\d+) VIP changes?")
TRANSITION = re.compile(r"\) (INIT|BACKUP|MASTER|FAULT) -> (BACKUP|MASTER|FAULT|INIT) ")
# More than 32 at once are one line per kind: "4000 instances BACKUP -> MASTER (...)".
MASS_TRANSITION = re.compile(r"(\d+) instances? (INIT|BACKUP|MASTER|FAULT) -> "
                             r"(BACKUP|MASTER|FAULT|INIT) ")


def transitions(log: str) -> int:
    return (len(TRANSITION.findall(log))
            + sum(int(count) for count, _, _ in MASS_TRANSITION.findall(log)))


NOTIFY_KEYWORDS = ("notify_master", "notify_backup", "notify_fault", "notify_stop",
                   "notify_deleted", "notify")


def notify_lines(workdir: Path, count: int):
    """`count` notify lines per instance, each a distinct command line (the
    instance's name is an argument), all running one do-nothing script."""
    script = workdir / "notify.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o755)

    def lines(name: str) -> list[str]:
        return [f'    {keyword} "{script} {keyword} {name}"'
                for keyword in NOTIFY_KEYWORDS[:count]]
    return lines


def reload_once(lab: Lab, procs: dict, target: str, timeout: float) -> dict:
    logs = {name: Path(lab.workdir / f"{name}-hivrrp.log") for name in ("r1", "r2")}
    before = {name: p.read_text() for name, p in logs.items()}
    stalls_before = len(STALL.findall(before[target]))
    started = time.monotonic()
    procs[target].send_signal(signal.SIGHUP)
    fewest = lab.instances
    while time.monotonic() - started < timeout:
        fewest = min(fewest, lab.vip_count("r1"))
        text = logs[target].read_text()
        if len(STALL.findall(text)) > stalls_before:
            break
        time.sleep(0.02)
    else:
        raise SystemExit(f"{target}: no reload finished within {timeout} s")
    took = time.monotonic() - started
    # A takeover caused by the stall would show within 1 s; the steady-state
    # figure comes after as long again as the reload took.
    time.sleep(max(1.0, took + 0.3))
    fewest = min(fewest, lab.vip_count("r1"))
    after = {name: p.read_text() for name, p in logs.items()}
    new = after[target][len(before[target]):]
    reloaded = RELOADED.search(new)
    return {
        "target": target,
        "stall_ms": float(STALL.findall(after[target])[-1]),
        "steady_stall_ms": float(STEADY.findall(new)[-1]) if STEADY.search(new) else None,
        "reload_s": round(took, 2),
        "kept": int(reloaded.group(1)) if reloaded else None,
        "vip_changes": int(reloaded.group(4)) if reloaded else None,
        "transitions_r1": transitions(after["r1"]) - transitions(before["r1"]),
        "transitions_r2": transitions(after["r2"]) - transitions(before["r2"]),
        "fewest_vips_on_r1": fewest,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=4000)
    parser.add_argument("--version", type=int, default=3, choices=(2, 3))
    parser.add_argument("--advert-int", type=float, default=0.1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--notify-lines", type=int, default=0, choices=range(0, 7),
                        help="distinct notify command lines per instance (notify_master, "
                             "_backup, _fault, _stop, _deleted, notify): each is checked "
                             "by the script security at every reload")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="hivrrp-reload-"))
    extra = notify_lines(workdir, args.notify_lines) if args.notify_lines else None
    lab = Lab(args.instances, "hivrrp", workdir, out=lambda *_: None)
    rows = []
    try:
        lab.build()
        procs = {name: lab.start(name, "hivrrp", version=args.version,
                                 advert_int=args.advert_int, instance_extra=extra)
                 for name in ("r1", "r2")}
        if lab.wait_for_vips("r1", 120) is None:
            raise SystemExit("r1 never held every VIP")
        time.sleep(3)   # past the start-up GARP bursts
        for _ in range(args.rounds):
            for target in ("r1", "r2"):
                rows.append(reload_once(lab, procs, target, timeout=60))
                time.sleep(1)
    finally:
        lab.close()
    print(f"SIGHUP with {args.instances} instances, VRRPv{args.version} at {args.advert_int} s "
          f"(peer on the same segments)"
          + (f", {args.notify_lines} distinct notify lines each" if args.notify_lines else ""))
    print(f"{'router':>6} {'stall ms':>9} {'steady ms':>10} {'reload s':>9} {'kept':>6} "
          f"{'VIP chg':>8} {'trans r1':>9} {'trans r2':>9} {'min VIPs r1':>12}")
    for r in rows:
        print(f"{r['target']:>6} {r['stall_ms']:>9.1f} {r['steady_stall_ms']!s:>10} "
              f"{r['reload_s']:>9.2f} {r['kept']!s:>6} "
              f"{r['vip_changes']!s:>8} {r['transitions_r1']:>9} {r['transitions_r2']:>9} "
              f"{r['fewest_vips_on_r1']:>12}")
    for target, role in (("r1", "master"), ("r2", "backup")):
        stalls = [r["stall_ms"] for r in rows if r["target"] == target]
        steady = [r["steady_stall_ms"] for r in rows
                  if r["target"] == target and r["steady_stall_ms"] is not None]
        print(f"{target} ({role}): median stall {statistics.median(stalls):.1f} ms during a "
              f"reload (worst {max(stalls):.1f}), "
              + (f"{statistics.median(steady):.1f} ms in as long after it (steady state), "
                 if steady else "")
              + f"over {len(stalls)} reloads")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
