"""A switched LAN in namespaces: routers and clients on one bridge, daemons on them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers.netns import Lab, wait_for

KEEPALIVED_ARGS = ["--dont-fork", "--log-console", "--log-detail", "--vrrp"]


class Lan(Lab):
    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.workdir = workdir
        self.switch = self.netns("sw")
        self.run(self.switch, "ip", "link", "add", "br0", "type", "bridge")
        self.run(self.switch, "ip", "link", "set", "br0", "up")
        self.nodes: dict[str, tuple[str, str]] = {}  # name -> (netns, interface)
        self.port_of: dict[str, str] = {}
        self.ports = 0

    def node(self, name: str, *, ipv4: str | None = None, ipv6: str | None = None,
             interface: str = "eth1") -> str:
        ns = self.netns(name)
        self.ports += 1
        port = f"{self.prefix}p{self.ports}"
        self.run(self.switch, "ip", "link", "add", port, "type", "veth", "peer", "name",
                 interface, "netns", ns)
        self.run(self.switch, "ip", "link", "set", port, "master", "br0", "up")
        self.run(ns, "sysctl", "-qw", f"net.ipv6.conf.{interface}.accept_dad=0")
        self.run(ns, "ip", "link", "set", interface, "up")
        if ipv4:
            self.run(ns, "ip", "addr", "add", ipv4, "dev", interface)
        if ipv6:
            self.run(ns, "ip", "addr", "add", ipv6, "dev", interface, "nodad")
        self.nodes[name] = (ns, interface)
        self.port_of[name] = port
        return ns

    def isolate(self, name: str, isolated: bool) -> None:
        """Isolated bridge ports cannot reach each other: a partition without link loss."""
        self.run(self.switch, "bridge", "link", "set", "dev", self.port_of[name], "isolated",
                 "on" if isolated else "off")

    def addresses(self, name: str) -> str:
        ns, interface = self.nodes[name]
        return self.run(ns, "ip", "-br", "addr", "show", "dev", interface).stdout

    def has(self, name: str, address: str) -> bool:
        return f" {address}/" in f" {self.addresses(name)} ".replace("  ", " ")

    def owner_of(self, address: str) -> list[str]:
        return [name for name in self.nodes if self.has(name, address)]

    def write(self, name: str, text: str) -> Path:
        path = self.workdir / name
        path.write_text(text)
        return path

    def hivrrp(self, name: str, config: Path, *extra: str) -> subprocess.Popen:
        ns, _ = self.nodes[name]
        log = open(self.workdir / f"{name}-hivrrp.log", "ab")
        control = ("--control", str(self.workdir / f"{name}.sock"))
        return self.popen(ns, sys.executable, "-m", "hivrrp", "run", "-f", str(config), *control,
                          *extra, stdout=log, stderr=subprocess.STDOUT)

    def keepalived(self, name: str, config: Path) -> subprocess.Popen:
        ns, _ = self.nodes[name]
        run = self.workdir / f"{name}-ka"
        run.mkdir(exist_ok=True)
        log = open(self.workdir / f"{name}-keepalived.log", "ab")
        return self.popen(ns, "keepalived", *KEEPALIVED_ARGS, "--use-file", str(config),
                          "--pid", str(run / "ka.pid"), "--vrrp_pid", str(run / "vrrp.pid"),
                          "--checkers_pid", str(run / "chk.pid"),
                          stdout=log, stderr=subprocess.STDOUT)

    def wait_running(self, name: str, timeout: float = 10) -> bool:
        """hivrrp on `name` has started its instances. A lower priority started only
        then cannot win the start-up race: at netns_conf.FAST's 0.25 s adverts the two
        Master_Down_Intervals differ by 0.1 s, less than a Python start-up may."""
        return wait_for(lambda: " INFO hivrrp: running " in self.log(name), timeout)

    def log(self, name: str, daemon: str = "hivrrp") -> str:
        path = self.workdir / f"{name}-{daemon}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, proc: subprocess.Popen, signum: int = signal.SIGKILL) -> float:
        """Signal a daemon we started; returns the time it was sent."""
        sent = time.monotonic()
        if proc.poll() is None:
            os.kill(proc.pid, signum)
        return sent

    def stop_keepalived(self, proc: subprocess.Popen) -> None:
        # keepalived's children leave with the parent on SIGTERM.
        self.stop(proc, timeout=10)

    def wait_has(self, address: str, name: str, timeout: float) -> float | None:
        """Seconds until `name` holds `address` (others may too: a SIGKILLed master keeps it)."""
        start = time.monotonic()
        if wait_for(lambda: self.has(name, address), timeout, interval=0.02):
            return time.monotonic() - start
        return None

    def wait_owner(self, address: str, name: str, timeout: float) -> float | None:
        """Seconds until `name` holds `address` (alone), or None."""
        start = time.monotonic()
        if wait_for(lambda: self.owner_of(address) == [name], timeout, interval=0.02):
            return time.monotonic() - start
        return None
