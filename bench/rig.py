"""What bench/follow.py and bench/sendpath.py share: the point-to-point topology,
starting a pair of daemons on a given configuration, the steady window and the
SIGKILL takeover timed by the netlink address monitor (bench/addrmon.py).

One run: r1 (the master) and r2 (the backup) start on their configurations;
"start" is from r1's daemon starting (past `ip netns exec`) until r1 holds
every VIP; after SETTLE seconds the steady window measures the CPU (% of one
core, whole process trees) and RSS of both, and the packets r1 sent on its
links; then r1's daemon is killed (SIGKILL; on the bridged lab its switch
ports go down with it: a power cut, so its kernel no longer answers for the
VIPs) and the monitor in r2's namespace stamps every VIP r2 adds. With ping
targets, clients ping them across the kill.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from addrmon import AddressMonitor, timeline
from cleanup import ignoring_signals
from e2e import FAILOVER_SLACK, SETTLE, Pinger, Run, exec_time, longest_gap_ms, start_timeout
from hivrrp.tools.lab import PER_SEGMENT, Segment
from hivrrp.tools.lab.topology import in_netns
from scale import CLOCK_TICKS, cpu_ticks, kill_tree, rss_kib, tree

PING_WARMUP = 1.0      # seconds of replies before the kill: every pinger has its ARP entry
PING_AFTER = 1.0       # seconds of replies after every VIP moved


class Bridged(Run):
    """The lab's topology: r1, r2 and a client on one bridge per 250 instances."""

    kind = "bridge"
    power_cut = True


class PointToPoint(Run):
    """r1 and r2 only, one veth pair per 250 instances, no bridge and no client.

    No power cut here: taking r1's end down takes the pair's carrier away on r2
    too (its instances would go to FAULT), so the kill is the daemon's alone."""

    kind = "p2p"
    power_cut = False

    def build(self) -> None:
        t = self.topology
        for name in ("r1", "r2"):
            self.ns[name] = t.netns(name)
        count = math.ceil(self.instances / PER_SEGMENT)
        self.segments = [Segment(k, f"10.{100 + k}") for k in range(count)]
        r1 = [f"link add lab{s.index} type veth peer name lab{s.index} netns {self.ns['r2']}"
              for s in self.segments]
        for name, host, commands in (("r1", 1, r1), ("r2", 2, [])):
            commands += [f"link set lab{s.index} up" for s in self.segments]
            commands += [f"address add {s.address(host)}/16 dev lab{s.index}"
                         for s in self.segments]
            out = subprocess.run(in_netns(self.ns[name], "ip", "-batch", "-"),
                                 input="\n".join(commands), text=True, capture_output=True,
                                 timeout=120)
            if out.returncode != 0:
                raise RuntimeError(f"building {name}'s links: {out.stderr.strip()}")

    def ports(self, name: str, up: bool) -> None:
        """No switch: nothing to power off."""


TOPOLOGIES = {"bridge": Bridged, "p2p": PointToPoint}


def progress(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def launch(lab: Run, name: str, daemon: str, conf: str, tag: str,
           hivrrp_args: tuple[str, ...] = ()) -> subprocess.Popen:
    """Start `daemon` in `name`'s namespace on the configuration text `conf`."""
    path = lab.workdir / f"{name}-{tag}.conf"
    path.write_text(conf)
    log = str(lab.workdir / f"{name}-{tag}.log")
    if daemon == "keepalived":
        run = lab.workdir / f"ka-{name}"
        run.mkdir(exist_ok=True)
        for stale in run.glob("*.pid"):
            stale.unlink()   # keepalived refuses to start over a pid file it cannot judge
        return lab.topology.start(
            lab.ns[name], "keepalived", "--dont-fork", "--log-console", "--vrrp", "--use-file",
            str(path), "--pid", str(run / "a.pid"), "--vrrp_pid", str(run / "v.pid"),
            "--checkers_pid", str(run / "c.pid"), log_path=log)
    return lab.topology.start(lab.ns[name], sys.executable, "-m", "hivrrp", "run", "-f",
                              str(path), "--log-level", "info", "--control",
                              str(lab.workdir / f"{name}.sock"), *hivrrp_args, log_path=log)


def tx_packets(lab: Run, name: str) -> int:
    """Packets `name` sent on its lab links (either topology)."""
    out = subprocess.run(in_netns(lab.ns[name], "ip", "-s", "-j", "link", "show"),
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return sum(link["stats64"]["tx"]["packets"] for link in json.loads(out)
               if link["ifname"].startswith("lab"))


def ping_gap_ms(replies: list[float], event: float) -> float | None:
    """The longest silence around `event`; None unless replies came both
    before it (the pinger was up) and after it."""
    if not any(t <= event for t in replies):
        return None
    return longest_gap_ms(replies, event)


def gap_summary(gaps: dict[str, float | None]) -> dict:
    """Max and median of the per-VIP gaps, and the VIPs without a figure."""
    known = [g for g in gaps.values() if g is not None]
    return {"ping_gap_max_ms": max(known) if known else None,
            "ping_gap_median_ms": round(statistics.median(known), 1) if known else None,
            "ping_silent": sorted(v for v, g in gaps.items() if g is None)}


def measure(lab: Run, result: dict, daemon: str, confs: dict[str, str], tag: str, window: float,
            mdi: float, hivrrp_args: tuple[str, ...] = (), pings: list[str] = (),
            ping_interval: float = 0.002) -> dict:
    """One run (module docstring) into `result`; a note instead of figures where it failed.
    The lab is reset afterwards, also on failure."""
    n = lab.instances
    try:
        master = launch(lab, "r1", daemon, confs["r1"], tag, hivrrp_args)
        backup = launch(lab, "r2", daemon, confs["r2"], tag, hivrrp_args)
        started = exec_time(master.pid)
        timeout = start_timeout(n)
        if lab.until(lambda: lab.vip_count("r1") >= n or master.poll() is not None
                     or backup.poll() is not None, timeout) is None:
            result["note"] = (f"held {lab.vip_count('r1')} of {n} VIPs after {timeout:.0f} s: "
                              "cannot keep up")
            return result
        if master.poll() is not None or backup.poll() is not None:
            result["note"] = (f"{daemon} exited at start (status {master.poll()} / "
                              f"{backup.poll()}; logs in {lab.workdir})")
            return result
        result["start_s"] = round(time.monotonic() - started, 2)
        time.sleep(SETTLE)
        steady(lab, result, master, backup, window)
        held_r1, held_r2 = lab.vip_count("r1"), lab.vip_count("r2")
        if held_r2 or held_r1 < n:
            result["note"] = (f"unstable: r1 held {held_r1} and the backup {held_r2} of {n} "
                              "VIPs after the steady window")
            return result
        takeover(lab, result, master, mdi, pings, ping_interval)
        return result
    finally:
        with ignoring_signals():
            lab.reset()


def steady(lab: Run, result: dict, master, backup, window: float) -> None:
    pids = {"master": tree(master.pid), "backup": tree(backup.pid)}
    before = {role: cpu_ticks(p) for role, p in pids.items()}
    sent = tx_packets(lab, "r1")
    t0 = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - t0
    sent = tx_packets(lab, "r1") - sent
    for role, p in pids.items():
        cpu_s = (cpu_ticks(p) - before[role]) / CLOCK_TICKS
        result[f"{role}_cpu_percent"] = round(100 * cpu_s / elapsed, 2)
        result[f"{role}_rss_mib"] = round(rss_kib(p) / 1024, 1)
    result["master_pps"] = round(sent / elapsed)


def takeover(lab: Run, result: dict, master, mdi: float, pings: list[str],
             ping_interval: float) -> None:
    n = lab.instances
    monitor = AddressMonitor(lab.ns["r2"]).start()
    pingers = {vip: Pinger(lab.ns["client"], vip, lab.workdir / f"ping-{vip}.txt", ping_interval)
               for vip in pings}
    try:
        time.sleep(PING_WARMUP if pingers else 0.2)
        killed_wall, killed = time.time(), time.monotonic()
        kill_tree(master.pid)
        if lab.power_cut:
            lab.ports("r1", False)
        monitor.wait_for(n, mdi + FAILOVER_SLACK)
        time.sleep(PING_AFTER if pingers else 0.05)
    finally:
        replies = {vip: p.stop() for vip, p in pingers.items()}
        monitor.stop()
    moved = timeline(monitor.events, killed, n)
    result["kill_first_vip_s"], result["kill_all_vips_s"] = moved["first_s"], moved["all_s"]
    if monitor.overruns:
        result["note"] = (f"the address monitor overran {monitor.overruns} times: "
                          "the SIGKILL figures may miss VIPs")
    elif moved["all_s"] is None:
        result["note"] = (f"r2 held {lab.vip_count('r2')} of {n} VIPs "
                          f"{mdi + FAILOVER_SLACK:.0f} s after the kill")
    if pingers:
        gaps = {vip: ping_gap_ms(times, killed_wall) for vip, times in replies.items()}
        summary = gap_summary(gaps)
        result["kill_ping_gap_max_ms"] = summary["ping_gap_max_ms"]
        result["kill_ping_gap_median_ms"] = summary["ping_gap_median_ms"]
        result["kill_ping_gaps_ms"] = gaps
        if summary["ping_silent"]:
            result["kill_ping_silent"] = summary["ping_silent"]
    master.wait(10)    # reaped: keepalived refuses to start while its old PID is a zombie
    lab.topology.processes.remove(master)


def hivrrp_features() -> dict:
    """What the hivrrp this interpreter runs supports: `follow` (the config
    check accepts it) and `--send-path` (in `hivrrp run --help`), each with the
    reason when not."""
    python = [sys.executable, "-m", "hivrrp"]
    features: dict = {}
    help_text = subprocess.run([*python, "run", "--help"], capture_output=True, text=True,
                               timeout=60).stdout
    features["send_path"] = "--send-path" in help_text
    if not features["send_path"]:
        features["send_path_reason"] = "`hivrrp run --help` has no --send-path"
    with tempfile.TemporaryDirectory(prefix="hivrrp-bench-") as tmp:
        conf = Path(tmp) / "follow.conf"
        conf.write_text(probe_follow_conf())
        out = subprocess.run([*python, "check", "--json", "-f", str(conf)], capture_output=True,
                             text=True, timeout=60)
    refusal = follow_refused(out.stdout)
    features["follow"] = refusal is None
    if refusal:
        features["follow_reason"] = f"hivrrp check: {refusal}"
    return features


def probe_follow_conf() -> str:
    """A leader and a follower, on an interface that need not exist (check only warns)."""
    lines = ["global_defs {", "    vrrp_version 3", "}"]
    for vrid, extra in ((1, []), (2, ["    follow probe_leader"])):
        lines += [f"vrrp_instance {'probe_leader' if vrid == 1 else 'probe_follower'} {{",
                  "    interface hvbench0", f"    virtual_router_id {vrid}", "    priority 100",
                  "    advert_int 0.01", *extra,
                  "    virtual_ipaddress {", f"        10.100.{vrid}.1/16", "    }", "}"]
    return "\n".join(lines) + "\n"


def follow_refused(check_json: str) -> str | None:
    """The check's error about `follow`, None if it accepted it; a note if its
    output is not the JSON it should be."""
    try:
        errors = json.loads(check_json).get("errors", [])
    except (json.JSONDecodeError, AttributeError):
        return f"no JSON from `hivrrp check --json` ({check_json.strip()[:80]!r})"
    for error in errors:
        if "follow" in error.get("message", "") and error.get("fatal", True):
            return error["message"]
    return None
