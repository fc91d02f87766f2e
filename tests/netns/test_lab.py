"""`hivrrp lab`, the README's first command, end to end (small, two segments)."""

import subprocess
import sys

import pytest

from helpers.netns import netns_available

pytestmark = pytest.mark.netns


def namespaces():
    return set(subprocess.run(["ip", "netns", "list"], capture_output=True,
                              text=True).stdout.split())


def test_lab_elects_fails_over_returns_and_cleans_up():
    reason = netns_available()
    if reason:
        pytest.skip(reason)
    before = namespaces()
    result = subprocess.run([sys.executable, "-m", "hivrrp", "lab", "-n", "260"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "260 VRRP instances on 2 segments" in out
    assert "client sees r1's MAC for              260/260 VIPs" in out
    assert "failover: 260/260 VIPs answer from r2 after" in out
    failover = float(out.split("failover: every VIP answers from r2")[1].split()[0])
    assert failover <= 3 + 156 / 256 + 0.5
    assert "verdict                               OK" in out
    assert namespaces() == before  # everything it made is gone


def test_lab_refuses_bad_arguments():
    result = subprocess.run([sys.executable, "-m", "hivrrp", "lab", "-n", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Invalid value" in result.stderr
