"""1,000 VRRP instances with use_vmac: hivrrp and keepalived on the same config.

    python bench/vmac.py [--instances 1000] [--daemons keepalived,hivrrp] [--timeout 300]

keepalived's VMAC handling broke at 100-150 instances for years (netlink
overruns and false FAULTs: its issues #390, #392, #803). For each daemon, in a
topology of its own (two routers and a client, one veth segment per 250
VRIDs, hivrrp's lab), the same generated config with `use_vmac` in every
instance runs on both routers (r1 priority 200, r2 100):

- start: seconds until both routers have every VMAC up and r1 every VIP (read
  from the kernel), the CPU seconds each daemon used until then (whole process
  trees, from /proc), and every FAULT, netlink overrun or VMAC error in its log;
- failover: r1 SIGKILLed, seconds until r2 holds every VIP, and the client's
  capture of the gratuitous ARPs: how many came from a VMAC's virtual MAC,
  for how many VIPs.

Prints one line per daemon and a JSON line each. Root and keepalived needed.
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

from hivrrp.tools.lab import Lab
from hivrrp.tools.lab.nsaddr import ipv4_addresses, socket_in_netns

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import CLOCK_TICKS, cpu_ticks, tree  # noqa: E402

FAULTS = {"hivrrp": re.compile(r"-> FAULT"), "keepalived": re.compile(r"Entering FAULT STATE")}
TROUBLE = re.compile(r"overrun|ENOBUFS|No buffer space|Unable to create VMAC|cannot set|"
                     r"cannot delete|Error removing VMAC|Netlink.*error", re.I)
VMAC_PREFIX = "00:00:5e:00:01:"


class VmacBench(Lab):
    poll_interval = 0.1

    def __init__(self, instances: int, daemon: str, workdir: Path) -> None:
        super().__init__(instances, "hivrrp", workdir, out=lambda *_: None)
        self.daemon = daemon

    def launch(self, name: str):
        return self.start(name, self.daemon, instance_extra=lambda _name: ["    use_vmac"])

    def vip_count(self, name: str) -> int:
        """The /16 addresses of `name` but its own one per segment: its VIPs,
        each the first address of its VMAC."""
        sock = self.netlink.get(name)
        if sock is None:
            sock = self.netlink[name] = socket_in_netns(self.ns[name])
        total = sum(1 for prefixlen, _flags, scope, _ in ipv4_addresses(sock)
                    if prefixlen == 16 and scope == 0)
        return total - len(self.segments)

    def vmacs_up(self, name: str) -> int:
        out = self.topology.sh("ip", "-j", "link", "show", "type", "macvlan", ns=self.ns[name])
        return sum(1 for link in json.loads(out or "[]")
                   if "UP" in link["flags"] and "LOWER_UP" in link["flags"])

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}-{self.daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def capture(self, path: Path) -> list[subprocess.Popen]:
        procs = []
        for segment in self.segments:
            proc = self.topology.popen(
                self.ns["client"], "tcpdump", "-i", f"lab{segment.index}", "-U", "-n", "-w",
                str(path.with_suffix(f".{segment.index}.pcap")), "arp",
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            assert "listening" in proc.stderr.readline().decode(errors="replace")
            procs.append(proc)
        return procs

    def garps(self, path: Path) -> tuple[int, int, int]:
        """(gratuitous ARPs, of them from a virtual MAC, VIPs so announced)."""
        frames = vmac_frames = 0
        vips: set[str] = set()
        for segment in self.segments:
            out = subprocess.run(["tcpdump", "-r", str(path.with_suffix(
                f".{segment.index}.pcap")), "-e", "-n"], capture_output=True, text=True,
                timeout=120).stdout
            for line in out.splitlines():
                match = re.match(r"\S+ (\S+) > .*Request who-has (\S+) .*tell (\S+),", line)
                if match is None or match.group(2) != match.group(3):
                    continue
                frames += 1
                if match.group(1).startswith(VMAC_PREFIX):
                    vmac_frames += 1
                    vips.add(match.group(2))
        return frames, vmac_frames, len(vips)

    def measure(self, timeout: float) -> dict:
        n = self.instances
        result = {"daemon": self.daemon, "instances": n}
        started = time.monotonic()
        r1, r2 = self.launch("r1"), self.launch("r2")
        ready = self.until(lambda: self.vmacs_up("r1") >= n and self.vmacs_up("r2") >= n
                           and self.vip_count("r1") >= n, timeout)
        pids = {"r1": tree(r1.pid), "r2": tree(r2.pid)}
        for name in ("r1", "r2"):
            result[f"{name}_start_cpu_s"] = round(cpu_ticks(pids[name]) / CLOCK_TICKS, 2)
        result["all_up_s"] = None if ready is None else round(time.monotonic() - started, 2)
        result["r1_vmacs_up"], result["r2_vmacs_up"] = self.vmacs_up("r1"), self.vmacs_up("r2")
        result["r1_vips"] = self.vip_count("r1")
        if ready is None:
            return self._logs(result)
        time.sleep(3)          # past the start's bursts
        capture = self.workdir / "failover"
        dumps = self.capture(capture)
        killed = time.monotonic()
        for pid in pids["r1"]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        r1.wait()
        moved = self.until(lambda: self.vip_count("r2") >= n, 60)
        result["failover_s"] = None if moved is None else round(time.monotonic() - killed, 2)
        result["r2_vips"] = self.vip_count("r2")
        time.sleep(2)          # the last announcements of the first round
        for dump in dumps:
            self.topology.stop(dump)
        result["garps"], result["garps_from_vmac"], result["vips_announced_from_vmac"] = \
            self.garps(capture)
        return self._logs(result)

    def _logs(self, result: dict) -> dict:
        for name in ("r1", "r2"):
            text = self.log(name)
            result[f"{name}_faults"] = len(FAULTS[self.daemon].findall(text))
            trouble = [line for line in text.splitlines() if TROUBLE.search(line)]
            result[f"{name}_trouble_lines"] = len(trouble)
            if trouble:
                result[f"{name}_trouble_first"] = trouble[0][-160:]
        return result


def run_one(instances: int, daemon: str, timeout: float, keep: bool) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="hivrrp-vmac-"))
    bench = VmacBench(instances, daemon, workdir)
    try:
        bench.build()
        return bench.measure(timeout)
    finally:
        bench.close()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs kept in {workdir}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--daemons", default="keepalived,hivrrp")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds for every VMAC and VIP to be in place")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if os.geteuid() != 0 or shutil.which("keepalived") is None or shutil.which("tcpdump") is None:
        sys.exit("bench/vmac.py needs root, keepalived and tcpdump")
    if not 1 <= args.instances <= 4000:
        sys.exit("--instances must be 1..4000")
    results = []
    for daemon in args.daemons.split(","):
        result = run_one(args.instances, daemon, args.timeout, args.keep_logs)
        results.append(result)
        print(json.dumps(result), file=sys.stderr, flush=True)
    print(f"{'daemon':<11}{'N':>6}{'up s':>8}{'CPU r1 s':>10}{'CPU r2 s':>10}"
          f"{'FAULT r1/r2':>13}{'trouble':>9}{'failover s':>12}{'GARPs':>8}{'vmac':>7}"
          f"{'VIPs':>6}")
    for r in results:
        def value(key: str) -> str:
            v = r.get(key)
            return "-" if v is None else str(v)
        print(f"{r['daemon']:<11}{r['instances']:>6}{value('all_up_s'):>8}"
              f"{value('r1_start_cpu_s'):>10}{value('r2_start_cpu_s'):>10}"
              f"{value('r1_faults') + '/' + value('r2_faults'):>13}"
              f"{r.get('r1_trouble_lines', 0) + r.get('r2_trouble_lines', 0):>9}"
              f"{value('failover_s'):>12}{value('garps'):>8}{value('garps_from_vmac'):>7}"
              f"{value('vips_announced_from_vmac'):>6}")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
