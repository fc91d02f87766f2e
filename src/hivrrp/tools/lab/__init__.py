"""`hivrrp lab`: a throwaway VRRP network in namespaces, an election and a failover.

Two routers and a client share one bridged segment per 250 instances (a
VLAN each, on a real router). r1 (priority 200) and r2 (100) run hivrrp, or
keepalived on r2 with --peer keepalived. The lab times the election, powers
r1 off (SIGKILL and its links down) and times until every VIP answers ARP
from r2, then powers r1 on and times the return. Everything is removed at the
end, also on Ctrl-C.
"""

from __future__ import annotations

import json
import math
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hivrrp.tools.lab.nsaddr import ipv4_addresses, socket_in_netns
from hivrrp.tools.lab.topology import Topology
from hivrrp.util.text import plural

PER_SEGMENT = 250
IFA_F_SECONDARY = 0x01


def master_down_interval(priority: int, advert_int: float = 1.0, version: int = 2) -> float:
    """3 x Advertisement_Interval + Skew_Time (RFC 3768 / RFC 9568)."""
    skew = (256 - priority) / 256 * (1.0 if version == 2 else advert_int)
    return 3 * advert_int + skew
HIGH, LOW = 200, 100


@dataclass
class Segment:
    index: int
    subnet: str                                # "10.100" -> 10.100.0.0/16
    ports: dict[str, str] = field(default_factory=dict)   # node -> switch-side port

    def address(self, host: int) -> str:
        return f"{self.subnet}.0.{host}"

    def vip(self, vrid: int) -> str:
        return f"{self.subnet}.{vrid}.1"


def keepalived_conf(segments: list[Segment], instances: int, priority: int, *,
                    version: int = 2, advert_int: float = 1.0,
                    instance_extra: Callable[[str], list[str]] | None = None) -> str:
    """Plain keepalived syntax (no macros), readable by keepalived and hivrrp alike.
    instance_extra(name): more lines for that instance (benchmarks' notify lines)."""
    lines = ["global_defs {", "    router_id lab", f"    vrrp_version {version}",
             "    vrrp_garp_master_delay 0", "}"]
    for n in range(instances):
        segment, vrid = segments[n // PER_SEGMENT], n % PER_SEGMENT + 1
        lines += [f"vrrp_instance seg{segment.index}_vr{vrid} {{",
                  f"    interface lab{segment.index}",
                  f"    virtual_router_id {vrid}",
                  f"    priority {priority}",
                  f"    advert_int {advert_int:g}",
                  "    virtual_ipaddress {",
                  f"        {segment.vip(vrid)}/16",
                  "    }"]
        if instance_extra is not None:
            lines += instance_extra(f"seg{segment.index}_vr{vrid}")
        lines.append("}")
    return "\n".join(lines) + "\n"


class Lab:
    poll_interval = 0.05       # seconds between looks while waiting for VIPs to move

    def __init__(self, instances: int, peer: str, workdir: Path, out=print) -> None:
        self.instances = instances
        self.peer = peer
        self.workdir = workdir
        self.out = out
        self.topology = Topology()
        self.segments: list[Segment] = []
        self.ns: dict[str, str] = {}
        self.mac: dict[str, list[str]] = {}     # node -> MAC of its interface per segment
        self.report: list[tuple[str, str]] = []
        self.netlink: dict[str, socket.socket] = {}   # node -> netlink socket in its namespace

    def build(self) -> None:
        t = self.topology
        switch = t.netns("switch")
        t.behave_as_a_switch(switch)
        for name in ("r1", "r2", "client"):
            self.ns[name] = t.netns(name)
        count = math.ceil(self.instances / PER_SEGMENT)
        for k in range(count):
            segment = Segment(k, f"10.{100 + k}")
            bridge = t.segment(switch, k)
            for name, host in (("r1", 1), ("r2", 2), ("client", 100)):
                segment.ports[name] = t.plug(switch, bridge, self.ns[name], f"lab{k}",
                                             f"{segment.address(host)}/16")
            self.segments.append(segment)
        self.switch = switch
        for name in ("r1", "r2"):
            self.mac[name] = [
                t.sh("ip", "-o", "link", "show", f"lab{k}", ns=self.ns[name])
                .split("link/ether ")[1].split()[0] for k in range(count)]

    def start(self, name: str, daemon: str | None = None, *, version: int = 2,
              advert_int: float = 1.0,
              instance_extra: Callable[[str], list[str]] | None = None):
        """Write `name`'s config (r1 priority 200, r2 100) and start its daemon."""
        priority = HIGH if name == "r1" else LOW
        if daemon is None:
            daemon = "keepalived" if name == "r2" and self.peer == "keepalived" else "hivrrp"
        conf = self.workdir / f"{name}.conf"
        conf.write_text(keepalived_conf(self.segments, self.instances, priority,
                                        version=version, advert_int=advert_int,
                                        instance_extra=instance_extra))
        log = str(self.workdir / f"{name}-{daemon}.log")
        if daemon == "keepalived":
            run = self.workdir / f"ka-{name}"
            run.mkdir(exist_ok=True)
            for stale in run.glob("*.pid"):
                stale.unlink()  # keepalived refuses to start over a pid file it cannot judge
            return self.topology.start(
                self.ns[name], "keepalived", "--dont-fork", "--log-console", "--vrrp",
                "--use-file", str(conf), "--pid", str(run / "a.pid"), "--vrrp_pid",
                str(run / "v.pid"), "--checkers_pid", str(run / "c.pid"), log_path=log)
        return self.topology.start(self.ns[name], sys.executable, "-m", "hivrrp", "run", "-f",
                                   str(conf), "--log-level", "info", "--control",
                                   str(self.workdir / f"{name}.sock"), log_path=log)

    def vip_count(self, name: str) -> int:
        """How many VIPs (the /16 secondaries) `name` holds."""
        sock = self.netlink.get(name)
        if sock is None:
            sock = self.netlink[name] = socket_in_netns(self.ns[name])
        return sum(1 for prefixlen, flags, scope, _ in ipv4_addresses(sock)
                   if prefixlen == 16 and flags & IFA_F_SECONDARY and scope == 0)

    def close(self) -> None:
        for sock in self.netlink.values():
            sock.close()
        self.netlink.clear()
        self.topology.close()

    def probe(self, expect: str, timeout: float) -> dict:
        specs = []
        for n in range(0, self.instances, PER_SEGMENT):
            segment = self.segments[n // PER_SEGMENT]
            vips = ",".join(segment.vip(v + 1) for v in range(min(PER_SEGMENT,
                                                                  self.instances - n)))
            mac = self.mac[expect][segment.index]
            specs.append(f"lab{segment.index}={segment.address(100)}={mac}={vips}")
        out = self.topology.sh(sys.executable, "-m", "hivrrp.tools.lab.probe", "--timeout",
                               str(timeout), *specs, ns=self.ns["client"])
        return json.loads(out.strip().splitlines()[-1])

    def power(self, name: str, on: bool) -> None:
        for segment in self.segments:
            self.topology.sh("ip", "link", "set", segment.ports[name], "up" if on else "down",
                             ns=self.switch)
            if not on:
                # A box that lost power comes back without the VIPs VRRP gave it.
                self.topology.sh("ip", "addr", "flush", "dev", f"lab{segment.index}", "secondary",
                                 ns=self.ns[name])

    def wait_for_vips(self, name: str, timeout: float) -> float | None:
        return self.until(lambda: self.vip_count(name) >= self.instances, timeout)

    def until(self, predicate, timeout: float) -> float | None:
        """Seconds until predicate() held, or None after `timeout`."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if predicate():
                return time.monotonic() - start
            time.sleep(self.poll_interval)
        return None

    def run(self) -> bool:
        n, out = self.instances, self.out
        mdi, mdi_r1 = master_down_interval(LOW), master_down_interval(HIGH)
        peer = "keepalived" if self.peer == "keepalived" else "hivrrp"
        out(f"hivrrp lab: {plural(n, 'VRRP instance')} on {plural(len(self.segments), 'segment')} "
            f"(250 VRIDs each), r1 hivrrp priority {HIGH}, r2 {peer} priority {LOW}")
        out(f"  namespaces {self.topology.prefix}-*, logs in {self.workdir}")
        r1 = self.start("r1")
        self.start("r2")
        elected = self.wait_for_vips("r1", 30)
        if elected is None:
            out(f"  election: r1 holds {self.vip_count('r1')}/{n} VIPs after 30 s: FAILED")
            return False
        answer = self.probe("r1", 10)
        self.report.append(("election: all VIPs on r1", f"{elected:.2f} s after start "
                            f"(Master_Down_Interval {mdi_r1:.2f} s)"))
        self.report.append(("client sees r1's MAC for", f"{answer['answered']}/{n} VIPs"))
        out(f"  elected: r1 holds all {n} VIPs after {elected:.2f} s; "
            f"{answer['answered']}/{n} answer ARP from r1")

        out("  power-off of r1 (SIGKILL + links down): timing the failover to r2 ...")
        self.topology.stop(r1, signal.SIGKILL)
        self.power("r1", False)
        failover = self.probe("r2", mdi + 10)
        ok = failover["seconds"] is not None
        self.report.append(("failover: every VIP answers from r2",
                            f"{failover['seconds']:.2f} s (Master_Down_Interval {mdi:.2f} s)"
                            if ok else f"only {failover['answered']}/{n} after {mdi + 10:.0f} s"))
        out(f"  failover: {failover['answered']}/{n} VIPs answer from r2"
            + (f" after {failover['seconds']:.2f} s" if ok else " (timed out)"))

        out("  power-on of r1: timing the return (preemption) ...")
        self.power("r1", True)
        self.start("r1")
        returned = self.until(lambda: self.vip_count("r1") >= n and self.vip_count("r2") == 0,
                              mdi + 10)
        back = self.probe("r1", 5) if returned is not None else {"answered": 0}
        ok = ok and returned is not None and back["answered"] == n
        self.report.append(("return: r1 master of all, r2 of none",
                            f"{returned:.2f} s after r1 restarted (preemption after its "
                            f"Master_Down_Interval {mdi_r1:.2f} s)" if returned is not None
                            else f"not within {mdi + 10:.0f} s"))
        self.report.append(("client sees r1's MAC again for", f"{back['answered']}/{n} VIPs"))
        out("")
        width = max(len(k) for k, _ in self.report)
        for key, value in self.report:
            out(f"  {key:<{width}}  {value}")
        out(f"  {'verdict':<{width}}  {'OK' if ok else 'FAILED'}")
        return ok


def run_lab(instances: int, peer: str, keep_logs: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="hivrrp-lab-"))
    lab = Lab(instances, peer, workdir)
    interrupted = []

    def on_signal(signum, frame):
        interrupted.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        lab.build()
        ok = lab.run()
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("\nhivrrp lab: interrupted, cleaning up", file=sys.stderr)
        return 130
    finally:
        lab.close()
        signal.signal(signal.SIGTERM, previous)
        if not keep_logs:
            shutil.rmtree(workdir, ignore_errors=True)
