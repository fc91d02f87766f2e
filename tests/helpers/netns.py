"""Throwaway network namespaces for tests.

Every name carries a random per-run prefix, traffic stays inside namespaces
this module created, only processes started here are stopped (by PID), and
close() removes everything even when the test failed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

from hivrrp.tools.lab.topology import Topology, in_netns


def netns_available() -> str | None:
    """None when namespace tests can run here, else why not."""
    if os.geteuid() != 0:
        return "needs root"
    if shutil.which("ip") is None:
        return "needs iproute2"
    return None


class Lab(Topology):
    """The lab's Topology with what tests add: a context manager, bare veth pairs,
    commands whose exit status the test looks at."""

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def veth(self, ns_a: str, ns_b: str, index: int = 0) -> tuple[str, str]:
        """A veth pair with one end in each namespace (created there, never in the root ns)."""
        if_a, if_b = f"{self.prefix}a{index}", f"{self.prefix}b{index}"
        self.run(ns_a, "ip", "link", "add", if_a, "type", "veth", "peer", "name", if_b,
                 "netns", ns_b)
        for ns, ifname in ((ns_a, if_a), (ns_b, if_b)):
            # No DAD: keepalived needs a usable link-local right away.
            self.run(ns, "sysctl", "-qw", f"net.ipv6.conf.{ifname}.accept_dad=0")
            self.run(ns, "ip", "link", "set", ifname, "up")
        return if_a, if_b

    def run(self, ns: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(in_netns(ns, *cmd), check=check,
                              capture_output=True, text=True, timeout=30)


def namespaces(prefix: str) -> set[str]:
    """The network namespaces named `prefix`-*: one run's own. Never compare all
    of the host's: other tests and programs add and delete theirs meanwhile."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30,
                         check=True).stdout
    names = (line.split()[0] for line in out.splitlines() if line.strip())
    return {name for name in names if name.startswith(f"{prefix}-")}


def announced_prefix(output: str) -> str:
    """The prefix a lab or bench run says its namespaces have ("namespaces hvl1a2b-*")."""
    match = re.search(r"namespaces (\S+)-\*", output)
    assert match, f"the run did not say which namespaces are its own:\n{output[-3000:]}"
    return match.group(1)


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
