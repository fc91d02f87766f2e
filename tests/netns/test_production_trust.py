"""What makes an operator trust hivrrp on a production router, end to end in
namespaces: one daemon per network namespace, SIGTERM that wins over a hung
reload, `hivrrp reload` that tells the truth, reloads and rebuilds that leak
nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from netns_conf import FAST, VIP, conf

from helpers.netns import wait_for

pytestmark = pytest.mark.netns


def hivrrp_cli(lan, name: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """`ip netns exec NS hivrrp ...`: default paths, as an operator types it."""
    ns, _ = lan.nodes[name]
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "hivrrp", *args],
                          capture_output=True, text=True, timeout=timeout)


def daemon(lan, name: str, config, *extra: str) -> subprocess.Popen:
    """A daemon with the default pid file and control socket of its namespace."""
    ns, _ = lan.nodes[name]
    log = open(lan.workdir / f"{name}-hivrrp.log", "ab")
    return lan.popen(ns, sys.executable, "-m", "hivrrp", "run", "-f", str(config), *extra,
                     stdout=log, stderr=subprocess.STDOUT)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_second_daemon_in_the_namespace_refuses_and_changes_nothing(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    first = daemon(lan, "r1", lan.write("r1.conf", conf(200, **FAST)))
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    second = hivrrp_cli(lan, "r1", "run", "-f", str(lan.workdir / "r1.conf"), timeout=30)
    assert second.returncode == 1, second.stderr
    assert f"already running in this network namespace (pid {first.pid}" in second.stderr
    assert "left over" not in second.stderr and "VIP" not in second.stderr
    # The first one's VIP was never touched: still there, still master, still answering.
    assert lan.has("r1", VIP)
    status = hivrrp_cli(lan, "r1", "status")
    assert status.returncode == 0, status.stderr
    assert f"pid {first.pid}" in status.stdout and "MASTER" in status.stdout
    lan.stop(first)
    assert first.returncode == 0
    # Its pid file went with it: a new daemon starts.
    ns, _ = lan.nodes["r1"]
    assert not os.path.exists(f"/run/hivrrp/netns/{ns}/hivrrp.pid")


def test_status_in_a_namespace_reaches_that_namespaces_daemon(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    d1 = daemon(lan, "r1", lan.write("r1.conf", conf(200, **FAST)))
    assert lan.wait_running("r1"), lan.log("r1")
    d2 = daemon(lan, "r2", lan.write("r2.conf", conf(100, **FAST)))
    assert lan.wait_owner(VIP, "r1", 8), (lan.log("r1"), lan.log("r2"))
    for name, proc, state in (("r1", d1, "MASTER"), ("r2", d2, "BACKUP")):
        ns, _ = lan.nodes[name]
        out = hivrrp_cli(lan, name, "status")
        assert out.returncode == 0, out.stderr
        header = out.stdout.splitlines()[0]
        assert f"pid {proc.pid}" in header and f"namespace {ns}" in header, header
        assert f"config {lan.workdir / (name + '.conf')}" in header and "up " in header
        assert state in out.stdout


def test_sigterm_during_a_hung_reload_releases_the_masters_at_once(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    r1 = lan.hivrrp("r1", lan.write("r1.conf", conf(200, **FAST)))
    assert lan.wait_running("r1"), lan.log("r1")
    lan.hivrrp("r2", lan.write("r2.conf", conf(100, **FAST)))
    assert lan.wait_owner(VIP, "r1", 8), (lan.log("r1"), lan.log("r2"))
    fifo = lan.workdir / "hangs.conf"
    os.mkfifo(fifo)
    lan.write("r1.conf", conf(200, **FAST) + f"include {fifo}\n")
    os.kill(r1.pid, signal.SIGHUP)
    time.sleep(1.0)                         # the parse child is stuck opening the FIFO
    sent = lan.kill(r1, signal.SIGTERM)
    # Released within 1 s: its VIP gone (priority 0 went out before it).
    assert wait_for(lambda: not lan.has("r1", VIP), 1.0, interval=0.02), lan.log("r1")
    assert lan.wait_owner(VIP, "r2", 3), lan.log("r1")
    took = time.monotonic() - sent
    assert r1.wait(5) == 0
    assert took < 1.5, took                  # priority 0 out at once: the backup's Skew_Time
    assert "the reload in progress is abandoned" in lan.log("r1"), lan.log("r1")
    assert "reload rejected" not in lan.log("r1")
    # The parse child did not outlive the daemon.
    ps = subprocess.run(["pgrep", "-f", "hivrrp.config.isolated"], capture_output=True,
                        text=True)
    assert str(fifo) not in ps.stdout


def test_reload_says_what_happened(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    path = lan.write("r1.conf", conf(200, **FAST))
    r1 = daemon(lan, "r1", path)
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    lan.write("r1.conf", conf(200, **FAST).replace("priority 200", "priority 300"))
    rejected = hivrrp_cli(lan, "r1", "reload")
    assert rejected.returncode == 1, (rejected.stdout, rejected.stderr)
    assert f"{path}:4" in rejected.stderr and "reload rejected" in rejected.stderr
    assert lan.has("r1", VIP)                # the running configuration stays
    lan.write("r1.conf", conf(200, vips=(f"{VIP}/24", "192.0.2.27/24"), **FAST))
    applied = hivrrp_cli(lan, "r1", "reload")
    assert applied.returncode == 0, applied.stderr
    assert "reloaded: 1 instance kept" in applied.stdout and "1 VIP change" in applied.stdout
    assert lan.wait_has("192.0.2.27", "r1", 3)
    assert r1.poll() is None


def settled_rss(pid: int) -> int:
    """RSS once the daemon has handed its free heap pages back (hivrrp.daemon.memory
    trims a second after a reload's work is over)."""
    time.sleep(2.5)
    return rss_kib(pid)


HOST_ADDRESSES = 2000
ROUNDS = 10
WARM_UP = 4
GROWTH_KIB = 3 * 1024


def add_host_addresses(lan, name: str, count: int) -> None:
    ns, interface = lan.nodes[name]
    batch = lan.workdir / "addresses.batch"
    batch.write_text("".join(f"addr add 10.{1 + k // 250}.{k % 250}.1/32 dev {interface}\n"
                             for k in range(count)))
    lan.run(ns, "ip", "-batch", str(batch))


def test_reloads_and_rebuilds_leak_nothing_with_thousands_of_host_addresses(lan):
    """Each netlink address dump left ~110 cyclic objects per host address
    frozen for good: six SIGHUPs took RSS from 44.7 to 99.7 MiB."""
    ns = lan.node("r1", ipv4="192.0.2.1/24")
    add_host_addresses(lan, "r1", HOST_ADDRESSES)
    # A second interface a VIP lives on: re-creating it (a new ifindex) is a rebuild.
    lan.run(ns, "ip", "link", "add", "vipdev", "type", "veth", "peer", "name", "vippeer")
    for ifname in ("vipdev", "vippeer"):
        lan.run(ns, "ip", "link", "set", ifname, "up")
    extra_vip = "198.51.100.7/32 dev vipdev"
    r1 = daemon(lan, "r1", lan.write("r1.conf", conf(200, vips=(f"{VIP}/24", extra_vip), **FAST)))
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    # The first reloads warm up: the worker pool grows to its size, each new
    # thread with a glibc arena (about 1 MiB each, measured, then flat).
    for _ in range(WARM_UP):
        assert hivrrp_cli(lan, "r1", "reload").returncode == 0
    before = settled_rss(r1.pid)
    seen = []
    for _ in range(ROUNDS):
        done = hivrrp_cli(lan, "r1", "reload")
        assert done.returncode == 0, done.stderr
        seen.append(rss_kib(r1.pid))
    after_reloads = settled_rss(r1.pid)
    for k in range(ROUNDS):
        lan.run(ns, "ip", "link", "del", "vipdev")
        lan.run(ns, "ip", "link", "add", "vipdev", "type", "veth", "peer", "name", "vippeer")
        for ifname in ("vipdev", "vippeer"):
            lan.run(ns, "ip", "link", "set", ifname, "up")
        assert wait_for(lambda: lan.log("r1").count("re-applying the configuration") > k, 10)
        assert wait_for(lambda: "198.51.100.7/32" in lan.run(
            ns, "ip", "-br", "addr", "show", "dev", "vipdev").stdout, 10), lan.log("r1")
        seen.append(rss_kib(r1.pid))
    after_rebuilds = settled_rss(r1.pid)
    assert after_reloads - before <= GROWTH_KIB, (before, after_reloads, seen)
    assert after_rebuilds - after_reloads <= GROWTH_KIB, (after_reloads, after_rebuilds, seen)
    assert r1.poll() is None


def test_a_missing_script_fails_check_and_the_daemon_says_not_found(lan):
    """keepalived -t exits 5 for a track script that is not there; the daemon
    runs without it and says why in those words, not "script security"."""
    lan.node("r1", ipv4="192.0.2.1/24")
    missing = lan.workdir / "no-such-check.sh"
    text = (f'vrrp_script chk {{\n    script "{missing}"\n    interval 1\n    weight -20\n}}\n'
            + conf(200, extra="    track_script {\n        chk\n    }\n", **FAST))
    path = lan.write("r1.conf", text)
    check = hivrrp_cli(lan, "r1", "check", "-f", str(path))
    assert check.returncode == 1, (check.stdout, check.stderr)
    assert f"{missing} not found" in check.stderr
    r1 = daemon(lan, "r1", path)
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    log = lan.log("r1")
    assert f"{missing} not found" in log and "script security" not in log, log
    assert r1.poll() is None
