"""FRR's zebra and bgpd in a network namespace, for bench/bgp.py and tests/netns/test_bgp_frr.py.

Not the system's frr service: each namespace's daemons get their own
directory (config, pid files, vty sockets, the zebra API socket, logs), so
several run side by side and none touches /etc/frr or /run/frr. The
configuration is conf/frr/'s recipe with its <PLACEHOLDERS> filled in, so
what the test and the benchmark run is what operators install.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from hivrrp.tools.lab.topology import Topology, in_netns

RECIPE = Path(__file__).resolve().parents[1] / "conf" / "frr"
DAEMONS = Path("/usr/lib/frr")
PLACEHOLDER = re.compile(r"<[A-Z0-9_]+>")
# zebra reads every VIP the daemon adds or removes at once (4,000 in a failover)
# from one netlink socket: Debian's frr runs it with this buffer, and so do we.
NETLINK_BUFFER = "90000000"


def missing() -> str | None:
    """None when FRR can run here, else what is missing."""
    for daemon in ("zebra", "bgpd"):
        if not (DAEMONS / daemon).exists():
            return f"needs FRR ({DAEMONS / daemon}; apt-get install frr)"
    if shutil.which("vtysh") is None:
        return "needs FRR's vtysh"
    try:
        pwd.getpwnam("frr")
    except KeyError:
        return "needs the frr user (Debian's frr package creates it)"
    return None


def render(name: str, **values: object) -> str:
    """conf/frr/`name` with each <KEY> replaced by values[KEY] in its commands (the
    comments, which name the placeholders, stay as written); every one must be given."""
    lines = []
    for line in (RECIPE / name).read_text().splitlines(keepends=True):
        if not line.lstrip().startswith("!"):
            for key, value in values.items():
                line = line.replace(f"<{key}>", str(value))
        lines.append(line)
    text = "".join(lines)
    left = sorted({p for line in lines if not line.lstrip().startswith("!")
                   for p in PLACEHOLDER.findall(line)})
    if left:
        raise ValueError(f"conf/frr/{name}: no value for {', '.join(left)}")
    return text


class Frr:
    """zebra + bgpd in `ns`, started by `topology` (so stopped by PID when it closes)."""

    def __init__(self, topology: Topology, ns: str, name: str, config: str) -> None:
        self.topology = topology
        self.ns = ns
        self.name = name
        # The daemons drop to the frr user: their directory must be theirs, and
        # reachable (pytest's and the benchmarks' work directories are root's, mode 0700).
        self.dir = Path(tempfile.mkdtemp(prefix=f"hivrrp-frr-{name}-"))
        os.chmod(self.dir, 0o755)
        shutil.chown(self.dir, "frr", "frr")
        (self.dir / "bgpd.conf").write_text(config)
        (self.dir / "zebra.conf").write_text("")
        self.processes: list[subprocess.Popen] = []

    def _daemon(self, daemon: str, *extra: str) -> subprocess.Popen:
        d = self.dir
        with open(d / f"{daemon}.stderr", "wb") as err:
            proc = self.topology.popen(
                self.ns, str(DAEMONS / daemon), "-f", str(d / f"{daemon}.conf"),
                "-i", str(d / f"{daemon}.pid"), "-z", str(d / "zserv.api"),
                "--vty_socket", str(d), "-P", "0", "--log", f"file:{d / daemon}.log", *extra,
                stdout=subprocess.DEVNULL, stderr=err)
        self.processes.append(proc)
        return proc

    def start(self, timeout: float = 10.0) -> None:
        zebra = self._daemon("zebra", "-s", NETLINK_BUFFER)
        # bgpd gives up on a zebra socket that is not there yet only after retries;
        # waiting for it makes the start order certain.
        if not _until(lambda: (self.dir / "zserv.api").exists() or zebra.poll() is not None,
                      timeout) or zebra.poll() is not None:
            raise RuntimeError(f"{self.name}: zebra did not start\n{self.logs()}")
        bgpd = self._daemon("bgpd")
        if not _until(lambda: (self.dir / "bgpd.vty").exists() or bgpd.poll() is not None,
                      timeout) or bgpd.poll() is not None:
            raise RuntimeError(f"{self.name}: bgpd did not start\n{self.logs()}")

    def vtysh(self, command: str) -> str:
        out = subprocess.run(in_netns(self.ns, "vtysh", "--vty_socket", str(self.dir), "-c",
                                      command), capture_output=True, text=True, timeout=30,
                             check=False)
        return out.stdout

    def established(self, peer: str) -> bool:
        try:
            state = json.loads(self.vtysh(f"show bgp neighbors {peer} json") or "{}")
        except json.JSONDecodeError:
            return False
        return state.get(peer, {}).get("bgpState") == "Established"

    def advertised(self, peer: str) -> set[str]:
        """The prefixes bgpd sends `peer`, after its outbound policy."""
        out = self.vtysh(f"show bgp ipv4 unicast neighbors {peer} advertised-routes json")
        try:
            return set(json.loads(out or "{}").get("advertisedRoutes", {}))
        except json.JSONDecodeError:
            return set()

    def logs(self, tail: int = 3000) -> str:
        parts = []
        for path in sorted(self.dir.glob("*.log")) + sorted(self.dir.glob("*.stderr")):
            text = path.read_text(errors="replace")
            if text:
                parts.append(f"--- {self.name} {path.name}\n{text[-tail:]}")
        return "\n".join(parts)

    def close(self) -> None:
        """Stop the daemons (by PID) and remove their directory."""
        for proc in reversed(self.processes):
            self.topology.stop(proc, timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


VIA = re.compile(r"\bvia (?:inet )?(\S+)")


def bgp_routes(ns: str) -> dict[str, frozenset[str]]:
    """The kernel's BGP routes in `ns` (what forwards packets): prefix -> next hops.
    An ECMP route has several; zebra installs what bgpd's best paths chose."""
    out = subprocess.run(in_netns(ns, "ip", "-4", "-o", "route", "show", "proto", "bgp"),
                         capture_output=True, text=True, timeout=30, check=True).stdout
    routes = {}
    for line in out.splitlines():
        prefix = line.split(None, 1)[0]
        routes[prefix if "/" in prefix else f"{prefix}/32"] = frozenset(VIA.findall(line))
    return routes


def _until(predicate, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
