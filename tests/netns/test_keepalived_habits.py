"""keepalived's command line, for real: `-t` against keepalived's own, and the
daemon started as Debian's keepalived.service starts keepalived."""

import signal
import subprocess
import sys

import pytest
from netns_conf import VIP, conf

from helpers.netns import wait_for

pytestmark = pytest.mark.netns

GOOD = conf(100)
# Each of these keepalived -t refuses (exit 4 or 5 in 2.2.7; hivrrp says 1).
BAD = {
    "vrid out of range": conf(100, vrid=300),
    "priority out of range": conf(100).replace("priority 100", "priority 300"),
    "unclosed block": conf(100).rstrip().rstrip("}"),
    "no virtual_router_id": conf(100).replace("    virtual_router_id 51\n", ""),
}


def exit_status(lan, ns, *cmd):
    return lan.run(ns, *cmd, check=False).returncode


@pytest.mark.parametrize("name", ["good", *BAD])
def test_config_test_agrees_with_keepalived(lan, name):
    ns = lan.node("r1", ipv4="192.0.2.1/24")    # the file's interface exists, as -t checks
    path = lan.write(f"{name.replace(' ', '_')}.conf", GOOD if name == "good" else BAD[name])
    keepalived = exit_status(lan, ns, "keepalived", "-t", "-f", str(path))
    hivrrp = exit_status(lan, ns, sys.executable, "-m", "hivrrp", "-t", "-f", str(path))
    check = exit_status(lan, ns, sys.executable, "-m", "hivrrp", "check", "-t", "-f", str(path))
    assert (keepalived == 0) == (name == "good"), keepalived
    assert hivrrp == check == (0 if name == "good" else 1)


def test_debian_units_command_line_runs_the_daemon(lan):
    """ExecStart=/usr/sbin/keepalived --dont-fork $DAEMON_ARGS, binary swapped."""
    ns = lan.node("r1", ipv4="192.0.2.1/24")
    config = lan.write("r1.conf", conf(255))
    pid_file = lan.workdir / "keepalived.pid"
    log = open(lan.workdir / "r1-hivrrp.log", "ab")
    proc = lan.popen(ns, sys.executable, "-m", "hivrrp", "--dont-fork", "-D", "-l", "-P",
                     "--use-file", str(config), "--pid", str(pid_file), "-u", "077",
                     stdout=log, stderr=subprocess.STDOUT)
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() == str(proc.pid),
                    5), lan.log("r1")
    # -u 077: the files it makes are its own only.
    assert pid_file.stat().st_mode & 0o077 == 0
    lan.kill(proc, signal.SIGTERM)
    assert proc.wait(10) == 0
    assert not lan.has("r1", VIP)


def test_without_dont_fork_nothing_starts(lan):
    ns = lan.node("r1", ipv4="192.0.2.1/24")
    config = lan.write("r1.conf", conf(255))
    result = lan.run(ns, sys.executable, "-m", "hivrrp", "-f", str(config), "-D", check=False)
    assert result.returncode == 2 and "hivrrp never forks" in result.stderr
    assert not lan.has("r1", VIP)
