"""End to end: hivrrp and keepalived on the same generated keepalived.conf, in namespaces.

    python bench/e2e.py [--sizes 100,1000,4000,10000] [--modes 2:1,3:0.1]
                        [--extra 10000:3:1] [--daemons hivrrp,keepalived]
                        [--window 10] [--json]

For every size N one topology (hivrrp.tools.lab: routers r1 and r2, a client, one
bridged segment per 250 instances, a switch namespace) serves every mode
(version:advert_int) and daemon in turn. Each run, with r1 at priority 200
and r2 at 100 on the identical generated configuration:

  start      seconds from r1's daemon starting (once `ip netns exec` has set
             up its namespace, which itself took up to a minute at times,
             for either daemon) until r1 holds every VIP
  steady     CPU (% of one core, whole process tree: keepalived's VRRP child
             included) and RSS of master and backup over --window seconds,
             and the packets per second each sent on its links (the switch
             ports' counters)
  SIGKILL    r1 is killed and its switch ports go down at once (a power cut:
             its kernel no longer answers for the VIPs); seconds until r2
             holds every VIP, and the longest gap in the replies of a client
             pinging the last instance's VIP every 10 ms
  SIGTERM    r1 restarts and takes every VIP back (preemption); then SIGTERM:
             seconds until r2 holds every VIP, the ping gap, and seconds
             until r1 has exited

"Holds every VIP" is read by a netlink address dump every 20 ms in the
router's namespace. A daemon that does not hold every VIP within the start
timeout, or whose backup takes VIPs while its master runs, gets a note
instead of figures, and is not run at larger sizes in that mode. Needs root,
iproute2 and ping; keepalived runs only where it is installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cleanup import ignoring_signals  # noqa: E402
from hivrrp.tools.lab import LOW, Lab, master_down_interval  # noqa: E402
from hivrrp.tools.lab.topology import in_netns  # noqa: E402
from hivrrp.util.text import plural  # noqa: E402
from scale import CLOCK_TICKS, cpu_ticks, kill_tree, rss_kib, tree  # noqa: E402

SETTLE = 3.0                 # seconds after the last VIP: start-up bursts (GARP, VIP adds) over
PING_INTERVAL = 0.01
FAILOVER_SLACK = 30.0        # seconds past Master_Down_Interval before a failover is called failed
STOP_WAIT = 30.0


def start_timeout(instances: int) -> float:
    return 60.0 + instances / 100


def exec_time(pid: int, limit: float = 120.0) -> float:
    """When `ip netns exec` became the daemon (monotonic). Its mount namespace
    set-up took from milliseconds to a minute here, whichever daemon it ran:
    start-up is timed from the daemon's own start, not from that."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                program = f.read().split(b"\0", 1)[0]
        except OSError:
            break                    # gone: the wait for VIPs will say so
        if program and not program.endswith(b"ip"):
            break
        time.sleep(0.005)
    return time.monotonic()


def progress(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


class Pinger:
    """`ping -D -i 0.01` (or `interval`) from the client namespace; reply times from its output."""

    REPLY = re.compile(r"^\[(\d+\.\d+)\] \d+ bytes from")

    def __init__(self, ns: str, address: str, path: Path,
                 interval: float = PING_INTERVAL) -> None:
        self.path = path
        self.out = open(path, "w")
        self.proc = subprocess.Popen(
            in_netns(ns, "ping", "-n", "-D", "-i", f"{interval:g}", "-W", "1", address),
            stdout=self.out, stderr=subprocess.STDOUT)
        self.started = time.time()

    def stop(self) -> list[float]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.out.close()
        replies = []
        for line in self.path.read_text(errors="replace").splitlines():
            match = self.REPLY.match(line)
            if match:
                replies.append(float(match.group(1)))
        return replies


def longest_gap_ms(replies: list[float], event: float) -> float | None:
    """The longest silence between two replies around `event` (wall clock),
    None if no reply came after it."""
    before = [t for t in replies if t <= event]
    after = [t for t in replies if t > event]
    if not after:
        return None
    points = before[-1:] + after
    gaps = [b - a for a, b in zip(points, points[1:])]
    return round(max(gaps) * 1000, 1) if gaps else None


class Run(Lab):
    poll_interval = 0.02

    def __init__(self, instances: int, workdir: Path) -> None:
        super().__init__(instances, "hivrrp", workdir, out=lambda *_: None)

    def batch(self, ns: str, commands: list[str]) -> None:
        """Many `ip` commands in one process: a power cut takes every port down at once."""
        subprocess.run(in_netns(ns, "ip", "-force", "-batch", "-"), input="\n".join(commands),
                       text=True, capture_output=True, timeout=60, check=False)

    def ports(self, name: str, up: bool) -> None:
        self.batch(self.switch, [f"link set {s.ports[name]} {'up' if up else 'down'}"
                                 for s in self.segments])

    def flush(self, name: str) -> None:
        """Remove the VIPs a killed daemon left (a box back from a power cut has none)."""
        self.batch(self.ns[name], [f"address flush dev lab{s.index} secondary"
                                   for s in self.segments])

    def port_packets(self) -> dict[str, int]:
        """Packets each router sent, summed over its switch ports (rx on the switch side)."""
        out = subprocess.run(in_netns(self.switch, "ip", "-s", "-j", "link", "show"),
                             capture_output=True, text=True, timeout=60, check=True).stdout
        rx = {link["ifname"]: link["stats64"]["rx"]["packets"] for link in json.loads(out)}
        return {name: sum(rx.get(s.ports[name], 0) for s in self.segments)
                for name in ("r1", "r2")}

    def reset(self) -> None:
        for proc in list(self.topology.processes):
            if proc.poll() is None:
                self.topology.stop(proc)
        self.topology.processes.clear()
        self.ports("r1", True)
        for name in ("r1", "r2"):
            self.flush(name)

    def last_vip(self) -> str:
        return self.segments[-1].vip((self.instances - 1) % 250 + 1)

    def measure(self, daemon: str, version: int, advert_int: float, window: float) -> dict:
        n = self.instances
        mdi = master_down_interval(LOW, advert_int, version)
        result: dict = {"daemon": daemon, "instances": n, "version": version,
                        "advert_int": advert_int, "master_down_interval_s": round(mdi, 3)}
        label = f"N={n} v{version} {advert_int:g} s {daemon}"
        try:
            progress(f"{label}: starting both routers, waiting for {n} VIPs on r1")
            master = self.start("r1", daemon, version=version, advert_int=advert_int)
            backup = self.start("r2", daemon, version=version, advert_int=advert_int)
            launched = time.monotonic()
            started = exec_time(master.pid)
            result["netns_exec_s"] = round(started - launched, 2)
            timeout = start_timeout(n)
            if self.until(lambda: self.vip_count("r1") >= n or master.poll() is not None
                          or backup.poll() is not None, timeout) is None:
                result["note"] = (f"held {self.vip_count('r1')} of {n} VIPs after "
                                  f"{timeout:.0f} s: cannot keep up")
                return result
            if master.poll() is not None or backup.poll() is not None:
                result["note"] = (f"{daemon} exited at start (status {master.poll()} / "
                                  f"{backup.poll()}; logs in {self.workdir})")
                return result
            result["start_s"] = round(time.monotonic() - started, 2)
            time.sleep(SETTLE)
            progress(f"{label}: steady state for {window:g} s")
            self.steady(result, master, backup, window)
            if self.vip_count("r2") or self.vip_count("r1") < n:
                result["note"] = (f"unstable: r1 held {self.vip_count('r1')} and the backup "
                                  f"{self.vip_count('r2')} of {n} VIPs after the steady window")
                return result
            progress(f"{label}: SIGKILL and power cut of r1")
            self.sigkill(result, master, mdi)
            if result.get("kill_failover_s") is None:
                result["note"] = f"r2 did not take every VIP within {mdi + FAILOVER_SLACK:.0f} s"
                return result
            progress(f"{label}: r1 back, waiting for preemption, then SIGTERM")
            self.sigterm(result, daemon, version, advert_int, mdi)
            return result
        finally:
            with ignoring_signals():
                self.reset()

    def steady(self, result: dict, master, backup, window: float) -> None:
        pids = {"master": tree(master.pid), "backup": tree(backup.pid)}
        before = {role: cpu_ticks(p) for role, p in pids.items()}
        packets = self.port_packets()
        t0 = time.monotonic()
        time.sleep(window)
        elapsed = time.monotonic() - t0
        after = self.port_packets()
        for role, p in pids.items():
            cpu_s = (cpu_ticks(p) - before[role]) / CLOCK_TICKS
            result[f"{role}_cpu_percent"] = round(100 * cpu_s / elapsed, 2)
            result[f"{role}_rss_mib"] = round(rss_kib(p) / 1024, 1)
        for role, name in (("master", "r1"), ("backup", "r2")):
            result[f"{role}_pps"] = round((after[name] - packets[name]) / elapsed)

    def sigkill(self, result: dict, master, mdi: float) -> None:
        pinger = Pinger(self.ns["client"], self.last_vip(), self.workdir / "ping-kill.txt")
        try:
            time.sleep(0.5)
            killed_wall, killed = time.time(), time.monotonic()
            kill_tree(master.pid)
            self.ports("r1", False)
            moved = self.wait_for_vips("r2", mdi + FAILOVER_SLACK)
            result["kill_failover_s"] = (None if moved is None
                                         else round(time.monotonic() - killed, 3))
            time.sleep(1.0)
        finally:
            replies = pinger.stop()
        result["kill_ping_gap_ms"] = longest_gap_ms(replies, killed_wall)
        master.wait(10)   # reaped: keepalived refuses to start while its old PID is a zombie
        self.topology.processes.remove(master)

    def sigterm(self, result: dict, daemon: str, version: int, advert_int: float,
                mdi: float) -> None:
        n = self.instances
        self.flush("r1")
        self.ports("r1", True)
        master = self.start("r1", daemon, version=version, advert_int=advert_int)
        back = self.until(lambda: self.vip_count("r1") >= n and self.vip_count("r2") == 0,
                          start_timeout(n))
        if back is None:
            result["note"] = "r1 did not take the VIPs back after its restart"
            return
        time.sleep(SETTLE)
        pinger = Pinger(self.ns["client"], self.last_vip(), self.workdir / "ping-term.txt")
        try:
            time.sleep(0.5)
            stopped_wall, stopped = time.time(), time.monotonic()
            os.kill(master.pid, signal.SIGTERM)   # keepalived's parent passes it to its children
            moved = self.wait_for_vips("r2", mdi + FAILOVER_SLACK)
            result["term_failover_s"] = (None if moved is None
                                         else round(time.monotonic() - stopped, 3))
            try:
                master.wait(max(0.0, STOP_WAIT - (time.monotonic() - stopped)))
                result["term_exit_s"] = round(time.monotonic() - stopped, 2)
            except subprocess.TimeoutExpired:
                result["term_exit_s"] = None      # reset() stops it
            time.sleep(1.0)
        finally:
            replies = pinger.stop()
        result["term_ping_gap_ms"] = longest_gap_ms(replies, stopped_wall)


def plan_runs(sizes: list[int], modes: list[tuple[int, float]],
              extra: list[tuple[int, int, float]]) -> list[tuple[int, int, float]]:
    runs = [(n, v, i) for n in sizes for v, i in modes]
    runs += [(n, v, i) for n, v, i in extra if n in sizes and (n, v, i) not in runs]
    return sorted(runs)


def measure_all(sizes: list[int], modes: list[tuple[int, float]],
                extra: list[tuple[int, int, float]], daemons: list[str],
                window: float) -> list[dict]:
    runs = plan_runs(sizes, modes, extra)
    results: list[dict] = []
    gave_up: dict[tuple[str, int, float], int] = {}    # (daemon, version, interval) -> N
    total, done = len(runs) * len(daemons), 0
    for n in sorted({r[0] for r in runs}):
        workdir = Path(tempfile.mkdtemp(prefix="hivrrp-e2e-"))
        lab = Run(n, workdir)
        try:
            progress(f"N={n}: building the topology ({plural(-(-n // 250), 'segment')}) in "
                     f"namespaces {lab.topology.prefix}-*")
            lab.build()
            for _, version, interval in (r for r in runs if r[0] == n):
                for daemon in daemons:
                    done += 1
                    progress(f"run {done}/{total}")
                    key = (daemon, version, interval)
                    if daemon == "keepalived" and shutil.which("keepalived") is None:
                        results.append({"daemon": daemon, "instances": n, "version": version,
                                        "advert_int": interval,
                                        "note": "skipped: keepalived is not installed"})
                        continue
                    if key in gave_up:
                        results.append({"daemon": daemon, "instances": n, "version": version,
                                        "advert_int": interval,
                                        "note": f"skipped: could not keep up at N={gave_up[key]}"})
                        continue
                    result = lab.measure(daemon, version, interval, window)
                    if "note" in result and "start_s" not in result or "unstable" in result.get(
                            "note", ""):
                        gave_up[key] = n
                    results.append(result)
                    progress(json.dumps(result))
        finally:
            with ignoring_signals():
                lab.close()
                shutil.rmtree(workdir, ignore_errors=True)
    return results


COLUMNS = (("daemon", "daemon"), ("N", "instances"), ("v", "version"), ("int s", "advert_int"),
           ("start s", "start_s"), ("CPU m %", "master_cpu_percent"),
           ("CPU b %", "backup_cpu_percent"), ("RSS m MiB", "master_rss_mib"),
           ("RSS b MiB", "backup_rss_mib"), ("pps m", "master_pps"),
           ("KILL s", "kill_failover_s"), ("KILL gap ms", "kill_ping_gap_ms"),
           ("TERM s", "term_failover_s"), ("TERM gap ms", "term_ping_gap_ms"),
           ("exit s", "term_exit_s"), ("note", "note"))


def parse_modes(text: str) -> list[tuple[int, float]]:
    out = []
    for spec in text.split(","):
        version, interval = spec.split(":")
        out.append((int(version), float(interval)))
    return out


def parse_extra(text: str) -> list[tuple[int, int, float]]:
    out = []
    for spec in filter(None, text.split(",")):
        n, version, interval = spec.split(":")
        out.append((int(n), int(version), float(interval)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,4000,10000")
    parser.add_argument("--modes", default="2:1,3:0.1", help="version:advert_int, comma-separated")
    parser.add_argument("--extra", default="10000:3:1",
                        help="further N:version:advert_int runs (if N is among the sizes)")
    parser.add_argument("--daemons", default="hivrrp,keepalived")
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="one JSON line at the end")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/e2e.py needs root (network namespaces)")
    for tool in ("ip", "ping", "nsenter"):
        if shutil.which(tool) is None:
            sys.exit(f"bench/e2e.py needs {tool}")
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",")})
        modes, extra = parse_modes(args.modes), parse_extra(args.extra)
    except ValueError:
        sys.exit("--sizes N,N..., --modes V:INT,..., --extra N:V:INT,...")
    daemons = [d for d in args.daemons.split(",") if d]
    if (not sizes or sizes[0] < 1 or sizes[-1] > 20000
            or any(v not in (2, 3) or not 0.01 <= i <= 40 for v, i in modes)
            or not set(daemons) <= {"hivrrp", "keepalived"} or not 1 <= args.window <= 600):
        sys.exit("sizes 1..20000, versions 2|3, intervals 0.01..40 s, daemons hivrrp|keepalived, "
                 "--window 1..600")
    # SIGTERM unwinds like Ctrl-C, through the finally blocks that stop the
    # daemons and delete the namespaces.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    results = measure_all(sizes, modes, extra, daemons, args.window)
    print("  ".join(title for title, _ in COLUMNS))
    for r in results:
        print("  ".join(str(r.get(key, "-")) for _, key in COLUMNS))
    if args.json:
        print(json.dumps({"runs": results, "window_s": args.window}))


if __name__ == "__main__":
    main()
