"""BGP-announced VIPs (conf/frr): from a SIGKILL of the master to every VIP routed via the peer.

    python bench/bgp.py [--instances 4000] [--rounds 3] [--scenarios process,release,power]
                        [--version 2] [--advert-int 1] [--restart-after 2]

hivrrp.tools.lab's two routers (r1 priority 200, r2 100, one bridged segment per
250 instances), each instance with one VIP, a /32 from 10.200.0.0/16; both
routers run FRR with conf/frr/frr.conf, and an upstream namespace running
conf/frr/upstream.conf peers with each over a link of its own (eBGP). Once
the upstream routes every VIP via r1 alone, a round kills r1 and times, from
the SIGKILL:

  r2 VIPs    r2 holds every VIP (hivrrp's failover)
  via r2     the upstream's routes (its kernel's table, what forwards, read
             with `ip route` every 50 ms) have r2 as a next hop of every VIP
  r2 alone   r2 is every VIP's only next hop
  r1 gone    the upstream has r1 as a next hop of no VIP (its announcements
             all withdrawn; with no route at all for a VIP until r2's comes)
  no route   the longest any one VIP had no route at the upstream (neither
             r1's nor r2's yet): the traffic it drops (or sends to a default
             route), where a SIGKILLed r1 whose VIPs stay would answer it
  restart    (process) `hivrrp run` started again in r1
  r1 clean   (process, release) r1 has none of the VIPs left (read every 50 ms)
  release    (release) the wall time of `hivrrp release`, from its start to its
             exit (Python's start-up, the configuration, removing the VIPs)
  poll       the slowest read of the upstream's routes: the figures are good
             to this plus the 50 ms between reads

Scenarios:
  process  SIGKILL of r1's hivrrp alone: the box, its links and its FRR live
           on, and so do the VIPs on its interfaces, which it goes on
           announcing. As systemd's Restart=on-failure would with
           conf/hivrrp.service's RestartSec=2s, `hivrrp run` starts again in
           r1 --restart-after seconds after the kill, and removes them.
  release  what conf/hivrrp.service does: SIGKILL of r1's hivrrp alone, and at
           once (as ExecStopPost= runs when the main process dies, before any
           Restart=) `hivrrp release -f CONF` in r1's namespace, which removes
           the VIPs the dead daemon left. No restart.
  power    a power cut: SIGKILL and every link of r1 down (LAN ports and uplink).
  hang     a box that hangs: SIGKILL, r1's bgpd stopped (SIGSTOP), its LAN ports
           down, its uplink up: only the BGP hold time (9 s in the recipe)
           tells the upstream. Not in the default --scenarios.

Every instance has preempt_delay 300, so a restarted r1 stays BACKUP while
the round is timed. Between rounds r2 is stopped with SIGTERM (r1 takes the
VIPs back at once) and started again. Needs root, iproute2 and FRR (Debian's
frr package; its daemons are started here in each namespace, not as the
system's service).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import frr  # noqa: E402
from cleanup import ignoring_signals  # noqa: E402
from hivrrp.tools.lab import HIGH, LOW, PER_SEGMENT, Lab, master_down_interval  # noqa: E402
from hivrrp.tools.lab.nsaddr import ipv4_addresses, socket_in_netns  # noqa: E402
from hivrrp.tools.lab.topology import in_netns  # noqa: E402

VIP_RANGE = "10.200.0.0/16"
LOCAL_AS, UPSTREAM_AS = 64511, 64496
UPLINK = {"r1": ("10.0.1.1", "10.0.1.2"), "r2": ("10.0.2.1", "10.0.2.2")}  # (upstream, router)
R1, R2 = UPLINK["r1"][1], UPLINK["r2"][1]
POLL = 0.05
SLACK = 60.0                 # seconds past the expected failover before a round is called failed
SETTLE = 3.0
RELEASED = re.compile(r"release: removed (\d+) VIPs? left over")
# The log's asctime (ms) of release's "removing N VIPs" line and of its last one.
STAMP = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*"
REMOVING = re.compile(STAMP + "removing .* left over from a previous run", re.M)
REMOVED = re.compile(STAMP + RELEASED.pattern, re.M)


def progress(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def vip(index: int) -> str:
    return f"10.200.{index // PER_SEGMENT}.{index % PER_SEGMENT + 1}"


def keepalived_conf(instances: int, priority: int, version: int, advert_int: float) -> str:
    lines = ["global_defs {", f"    vrrp_version {version}", "    vrrp_garp_master_delay 0", "}"]
    for n in range(instances):
        segment, vrid = n // PER_SEGMENT, n % PER_SEGMENT + 1
        # No /len: a /32, the connected route FRR's recipe announces.
        lines += [f"vrrp_instance seg{segment}_vr{vrid} {{", f"    interface lab{segment}",
                  f"    virtual_router_id {vrid}", f"    priority {priority}",
                  f"    advert_int {advert_int:g}", "    preempt_delay 300",
                  "    virtual_ipaddress {", f"        {vip(n)}", "    }", "}"]
    return "\n".join(lines) + "\n"


class Release:
    """A `hivrrp release` process and when it ended, taken by a thread that waits
    for it: the poll loop, busy reading routes, would see the exit up to a
    read (tens of ms) late."""

    def __init__(self, cmd: list[str]) -> None:
        self.wall_started = time.time()    # to compare with its log's timestamps
        self.started = time.monotonic()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self.ended = 0.0
        self.stderr = ""
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()

    def _wait(self) -> None:
        self.stderr = self.proc.communicate()[1]
        self.ended = time.monotonic()

    def wait(self, timeout: float) -> bool:
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def phases(self) -> dict[str, float]:
        """From its start to its "removing" line (Python, imports, the
        configuration, the plan) and from there to its last line (the VIPs
        removed), to the log's millisecond."""
        removing, removed = REMOVING.search(self.stderr), REMOVED.search(self.stderr)
        if not (removing and removed):
            return {}
        at = [time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%d %H:%M:%S"))
              + int(m.group(1)[20:]) / 1000 for m in (removing, removed)]
        return {"release_prep_s": round(at[0] - self.wall_started, 3),
                "release_remove_s": round(at[1] - at[0], 3)}


class BgpRun(Lab):
    poll_interval = POLL

    def __init__(self, instances: int, workdir: Path, version: int, advert_int: float) -> None:
        super().__init__(instances, "hivrrp", workdir, out=lambda *_: None)
        self.version, self.advert_int = version, advert_int
        self.vips = [f"{vip(n)}/32" for n in range(instances)]
        self.frr: dict[str, frr.Frr] = {}
        self.hivrrp: dict[str, subprocess.Popen] = {}

    def build(self) -> None:
        super().build()
        t = self.topology
        self.ns["up"] = t.netns("up")
        for index, name in enumerate(("r1", "r2"), 1):
            up_if = f"{t.prefix}u{index}"
            t.sh("ip", "link", "add", up_if, "type", "veth", "peer", "name", "uplink", "netns",
                 self.ns[name], ns=self.ns["up"])
            for ns, ifname, address in ((self.ns["up"], up_if, UPLINK[name][0]),
                                        (self.ns[name], "uplink", UPLINK[name][1])):
                t.sh("ip", "link", "set", ifname, "up", ns=ns)
                t.sh("ip", "addr", "add", f"{address}/30", "dev", ifname, ns=ns)
        configs = {"up": frr.render("upstream.conf", UPSTREAM_AS=UPSTREAM_AS,
                                    UPSTREAM_ROUTER_ID="10.0.0.1", LOCAL_AS=LOCAL_AS,
                                    ROUTER1_IP=R1, ROUTER2_IP=R2, VIP_RANGE=VIP_RANGE)}
        for name in ("r1", "r2"):
            configs[name] = frr.render("frr.conf", LOCAL_AS=LOCAL_AS, ROUTER_ID=UPLINK[name][1],
                                       UPSTREAM_AS=UPSTREAM_AS, UPSTREAM_IP=UPLINK[name][0],
                                       VIP_RANGE=VIP_RANGE)
        for name, config in configs.items():      # the upstream first: it is listening
            self.frr[name] = frr.Frr(t, self.ns[name], name, config)
            self.frr[name].start()
        for name, priority in (("r1", HIGH), ("r2", LOW)):
            (self.workdir / f"{name}.conf").write_text(
                keepalived_conf(self.instances, priority, self.version, self.advert_int))

    def start_hivrrp(self, name: str) -> subprocess.Popen:
        proc = self.topology.start(
            self.ns[name], sys.executable, "-m", "hivrrp", "run", "-f",
            str(self.workdir / f"{name}.conf"), "--control", str(self.workdir / f"{name}.sock"),
            log_path=str(self.workdir / f"{name}-hivrrp.log"))
        self.hivrrp[name] = proc
        return proc

    def reap(self, name: str) -> None:
        proc = self.hivrrp.pop(name)
        proc.wait(10)
        self.topology.processes.remove(proc)

    def vip_count(self, name: str) -> int:
        """The /32s on `name` (its own addresses are /16s and a /30)."""
        sock = self.netlink.get(name)
        if sock is None:
            sock = self.netlink[name] = socket_in_netns(self.ns[name])
        return sum(1 for prefixlen, _, scope, _ in ipv4_addresses(sock)
                   if prefixlen == 32 and scope == 0)

    def routes(self) -> dict[str, frozenset[str]]:
        return frr.bgp_routes(self.ns["up"])

    def all_via(self, routes: dict, hop: str, alone: bool) -> bool:
        return all((routes.get(p) == {hop}) if alone else (hop in routes.get(p, ()))
                   for p in self.vips)

    def timeout(self) -> float:
        return SLACK + self.instances / 100

    def r1_master(self) -> None:
        """r1 master of every VIP, r2 backup, the upstream routing every VIP via r1 alone."""
        n = self.instances
        if "r1" not in self.hivrrp:
            self.start_hivrrp("r1")
        if "r2" in self.hivrrp:
            # SIGTERM: r2 releases with priority 0 and r1 takes over after Skew_Time.
            os.kill(self.hivrrp["r2"].pid, signal.SIGTERM)
            self.reap("r2")
        if self.until(lambda: self.vip_count("r1") >= n and self.vip_count("r2") == 0,
                      self.timeout()) is None:
            raise SystemExit(f"r1 holds {self.vip_count('r1')} of {n} VIPs, r2 "
                             f"{self.vip_count('r2')}; logs in {self.workdir}")
        self.start_hivrrp("r2")
        if self.until(lambda: self.all_via(self.routes(), R1, alone=True)
                      and self.frr["up"].established(R2), self.timeout()) is None:
            raise SystemExit(f"the upstream does not route every VIP via r1 alone\n"
                             f"{self.frr['up'].logs()}")
        time.sleep(SETTLE)   # past the start-up GARPs and r2's own start
        if self.vip_count("r2") or not self.all_via(self.routes(), R1, alone=True):
            raise SystemExit("unsteady before the round: r2 took VIPs or the routes moved")

    def cut(self, down: bool, uplink: bool) -> None:
        """r1's LAN ports down (or up again), and its uplink too if `uplink`."""
        state = "down" if down else "up"
        commands = [f"link set {s.ports['r1']} {state}" for s in self.segments]
        subprocess.run(in_netns(self.switch, "ip", "-force", "-batch", "-"),
                       input="\n".join(commands), text=True, capture_output=True, timeout=60,
                       check=False)
        if uplink:
            self.topology.sh("ip", "link", "set", "uplink", state, ns=self.ns["r1"])
        if not down:
            # A box back from a power cut has none of the VIPs VRRP gave it.
            subprocess.run(in_netns(self.ns["r1"], "ip", "-force", "-batch", "-"),
                           input="\n".join(f"address flush dev lab{s.index} to {VIP_RANGE}"
                                           for s in self.segments),
                           text=True, capture_output=True, timeout=60, check=False)

    def start_release(self, name: str) -> Release:
        """`hivrrp release` for `name`'s configuration in its namespace, as the
        unit's ExecStopPost= runs it."""
        # nsenter, not `ip netns exec` (see in_netns): systemd starts it with
        # no mount namespace to set up, and release needs no /sys.
        release = Release(in_netns(self.ns[name], sys.executable, "-m", "hivrrp", "release",
                                   "-f", str(self.workdir / f"{name}.conf")))
        self.topology.processes.append(release.proc)   # stopped by PID if the run is cut short
        return release

    def finish_release(self, release: Release, killed: float, marks: dict) -> None:
        """The release's figures into `marks`; what it said if it did not remove them all."""
        if not release.wait(self.timeout()):
            release.proc.kill()
            release.wait(10)
        self.topology.processes.remove(release.proc)
        marks["release_s"] = round(release.ended - release.started, 3)
        marks.update(release.phases())
        marks["released_s"] = round(release.ended - killed, 3)
        removed = RELEASED.search(release.stderr)
        marks["released"] = int(removed.group(1)) if removed else 0
        if release.proc.returncode != 0 or marks["released"] != self.instances:
            marks["release_note"] = (f"release exited {release.proc.returncode}: "
                                     f"{release.stderr.strip()[-300:]}")

    def freeze_bgpd(self, frozen: bool) -> None:
        bgpd = self.frr["r1"].processes[-1]
        os.kill(bgpd.pid, signal.SIGSTOP if frozen else signal.SIGCONT)

    def round(self, scenario: str, restart_after: float) -> dict:
        n = self.instances
        mdi = master_down_interval(LOW, self.advert_int, self.version)
        marks: dict[str, float] = {}
        killed = time.monotonic()
        os.kill(self.hivrrp["r1"].pid, signal.SIGKILL)
        if scenario == "power":
            self.cut(True, uplink=True)
        elif scenario == "hang":
            self.freeze_bgpd(True)
            self.cut(True, uplink=False)
        self.reap("r1")
        release = self.start_release("r1") if scenario == "release" else None
        slowest_poll = 0.0
        missing: dict[str, float] = {}      # VIP -> when the upstream first had no route for it
        no_route = 0.0
        deadline = killed + mdi + restart_after + self.timeout()
        while time.monotonic() < deadline and "r2_alone_s" not in marks:
            polled = time.monotonic()
            routes = self.routes()
            now = time.monotonic()
            slowest_poll = max(slowest_poll, now - polled)
            since = round(now - killed, 3)
            for p in self.vips:
                if p not in routes:
                    missing.setdefault(p, now)
                elif p in missing:
                    no_route = max(no_route, now - missing.pop(p))
            if "r2_vips_s" not in marks and self.vip_count("r2") >= n:
                marks["r2_vips_s"] = since
            if "via_r2_s" not in marks and self.all_via(routes, R2, alone=False):
                marks["via_r2_s"] = since
            if "r1_gone_s" not in marks and not any(R1 in hops for hops in routes.values()):
                marks["r1_gone_s"] = since
            if self.all_via(routes, R2, alone=True):
                marks["r2_alone_s"] = since
            if scenario == "process":
                # systemd's part: RestartSec, then ExecStart=hivrrp run.
                if "r1" not in self.hivrrp and now - killed >= restart_after:
                    self.start_hivrrp("r1")
                    marks["restarted_s"] = round(time.monotonic() - killed, 3)
                if ("restarted_s" in marks and "r1_clean_s" not in marks
                        and self.vip_count("r1") == 0):
                    marks["r1_clean_s"] = round(time.monotonic() - killed, 3)
            elif scenario == "release":
                if "r1_clean_s" not in marks and self.vip_count("r1") == 0:
                    marks["r1_clean_s"] = round(time.monotonic() - killed, 3)
            time.sleep(POLL)
        if release is not None:
            self.finish_release(release, killed, marks)
        # A VIP still without a route when the round ended counts to the end.
        no_route = max([no_route] + [time.monotonic() - t for t in missing.values()])
        result = {"scenario": scenario, **marks, "no_route_s": round(no_route, 3),
                  "slowest_poll_s": round(slowest_poll, 3)}
        if "r2_alone_s" not in marks:
            routes = self.routes()
            via = sum(R2 in routes.get(p, ()) for p in self.vips)
            alone = sum(routes.get(p) == {R2} for p in self.vips)
            result["note"] = (f"after {deadline - killed:.0f} s: {via} of {n} VIPs via r2, "
                              f"{alone} via r2 alone")
        if scenario == "power":
            self.cut(False, uplink=True)
        elif scenario == "hang":
            self.freeze_bgpd(False)
            self.cut(False, uplink=False)
        return result

    def close(self) -> None:
        for daemons in self.frr.values():
            daemons.close()
        super().close()


COLUMNS = (("scenario", "scenario", 9), ("r2 VIPs s", "r2_vips_s", 10),
           ("via r2 s", "via_r2_s", 9), ("r2 alone s", "r2_alone_s", 11),
           ("r1 gone s", "r1_gone_s", 10), ("no route s", "no_route_s", 11),
           ("restart s", "restarted_s", 10),
           ("r1 clean s", "r1_clean_s", 11), ("release s", "release_s", 10),
           ("poll s", "slowest_poll_s", 7))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scenarios", default="process,release,power")
    parser.add_argument("--version", type=int, default=2, choices=(2, 3))
    parser.add_argument("--advert-int", type=float, default=1.0)
    parser.add_argument("--restart-after", type=float, default=2.0,
                        help="seconds from the SIGKILL to hivrrp's restart (process scenario; "
                             "conf/hivrrp.service has RestartSec=2s)")
    args = parser.parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    if (not 1 <= args.instances <= 16 * PER_SEGMENT * 4 or not 1 <= args.rounds <= 20
            or not scenarios or not set(scenarios) <= {"process", "release", "power", "hang"}
            or not 0.01 <= args.advert_int <= 40 or not 0 <= args.restart_after <= 60):
        sys.exit("--instances 1..16000, --rounds 1..20, --scenarios process,release,power,hang, "
                 "--advert-int 0.01..40, --restart-after 0..60")
    if os.geteuid() != 0:
        sys.exit("bench/bgp.py needs root (network namespaces)")
    reason = frr.missing()
    if reason:
        sys.exit(f"bench/bgp.py {reason}")
    # SIGTERM unwinds like Ctrl-C, through the finally that stops the daemons
    # and deletes the namespaces.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix="hivrrp-bgp-"))
    run = BgpRun(args.instances, workdir, args.version, args.advert_int)
    rows = []
    try:
        progress(f"building {len(range(0, args.instances, PER_SEGMENT))} segments, FRR in "
                 f"namespaces {run.topology.prefix}-*, logs in {workdir}")
        run.build()
        for scenario in scenarios:
            for k in range(args.rounds):
                progress(f"{scenario} round {k + 1}: r1 master, every VIP via r1 at the upstream")
                run.r1_master()
                progress(f"{scenario} round {k + 1}: SIGKILL of r1's hivrrp"
                         + {"power": " and its links down",
                            "release": ", then hivrrp release in its namespace",
                            "hang": ", its bgpd stopped, its LAN ports down"}.get(scenario, ""))
                rows.append(run.round(scenario, args.restart_after))
                progress(json.dumps(rows[-1]))
    finally:
        with ignoring_signals():
            run.close()
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "frr"],
                             capture_output=True, text=True, check=False).stdout or "?"
    mdi = master_down_interval(LOW, args.advert_int, args.version)
    print(f"{args.instances} VIPs announced by BGP (FRR {version}), VRRPv{args.version} at "
          f"{args.advert_int:g} s (r2's Master_Down_Interval {mdi:.2f} s), "
          + (f"hivrrp restarted {args.restart_after:g} s after the kill (process), "
             if "process" in scenarios else "")
          + ("hivrrp release at once, no restart (release), " if "release" in scenarios else "")
          + "seconds from the SIGKILL")
    print(" ".join(f"{title:>{width}}" for title, _, width in COLUMNS))
    for r in rows:
        print(" ".join(f"{r.get(key, '-')!s:>{width}}" for _, key, width in COLUMNS)
              + "".join(f"  {r[k]}" for k in ("note", "release_note") if k in r))
    for scenario in scenarios:
        done = [r for r in rows if r["scenario"] == scenario and "r2_alone_s" in r]
        if not done:
            print(f"{scenario}: no round converged")
            continue
        parts = [f"{label} {statistics.median(r[key] for r in done if key in r):.2f} s"
                 for label, key in (("r2 holds every VIP", "r2_vips_s"),
                                    ("every VIP via r2", "via_r2_s"),
                                    ("every VIP via r2 alone", "r2_alone_s"),
                                    ("none via r1", "r1_gone_s"),
                                    ("longest without a route", "no_route_s"),
                                    ("r1 clean", "r1_clean_s"),
                                    ("release took", "release_s"),
                                    ("of which removing the VIPs", "release_remove_s"))
                 if any(key in r for r in done)]
        print(f"{scenario}: median of {len(done)} rounds: " + ", ".join(parts))
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
