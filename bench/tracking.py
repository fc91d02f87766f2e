"""What tracking costs at scale, and how fast a tracked failure fails over.

    python bench/tracking.py [--instances 4000] [--version 3] [--advert-int 1]
                             [--window 10] [--rounds 3] [--daemons hivrrp,keepalived]

Two routers (r1 priority 200, r2 100) on one veth segment per 250 instances,
as bench/scale.py, with every instance tracking the same four trackers:
a vrrp_script (/bin/true every second, weight -10), a vrrp_track_process
(a running `hvtrack` process, weight -10), a track_file (value 0, weight 1)
and a track_interface (`uplink`, a veth inside each router, unweighted, so
it faults). Per round and daemon:

1. steady CPU of the master and the backup over --window seconds, with the
   trackers and without them (the same config minus the track lines);
2. `ip link set uplink down` on the master: every instance goes to FAULT
   and sends priority 0; the seconds until the backup holds every VIP,
   beside one advert interval + the backup's Skew_Time (the target).

keepalived runs with `net_namespace` so that its process tracking works (its
process connector exists only in the initial namespace); hivrrp runs inside
with `ip netns exec` and scans /proc. Prints a table, the tracked/untracked
CPU ratios per round and their medians, then one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hivrrp.tools.lab import HIGH, LOW, Lab, keepalived_conf  # noqa: E402
from scale import CLOCK_TICKS, START_TIMEOUT, print_columns, proc_total, rss_kib, tree  # noqa: E402

PROCESS = "hvtrack"


def cpu_ticks(pids: list[int]) -> int:
    """utime + stime + the reaped children's (cutime + cstime): a tracker's
    script runs are part of what tracking costs, for either daemon."""
    def own_and_children(stat: str) -> int:
        fields = stat.rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15])
    return proc_total(pids, "stat", own_and_children)


KINDS = ("script", "process", "file", "interface")


def tracked(conf: str, workdir: Path, kinds=KINDS) -> str:
    """The lab's config with the shared trackers (`kinds` of them) on every instance."""
    headers = {
        "script": 'vrrp_script chk {\n    script "/bin/true"\n    interval 1\n    weight -10\n}\n',
        "process": f"vrrp_track_process proc {{\n    process {PROCESS}\n    weight -10\n}}\n",
        "file": f"track_file health {{\n    file {workdir / 'health'}\n}}\n",
        "interface": ""}
    tracks = {"script": "    track_script {\n        chk\n    }\n",
              "process": "    track_process {\n        proc\n    }\n",
              "file": "    track_file {\n        health\n    }\n",
              "interface": "    track_interface {\n        uplink\n    }\n"}
    header = "".join(headers[k] for k in kinds)
    lines = "".join(tracks[k] for k in kinds)
    return header + conf.replace("    advert_int", lines + "    advert_int")


class TrackingBench(Lab):
    def __init__(self, instances: int, version: int, advert_int: float, daemon: str,
                 with_trackers: bool, workdir: Path) -> None:
        super().__init__(instances, "hivrrp", workdir, out=lambda *_: None)
        self.version, self.advert_int = version, advert_int
        self.daemon, self.with_trackers = daemon, with_trackers
        self.kinds = KINDS
        (workdir / "health").write_text("0\n")

    def build(self) -> None:
        super().build()
        for name in ("r1", "r2"):
            ns = self.ns[name]
            self.topology.sh("ip", "link", "add", "uplink", "type", "veth", "peer", "name",
                             "uplinkp", ns=ns)
            self.topology.sh("ip", "link", "set", "uplinkp", "up", ns=ns)
            self.topology.sh("ip", "link", "set", "uplink", "up", ns=ns)

    def launch(self, name: str) -> subprocess.Popen:
        priority = HIGH if name == "r1" else LOW
        conf = keepalived_conf(self.segments, self.instances, priority,
                               version=self.version, advert_int=self.advert_int)
        if self.with_trackers:
            conf = tracked(conf, self.workdir, self.kinds)
        path = self.workdir / f"{name}.conf"
        log = open(self.workdir / f"{name}-{self.daemon}.log", "ab")
        if self.daemon == "hivrrp":
            path.write_text(conf)
            return self.topology.popen(self.ns[name], sys.executable, "-m", "hivrrp", "run",
                                       "-f", str(path), "--control",
                                       str(self.workdir / f"{name}.sock"), stdout=log,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        path.write_text(f"net_namespace {self.ns[name]}\n{conf}")
        run = self.workdir / f"ka-{name}"
        run.mkdir(exist_ok=True)
        proc = subprocess.Popen(
            ["keepalived", "--dont-fork", "--log-console", "--vrrp", "--use-file", str(path),
             "--pid", str(run / "a.pid"), "--vrrp_pid", str(run / "v.pid"),
             "--checkers_pid", str(run / "c.pid")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.topology.processes.append(proc)   # stopped by PID at close
        return proc

    def skew(self, priority: int) -> float:
        return (256 - priority) / 256 * (1.0 if self.version == 2 else self.advert_int)

    def measure(self, window: float, failover: bool) -> dict:
        n = self.instances
        result = {"daemon": self.daemon, "instances": n, "version": self.version,
                  "advert_int": self.advert_int, "trackers": self.with_trackers}
        started = time.monotonic()
        master, backup = self.launch("r1"), self.launch("r2")
        if self.wait_for_vips("r1", START_TIMEOUT) is None:
            result["error"] = "the master did not hold every VIP in time"
            return result
        result["all_vips_up_s"] = round(time.monotonic() - started, 2)
        time.sleep(3)   # past the start-up bursts
        pids = {"master": tree(master.pid), "backup": tree(backup.pid)}
        before = {k: cpu_ticks(v) for k, v in pids.items()}
        t0 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - t0
        for role, p in pids.items():
            result[f"{role}_cpu_percent"] = round(
                100 * (cpu_ticks(p) - before[role]) / CLOCK_TICKS / elapsed, 2)
            result[f"{role}_rss_mib"] = round(rss_kib(p) / 1024, 1)
        if failover:
            target = self.advert_int + self.skew(LOW)
            down = time.monotonic()
            self.topology.sh("ip", "link", "set", "uplink", "down", ns=self.ns["r1"])
            moved = self.wait_for_vips("r2", target + 30)
            result["uplink_failover_s"] = (None if moved is None
                                           else round(time.monotonic() - down, 3))
            result["target_s"] = round(target, 3)
        return result


def one_run(args, daemon: str, with_trackers: bool) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="hivrrp-track-"))
    bench = TrackingBench(args.instances, args.version, args.advert_int, daemon, with_trackers,
                          workdir)
    try:
        bench.build()
        bench.kinds = tuple(args.trackers.split(","))
        return bench.measure(args.window, failover=with_trackers and "interface" in bench.kinds)
    finally:
        bench.close()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=4000)
    parser.add_argument("--version", type=int, choices=(2, 3), default=3)
    parser.add_argument("--advert-int", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--daemons", default="hivrrp,keepalived")
    parser.add_argument("--trackers", default=",".join(KINDS),
                        help="which of the shared trackers every instance tracks")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if os.geteuid() != 0:
        sys.exit("bench/tracking.py needs root")
    if not 1 <= args.rounds <= 20 or not 1 <= args.instances <= 60000:
        sys.exit("--rounds is 1..20, --instances 1..60000")
    if not args.trackers or set(args.trackers.split(",")) - set(KINDS):
        sys.exit(f"--trackers is a comma-separated subset of {','.join(KINDS)}")
    daemons = args.daemons.split(",")
    if "keepalived" in daemons and shutil.which("keepalived") is None:
        print("keepalived is not installed: skipped", file=sys.stderr)
        daemons.remove("keepalived")
    shutil.copy("/bin/sleep", Path(tempfile.gettempdir()) / PROCESS)
    process = subprocess.Popen([str(Path(tempfile.gettempdir()) / PROCESS), "100000"])
    results = []
    try:
        for round_ in range(args.rounds):
            for daemon in daemons if round_ % 2 == 0 else daemons[::-1]:
                for with_trackers in (False, True):
                    r = one_run(args, daemon, with_trackers)
                    r["round"] = round_
                    results.append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
    finally:
        process.kill()
        process.wait()
    print_table(results)
    print_ratios(results, daemons)
    for r in results:
        print(json.dumps(r))


def print_table(results: list[dict]) -> None:
    columns = (("daemon", "daemon", "<11"), ("trackers", "trackers", "<9"),
               ("N", "instances", ">6"), ("master %", "master_cpu_percent", ">10"),
               ("backup %", "backup_cpu_percent", ">10"), ("RSS m MiB", "master_rss_mib", ">11"),
               ("up s", "all_vips_up_s", ">7"), ("uplink s", "uplink_failover_s", ">10"),
               ("target s", "target_s", ">10"))
    print_columns(columns, results)


def print_ratios(results: list[dict], daemons: list[str]) -> None:
    for daemon in daemons:
        for role in ("master", "backup"):
            ratios = []
            for r in results:
                if r["daemon"] != daemon or not r["trackers"]:
                    continue
                base = next((b for b in results if b["daemon"] == daemon and not b["trackers"]
                             and b["round"] == r["round"]), None)
                key = f"{role}_cpu_percent"
                if base and base.get(key) and r.get(key) is not None:
                    ratios.append(r[key] / base[key])
            if ratios:
                print(f"{daemon} {role}: tracked/untracked CPU median {statistics.median(ratios):.2f}x"
                      f" over {len(ratios)} round(s) ({', '.join(f'{x:.2f}' for x in ratios)})")
        moves = [r["uplink_failover_s"] for r in results
                 if r["daemon"] == daemon and r.get("uplink_failover_s") is not None]
        targets = [r["target_s"] for r in results if r["daemon"] == daemon and r.get("target_s")]
        if moves:
            print(f"{daemon}: uplink down -> every VIP on the peer: median "
                  f"{statistics.median(moves):.3f} s (target {targets[0]:.3f} s = one advert "
                  f"interval + Skew_Time)")


if __name__ == "__main__":
    main()
