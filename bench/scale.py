"""hivrrp and keepalived side by side on the same generated config.

    python bench/scale.py [--runs "1000:2:1 4000:2:1 1000:3:0.1"] [--window 10] [--rounds 3]

For each run (instances:version:advert_int) and each daemon, in one namespace
topology per run (two routers, one veth segment per 250 instances): start
the master (priority 200) and the backup (100), measure the time until the
master holds every VIP, the steady CPU of both daemons over --window seconds
(from /proc, whole process trees: keepalived's VRRP child included), their
RSS, then the time until the backup holds every VIP after SIGKILL of the
master, and after SIGTERM of a restarted master (and until that master exits).
Prints a table, the CPU ratios of each daemon to the first one (keepalived)
within each round and their medians over --rounds, then one JSON line per run.
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

from hivrrp.tools.lab import LOW, Lab, master_down_interval

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# keepalived took from 2 s to over 60 s to bring up 1,000 v3 VIPs at 0.1 s here.
START_TIMEOUT = 180


def tree(pid: int) -> list[int]:
    """pid and all its descendants (keepalived forks its VRRP process)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def kill_tree(pid: int) -> None:
    """SIGKILL pid and its descendants as one power cut: every process stopped
    first. keepalived's VRRP child has PR_SET_PDEATHSIG(SIGTERM): killed parent
    first, it had its parent's death as a SIGTERM and began a clean shutdown,
    priority-0 adverts included, before its own SIGKILL came, and the backup
    took some VIPs over after Skew_Time (65 ms at 0.1 s) instead of
    Master_Down_Interval. A stopped process handles no signal; SIGKILL ends it."""
    pids = tree(pid)
    for signum in (signal.SIGSTOP, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, signum)
            except ProcessLookupError:
                pass


def proc_total(pids: list[int], filename: str, field) -> int:
    """Sum of field(text of /proc/PID/filename) over the processes still there."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/{filename}") as f:
                total += field(f.read())
        except (OSError, IndexError, ValueError):
            pass
    return total


def cpu_ticks(pids: list[int]) -> int:
    def utime_stime(stat: str) -> int:
        fields = stat.rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    return proc_total(pids, "stat", utime_stime)


def rss_kib(pids: list[int]) -> int:
    return proc_total(pids, "status",
                      lambda status: int(status.split("VmRSS:")[1].split()[0]))


class Bench(Lab):
    poll_interval = 0.02

    def __init__(self, instances: int, version: int, advert_int: float, daemon: str,
                 workdir: Path) -> None:
        super().__init__(instances, "hivrrp", workdir, out=lambda *_: None)
        self.version, self.advert_int, self.daemon = version, advert_int, daemon
        self.hivrrp_path: str | None = None

    def launch(self, name: str):
        saved = os.environ.get("PYTHONPATH")
        if self.daemon == "hivrrp" and self.hivrrp_path:
            os.environ["PYTHONPATH"] = self.hivrrp_path  # another build, for before/after runs
        try:
            return self.start(name, self.daemon, version=self.version,
                              advert_int=self.advert_int)
        finally:
            if saved is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = saved

    @property
    def backup_mdi(self) -> float:
        return master_down_interval(LOW, self.advert_int, self.version)

    def measure(self, window: float) -> dict:
        n, mdi = self.instances, self.backup_mdi
        result = {"daemon": self.label, "instances": n, "version": self.version,
                  "advert_int": self.advert_int}
        started = time.monotonic()
        master = self.launch("r1")
        backup = self.launch("r2")
        up = self.wait_for_vips("r1", START_TIMEOUT)
        result["all_vips_up_s"] = None if up is None else round(time.monotonic() - started, 2)
        if up is None:
            return result
        time.sleep(3)  # past the start-up bursts (GARPs, VIP adds)
        pids = {"master": tree(master.pid), "backup": tree(backup.pid)}
        before = {k: cpu_ticks(v) for k, v in pids.items()}
        t0 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - t0
        adverts = n * elapsed / self.advert_int
        for role, p in pids.items():
            cpu_s = (cpu_ticks(p) - before[role]) / CLOCK_TICKS
            result[f"{role}_cpu_percent"] = round(100 * cpu_s / elapsed, 2)
            result[f"{role}_rss_mib"] = round(rss_kib(p) / 1024, 1)
            result[f"{role}_us_per_advert"] = round(cpu_s / adverts * 1e6, 2)
        killed = time.monotonic()
        kill_tree(master.pid)
        master.wait()  # reap it: keepalived refuses to start while its old PID is a zombie
        moved = self.wait_for_vips("r2", mdi + 30)
        result["sigkill_move_s"] = None if moved is None else round(time.monotonic() - killed, 2)
        result["master_down_interval_s"] = round(mdi, 3)
        return result

    def measure_sigterm(self) -> tuple[float | None, float | None]:
        """A fresh pair: elect, SIGTERM the master; seconds until the backup holds
        everything, and until the master has exited (None: not within 30 s)."""
        mdi = self.backup_mdi
        master = self.launch("r1")
        self.launch("r2")
        if self.wait_for_vips("r1", START_TIMEOUT) is None:
            return None, None
        time.sleep(2)
        stopped = time.monotonic()
        os.kill(master.pid, signal.SIGTERM)  # keepalived's parent passes it to its children
        moved = self.wait_for_vips("r2", mdi + 30)
        moved_s = None if moved is None else round(time.monotonic() - stopped, 2)
        try:
            master.wait(max(0.0, 30 - (time.monotonic() - stopped)))
            exited_s = round(time.monotonic() - stopped, 2)
        except subprocess.TimeoutExpired:
            exited_s = None   # close() kills it
        return moved_s, exited_s


def run_one(instances: int, version: int, interval: float, daemon: str, path: str,
            label: str, window: float) -> dict:
    result = {}
    for phase in ("main", "sigterm"):
        workdir = Path(tempfile.mkdtemp(prefix="hivrrp-scale-"))
        bench = Bench(instances, version, interval, daemon, workdir)
        bench.hivrrp_path = path or None
        bench.label = label
        try:
            bench.build()
            if phase == "main":
                result = bench.measure(window)
            else:
                result["sigterm_move_s"], result["sigterm_exit_s"] = bench.measure_sigterm()
        finally:
            bench.close()
            shutil.rmtree(workdir, ignore_errors=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="1000:2:1 4000:2:1 1000:3:0.1")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat every run; the daemons' order alternates between rounds")
    parser.add_argument("--daemons", default="keepalived,hivrrp",
                        help="comma-separated; hivrrp@DIR runs the hivrrp installed in DIR")
    args = parser.parse_args()
    # SIGTERM unwinds like Ctrl-C, through the finally blocks that stop the
    # daemons and delete the namespaces.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if os.geteuid() != 0 or shutil.which("keepalived") is None:
        sys.exit("bench/scale.py needs root and keepalived")
    if not 1 <= args.rounds <= 20:
        sys.exit("--rounds must be 1..20")
    daemons = args.daemons.split(",")
    results = []
    for spec in args.runs.split():
        instances, version, interval = spec.split(":")
        for round_ in range(args.rounds):
            # Alternate the order so that a drift in the machine's load does
            # not always fall on the same daemon.
            for spec_daemon in (daemons if round_ % 2 == 0 else daemons[::-1]):
                daemon, _, path = spec_daemon.partition("@")
                result = run_one(int(instances), int(version), float(interval), daemon, path,
                                 spec_daemon if path else daemon, args.window)
                result["round"] = round_
                results.append(result)
                print(json.dumps(result), file=sys.stderr, flush=True)
    print_table(results)
    print_ratios(results, daemons)
    for r in results:
        print(json.dumps(r))


def print_table(results: list[dict]) -> None:
    columns = (("daemon", "daemon", "<11"), ("N", "instances", ">6"), ("v", "version", ">3"),
               ("int", "advert_int", ">5"), ("master %", "master_cpu_percent", ">10"),
               ("backup %", "backup_cpu_percent", ">10"),
               ("us/adv m", "master_us_per_advert", ">10"),
               ("us/adv b", "backup_us_per_advert", ">10"), ("RSS m MiB", "master_rss_mib", ">11"),
               ("RSS b MiB", "backup_rss_mib", ">11"), ("up s", "all_vips_up_s", ">7"),
               ("KILL s", "sigkill_move_s", ">8"), ("TERM s", "sigterm_move_s", ">8"),
               ("exit s", "sigterm_exit_s", ">8"))
    print_columns(columns, results)


def print_columns(columns: tuple, results: list[dict]) -> None:
    """One line per result under (title, key, alignment) columns."""
    print("".join(f"{title:{align}}" for title, _, align in columns))
    for r in results:
        # A run that failed part-way (no VIPs up in time) shows '-' where it has no figure.
        print("".join(f"{str(r[key] if r.get(key) is not None else '-')[:11]:{align}}"
                      for _, key, align in columns))


def print_ratios(results: list[dict], daemons: list[str]) -> None:
    """CPU of every other daemon over the first one's, per round; medians over rounds."""
    base = daemons[0]
    runs: dict[tuple, dict[int, dict[str, dict]]] = {}
    for r in results:
        key = (r["instances"], r["version"], r["advert_int"])
        runs.setdefault(key, {}).setdefault(r["round"], {})[r["daemon"]] = r
    for key, rounds in runs.items():
        for other in daemons[1:]:
            ratios: dict[str, list[float]] = {"master": [], "backup": []}
            for pair in rounds.values():
                if base not in pair or other not in pair:
                    continue
                for role in ratios:
                    b, o = pair[base].get(f"{role}_cpu_percent"), pair[other].get(
                        f"{role}_cpu_percent")
                    if b and o is not None:
                        ratios[role].append(o / b)
            if not ratios["master"]:
                continue
            print(f"N={key[0]} v{key[1]} int {key[2]:g}: {other}/{base} CPU, median of "
                  f"{len(ratios['master'])} rounds: master {statistics.median(ratios['master']):.2f}x "
                  f"(rounds {', '.join(f'{x:.2f}' for x in ratios['master'])}), backup "
                  f"{statistics.median(ratios['backup']):.2f}x "
                  f"(rounds {', '.join(f'{x:.2f}' for x in ratios['backup'])})")


if __name__ == "__main__":
    main()
