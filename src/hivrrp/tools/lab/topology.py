"""The lab's network: namespaces, one bridge per segment, veths to every node.

Every name has a random per-run prefix; close() removes all of it and stops
the processes started here (by PID), also after an error or Ctrl-C.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess


def in_netns(ns: str, *cmd: str) -> list[str]:
    """A short command inside `ns`, entering only its network namespace.

    Not `ip netns exec`: that also unshares the mount namespace and remounts
    /sys, and the umount waits for an expedited RCU grace period, which took
    over 60 s here while thousands of VRRP adverts were in flight. Commands
    that need the namespace's /sys (daemons) still use `ip netns exec`.
    """
    return ["nsenter", f"--net=/run/netns/{ns}", *cmd]


class Topology:
    def __init__(self) -> None:
        self.prefix = "hvl" + secrets.token_hex(2)
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []
        self.ports = 0

    def sh(self, *cmd: str, ns: str | None = None, check: bool = True) -> str:
        full = in_netns(ns, *cmd) if ns else list(cmd)
        result = subprocess.run(full, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(full)}: {result.stderr.strip()}")
        return result.stdout

    def netns(self, name: str) -> str:
        ns = f"{self.prefix}-{name}"
        self.sh("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        self.sh("ip", "link", "set", "lo", "up", ns=ns)
        return ns

    def behave_as_a_switch(self, ns: str) -> None:
        """No netfilter on bridged frames in `ns` (br_netfilter's bridge-nf-call-*).

        A switch does not run a host's firewall on what it forwards; with
        br_netfilter loaded (built in here) a new namespace's bridges pass
        every frame through the IP hooks, about 1 us per advert charged to
        whichever router sent it (a veth delivers in the sender's context).
        Absent sysctls (no br_netfilter) leave nothing to turn off.
        """
        for family in ("iptables", "ip6tables", "arptables"):
            self.sh("sysctl", "-qw", f"net.bridge.bridge-nf-call-{family}=0", ns=ns, check=False)

    def segment(self, switch: str, index: int) -> str:
        bridge = f"br{index}"
        self.sh("ip", "link", "add", bridge, "type", "bridge", ns=switch)
        self.sh("ip", "link", "set", bridge, "up", ns=switch)
        return bridge

    def plug(self, switch: str, bridge: str, ns: str, ifname: str, address: str) -> str:
        """A veth from `ns` (named ifname) into `bridge`; returns the switch-side port."""
        # A counter, not random digits: 4,000 instances need 48 ports, and random
        # names collided (about 4 % of runs at 75 ports).
        self.ports += 1
        port = f"{self.prefix}p{self.ports}"
        self.sh("ip", "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", ns,
                ns=switch)
        self.sh("ip", "link", "set", port, "master", bridge, "up", ns=switch)
        self.sh("ip", "link", "set", ifname, "up", ns=ns)
        self.sh("ip", "addr", "add", address, "dev", ifname, ns=ns)
        return port

    def popen(self, ns: str, *cmd: str, **kwargs) -> subprocess.Popen:
        """A long-running process in `ns`, stopped (by PID) in close()."""
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], **kwargs)
        self.processes.append(proc)
        return proc

    def start(self, ns: str, *cmd: str, log_path: str) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            return self.popen(ns, *cmd, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)

    def stop(self, proc: subprocess.Popen, signum: int = signal.SIGTERM,
             timeout: float = 10.0) -> None:
        """Signal a process started here and reap it; SIGKILL if it outlives `timeout`."""
        if proc.poll() is None:
            os.kill(proc.pid, signum)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def close(self) -> None:
        for proc in reversed(self.processes):
            if proc.poll() is None:
                self.stop(proc)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()
