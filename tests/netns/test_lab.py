"""`hivrrp lab`, the README's first command, end to end (small, two segments)."""

import subprocess
import sys
import time

import pytest

from helpers.netns import announced_prefix, namespaces

pytestmark = pytest.mark.netns


@pytest.mark.usefixtures("namespaces_allowed")
def test_lab_elects_fails_over_returns_and_cleans_up():
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
    assert namespaces(announced_prefix(out)) == set()  # everything it made is gone


def test_lab_refuses_bad_arguments():
    result = subprocess.run([sys.executable, "-m", "hivrrp", "lab", "-n", "0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "Invalid value" in result.stderr


@pytest.mark.usefixtures("namespaces_allowed")
def test_more_interfaces_than_one_socket_may_join(tmp_path, monkeypatch):
    # 25 segments of one instance each: 25 memberships on 224.0.0.18, beyond
    # igmp_max_memberships (20), so the daemons need a second IPv4 socket
    # (filtered to multicast) and must still hear every master.
    import hivrrp.tools.lab as lab_module
    from hivrrp.kernel.sockets import igmp_max_memberships

    segments = igmp_max_memberships() + 5
    monkeypatch.setattr(lab_module, "PER_SEGMENT", 1)
    lab = lab_module.Lab(segments, "hivrrp", tmp_path)
    try:
        lab.build()
        lab.start("r1")
        assert lab.wait_for_vips("r1", 15) is not None, (tmp_path / "r1-hivrrp.log").read_text()
        lab.start("r2")  # after r1 rules everywhere, so no start-up race decides anything
        time.sleep(5)  # past r2's Master_Down_Interval: it stays backup only if it hears r1
        assert lab.vip_count("r2") == 0
        assert "MASTER" not in (tmp_path / "r2-hivrrp.log").read_text()
        assert lab.probe("r1", 5)["answered"] == segments
    finally:
        lab.topology.close()


def test_the_switch_namespace_runs_no_netfilter_on_bridged_frames():
    from hivrrp.tools.lab.topology import Topology

    topology = Topology()
    try:
        ns = topology.netns("switch")
        path = "/proc/sys/net/bridge/bridge-nf-call-iptables"
        read = ["nsenter", f"--net=/run/netns/{ns}", "cat", path]
        before = subprocess.run(read, capture_output=True, text=True, timeout=10)
        if before.returncode != 0:
            pytest.skip("no br_netfilter in this kernel: nothing to turn off")
        topology.behave_as_a_switch(ns)
        for family in ("iptables", "ip6tables", "arptables"):
            value = subprocess.run(["nsenter", f"--net=/run/netns/{ns}", "cat",
                                    f"/proc/sys/net/bridge/bridge-nf-call-{family}"],
                                   capture_output=True, text=True, timeout=10).stdout.strip()
            assert value == "0", family
    finally:
        topology.close()
