"""hivrrp on a real (namespaced) network: elections, failover, the article's config."""

import signal
import subprocess
import sys
import time

import pytest
from netns_conf import FAST, FAST_MDI_100, MDI_100, SKEW_100, VIP, conf

import hivrrp
from helpers.netns import wait_for

pytestmark = pytest.mark.netns


def two_hivrrp(lan, high=200, low=100, **timers):
    """r1 (high) master and r2 (low) backup; `timers`: conf()'s version and advert."""
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    r1 = lan.hivrrp("r1", lan.write("r1.conf", conf(high, **timers)))
    assert lan.wait_running("r1"), lan.log("r1")
    r2 = lan.hivrrp("r2", lan.write("r2.conf", conf(low, **timers)))
    assert lan.wait_owner(VIP, "r1", 8), (lan.log("r1"), lan.log("r2"))
    return r1, r2


def ping(lan, address) -> bool:
    client, _ = lan.nodes["client"]
    return lan.run(client, "ping", "-c", "1", "-W", "1", address, check=False).returncode == 0


def test_election_and_sigkill_failover(lan):
    lan.node("client", ipv4="192.0.2.100/24")
    r1, r2 = two_hivrrp(lan)
    assert "BACKUP -> MASTER" in lan.log("r1") and "MASTER" not in lan.log("r2")
    assert ping(lan, VIP)  # through the bridge, answered by r1
    killed = lan.kill(r1)
    lan.run(lan.switch, "ip", "link", "set", lan.port_of["r1"], "down")  # the dead box is off the LAN
    assert lan.wait_has(VIP, "r2", MDI_100 + 2)
    took = time.monotonic() - killed
    assert took <= MDI_100 + 0.5, took
    # The line names the master that went silent.
    assert ("(VI_1) BACKUP -> MASTER (master_down): master 192.0.2.1 (priority 200) went "
            "silent, ours 100") in lan.log("r2")
    # The new master's gratuitous ARP moved the client's neighbour entry.
    assert wait_for(lambda: ping(lan, VIP), 3)


def test_sigterm_releases_with_priority_zero_and_exits(lan):
    r1, r2 = two_hivrrp(lan)
    sent = lan.kill(r1, signal.SIGTERM)
    assert r1.wait(2) == 0
    assert time.monotonic() - sent < 1.0
    assert not lan.has("r1", VIP)  # its VIP went with it
    assert lan.wait_owner(VIP, "r2", 2)
    assert time.monotonic() - sent <= SKEW_100 + 0.5
    assert ("(VI_1) BACKUP -> MASTER (released): master 192.0.2.1 sent priority 0, ours 100"
            in lan.log("r2"))


def test_restart_cleans_leftovers_and_preempts(lan):
    r1, r2 = two_hivrrp(lan, **FAST)
    lan.kill(r1)
    r1.wait(5)
    assert lan.wait_has(VIP, "r2", FAST_MDI_100 + 2)
    assert set(lan.owner_of(VIP)) == {"r1", "r2"}  # a SIGKILLed daemon cannot clean up
    lan.hivrrp("r1", lan.workdir / "r1.conf")
    assert lan.wait_owner(VIP, "r1", 8)
    assert "left over from a previous run" in lan.log("r1")
    # Named: the advert that made it step down, its priority and ours.
    assert ("(VI_1) MASTER -> BACKUP (higher_priority): advert from 192.0.2.1 with priority 200, "
            "ours 100") in lan.log("r2")


def release(lan, name: str, config, *wrapper: str) -> subprocess.CompletedProcess:
    ns, _ = lan.nodes[name]
    return subprocess.run(["ip", "netns", "exec", ns, *wrapper, sys.executable, "-m", "hivrrp",
                           "release", "-f", str(config)], capture_output=True, text=True,
                          timeout=30)


def test_release_removes_a_killed_daemons_vips_and_never_a_running_ones(lan):
    r1, r2 = two_hivrrp(lan, **FAST)
    assert lan.wait_has(VIP, "r1", 2)
    # A running daemon's VIPs are not leftovers: refused, nothing touched.
    refused = release(lan, "r1", lan.workdir / "r1.conf")
    assert refused.returncode == 1, refused.stderr
    assert f"already running in this network namespace (pid {r1.pid}" in refused.stderr
    assert "nothing removed" in refused.stderr and lan.has("r1", VIP)
    lan.kill(r1)
    r1.wait(5)
    assert lan.wait_has(VIP, "r2", FAST_MDI_100 + 2)
    assert set(lan.owner_of(VIP)) == {"r1", "r2"}  # what ExecStopPost= is there for
    # Root without CAP_NET_ADMIN: not allowed (2), as for run; the log says which VIP.
    weak = release(lan, "r1", lan.workdir / "r1.conf", "setpriv", "--bounding-set=-net_admin")
    assert weak.returncode == 2, weak.stderr
    assert f"cannot remove {VIP}: Operation not permitted" in weak.stderr
    assert lan.has("r1", VIP)
    done = release(lan, "r1", lan.workdir / "r1.conf")
    assert done.returncode == 0, done.stderr
    assert "removing 1 VIP left over from a previous run" in done.stderr
    assert "release: removed 1 VIP left over" in done.stderr
    assert not lan.has("r1", VIP)
    assert set(lan.owner_of(VIP)) == {"r2"}
    # Again: nothing left, still a success (systemd runs it after every stop).
    again = release(lan, "r1", lan.workdir / "r1.conf")
    assert again.returncode == 0 and "no VIP left over" in again.stderr, again.stderr


def test_the_articles_two_node_config_as_written(lan):
    from pathlib import Path
    article = Path(__file__).resolve().parents[2] / "conf" / "article"
    lan.node("server01", ipv4="192.0.2.1/24", interface="ens160")
    lan.node("server02", ipv4="192.0.2.2/24", interface="ens160")
    lan.hivrrp("server01", article / "two-node-master.conf")
    backup = lan.hivrrp("server02", article / "two-node-backup.conf")
    # Priority 255 owner: master at once, no Master_Down wait.
    assert lan.wait_owner(VIP, "server01", 2), lan.log("server01")
    assert "(VI_1) INIT -> MASTER (owner)" in lan.log("server01")
    time.sleep(1.5)
    assert "MASTER" not in lan.log("server02")
    assert backup.poll() is None


def test_unicast_peers(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    for name, priority, me, peer in (("r1", 200, "192.0.2.1", "192.0.2.2"),
                                     ("r2", 100, "192.0.2.2", "192.0.2.1")):
        extra = f"    unicast_src_ip {me}\n    unicast_peer {{\n        {peer}\n    }}\n"
        lan.hivrrp(name, lan.write(f"{name}.conf", conf(priority, extra=extra, **FAST)))
        assert lan.wait_running(name), lan.log(name)
    assert lan.wait_owner(VIP, "r1", 8)
    time.sleep(1.5)
    assert lan.owner_of(VIP) == ["r1"] and "MASTER" not in lan.log("r2")


def test_v3_over_ipv6(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    vips = ("fe80::51/64", "fd00::51/64")
    lan.hivrrp("r1", lan.write("r1.conf", conf(200, vips=vips, **FAST)))
    assert lan.wait_running("r1"), lan.log("r1")
    lan.hivrrp("r2", lan.write("r2.conf", conf(100, vips=vips, **FAST)))
    assert wait_for(lambda: lan.owner_of("fd00::51") == ["r1"], 8), (lan.log("r1"), lan.log("r2"))
    time.sleep(1.5)
    assert lan.owner_of("fd00::51") == ["r1"] and "MASTER" not in lan.log("r2")


def test_invalid_config_does_not_start(lan, tmp_path):
    lan.node("r1", ipv4="192.0.2.1/24")
    proc = lan.hivrrp("r1", lan.write("bad.conf", conf(300)))
    assert proc.wait(10) == 1
    assert "priority: 300 is out of range" in lan.log("r1")


def test_link_down_faults_and_fails_over_then_recovers(lan):
    r1, r2 = two_hivrrp(lan, **FAST)
    lan.run(lan.switch, "ip", "link", "set", lan.port_of["r1"], "down")  # r1 loses carrier
    assert wait_for(lambda: "(VI_1) MASTER -> FAULT (fault)" in lan.log("r1"), 3)
    assert not lan.has("r1", VIP)
    assert lan.wait_has(VIP, "r2", FAST_MDI_100 + 2)
    lan.run(lan.switch, "ip", "link", "set", lan.port_of["r1"], "up")
    assert wait_for(lambda: "(VI_1) FAULT -> BACKUP (fault_cleared)" in lan.log("r1"), 3)
    assert lan.wait_owner(VIP, "r1", FAST_MDI_100 + 3)  # and it preempts back


def test_vip_removed_behind_our_back_is_restored(lan):
    two_hivrrp(lan, **FAST)
    ns, interface = lan.nodes["r1"]
    lan.run(ns, "ip", "addr", "del", f"{VIP}/24", "dev", interface)
    assert wait_for(lambda: lan.has("r1", VIP), 2)
    assert "VIP 192.0.2.26 was removed while master: restoring it" in lan.log("r1")


def test_three_nodes(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    lan.node("r3", ipv4="192.0.2.3/24")
    procs = {name: lan.hivrrp(name, lan.write(f"{name}.conf", conf(priority)))
             for name, priority in (("r1", 150), ("r2", 250), ("r3", 100))}
    assert lan.wait_owner(VIP, "r2", 8)
    lan.kill(procs["r2"], signal.SIGTERM)
    assert lan.wait_owner(VIP, "r1", 3)  # the next priority, after its Skew_Time
    time.sleep(1.5)
    assert lan.owner_of(VIP) == ["r1"] and "MASTER" not in lan.log("r3")


def two_instance_conf(priority: int, vi1_vips, with_vi2: bool) -> str:
    text = conf(priority, vips=vi1_vips)
    if with_vi2:
        text += conf(priority, vrid=52, vips=("192.0.2.27/24",)).replace("VI_1", "VI_2")
    return text


def test_reload_keeps_state_adds_and_removes_without_flapping(lan):
    r1, r2 = two_hivrrp(lan)
    config = lan.workdir / "r1.conf"
    config.write_text(two_instance_conf(200, (f"{VIP}/24", "192.0.2.28/24"), True))
    r1.send_signal(signal.SIGHUP)
    # The master keeps its VIP through the reload and gains the new one.
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not lan.has("r1", "192.0.2.28"):
        assert lan.has("r1", VIP)
        time.sleep(0.02)
    assert lan.has("r1", "192.0.2.28")
    assert "reloaded: 1 instance kept, 1 started, 0 removed, 1 VIP change" in lan.log("r1")
    # VI_2 is new: it waits its Master_Down_Interval like any start.
    assert wait_for(lambda: lan.has("r1", "192.0.2.27"), 5)
    log = lan.log("r1")
    assert log.count("(VI_1) BACKUP -> MASTER") == 1 and "(VI_1) MASTER ->" not in log
    assert "MASTER" not in lan.log("r2")

    config.write_text(conf(200))  # VI_2 and the extra VIP go away
    r1.send_signal(signal.SIGHUP)
    assert wait_for(lambda: not lan.has("r1", "192.0.2.27") and not lan.has("r1", "192.0.2.28"), 3)
    assert lan.has("r1", VIP) and "(VI_2) removed from the configuration" in lan.log("r1")
    assert r1.poll() is None


def test_reload_with_an_invalid_config_keeps_the_old_one(lan):
    r1, r2 = two_hivrrp(lan, **FAST)
    (lan.workdir / "r1.conf").write_text(conf(300, **FAST))
    r1.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reload rejected (1 error)" in lan.log("r1"), 5)
    assert "priority: 300 is out of range" in lan.log("r1")
    time.sleep(1.5)
    assert lan.owner_of(VIP) == ["r1"] and r1.poll() is None
    assert "MASTER" not in lan.log("r2")


def test_an_interface_that_appears_later_is_picked_up(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    extra = conf(200, interface="late0", vrid=60, vips=("198.51.100.60/24",),
                 **FAST).replace("VI_1", "LATE")
    r1 = lan.hivrrp("r1", lan.write("r1.conf", conf(200, **FAST) + extra))
    assert lan.wait_has(VIP, "r1", 8)
    assert "(LATE) interface late0 is missing: FAULT" in lan.log("r1")
    ns, _ = lan.nodes["r1"]
    peer = f"{lan.prefix}lp"
    lan.run(ns, "ip", "link", "add", "late0", "type", "veth", "peer", "name", peer)
    lan.run(ns, "ip", "addr", "add", "198.51.100.1/24", "dev", "late0")
    lan.run(ns, "ip", "link", "set", peer, "up")
    lan.run(ns, "ip", "link", "set", "late0", "up")
    # Alone on its link, LATE becomes master after its Master_Down_Interval.
    assert wait_for(lambda: "198.51.100.60/24" in lan.run(ns, "ip", "-br", "addr", "show",
                                                          "late0").stdout, 8), lan.log("r1")
    assert "interface late0 appeared" in lan.log("r1")
    assert lan.has("r1", VIP) and "(VI_1) MASTER ->" not in lan.log("r1")
    assert r1.poll() is None


def test_garp_master_refresh(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    ns_client = lan.node("client", ipv4="192.0.2.100/24")
    extra = "    garp_master_delay 0\n    garp_master_repeat 1\n    garp_master_refresh 1\n"
    lan.hivrrp("r1", lan.write("r1.conf", conf(200, extra=extra, **FAST)))
    assert lan.wait_has(VIP, "r1", 8)
    # Alone on the LAN, the master announces its VIP again every second.
    dump = lan.run(ns_client, "timeout", "3.5", "tcpdump", "-n", "-l", "-i", "eth1",
                   f"arp and arp[14:4] = 0x{''.join(f'{int(o):02x}' for o in VIP.split('.'))}",
                   check=False)
    announcements = [line for line in dump.stdout.splitlines() if VIP in line]
    assert 3 <= len(announcements) <= 5, dump.stdout + dump.stderr


RULES = ("1000:\tfrom 192.0.2.26 lookup 100",
         "1001:\tfrom all to 198.51.100.7 fwmark 0x21/0xff iif eth1 lookup 101",
         "1002:\tfrom all to 203.0.113.0/24 ipproto tcp dport 443 lookup main",
         "1003:\tnot from 10.1.0.0/16 unreachable")


def test_virtual_routes_and_rules_follow_the_master(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    routes = ("    virtual_routes {\n"
              "        198.51.100.0/24 via 192.0.2.254 dev eth1\n"
              "        src 192.0.2.26 to 203.0.113.0/24 dev eth1 scope link metric 7\n"
              "    }\n"
              "    virtual_rules {\n"
              "        from 192.0.2.26/32 table 100 preference 1000\n"
              "        to 198.51.100.7 iif eth1 fwmark 0x21/0xff table 101 pref 1001\n"
              "        from all to 203.0.113.0/24 ipproto tcp dport 443 lookup main "
              "priority 1002\n"
              "        not from 10.1.0.0/16 unreachable pref 1003\n"
              "    }\n")
    r1 = lan.hivrrp("r1", lan.write("r1.conf", conf(200, extra=routes, **FAST)))
    assert lan.wait_running("r1"), lan.log("r1")
    lan.hivrrp("r2", lan.write("r2.conf", conf(100, extra=routes, **FAST)))
    assert lan.wait_owner(VIP, "r1", 8)

    def route_table(name):
        return lan.run(lan.nodes[name][0], "ip", "route", "show").stdout

    assert wait_for(lambda: "198.51.100.0/24 via 192.0.2.254" in route_table("r1"), 2)
    assert "203.0.113.0/24 dev eth1 proto static scope link src 192.0.2.26 metric 7" in \
        route_table("r1")
    assert "198.51.100.0/24" not in route_table("r2")
    lan.kill(r1, signal.SIGTERM)
    assert r1.wait(3) == 0
    assert "198.51.100.0/24" not in route_table("r1")  # released with the VIPs
    assert wait_for(lambda: "198.51.100.0/24 via 192.0.2.254" in route_table("r2")
                    and "203.0.113.0/24" in route_table("r2"), 3), route_table("r2")

    def rules(name):
        return [line.strip() for line in
                lan.run(lan.nodes[name][0], "ip", "rule", "show").stdout.splitlines()
                if line.startswith("100")]

    assert wait_for(lambda: rules("r2") == list(RULES), 3), rules("r2")
    assert rules("r1") == []  # removed with the routes when r1 stopped


def owners_conf(count: int) -> str:
    """`count` address owners (priority 255) on eth1: master at once, VIPs in 10.51/16."""
    return "".join(
        conf(255, vrid=v, vips=(f"10.51.{v}.1/16",)).replace("VI_1", f"VI_{v}")
        for v in range(1, count + 1))


def test_sigterm_during_a_reload_releases_everything_and_restarts_nothing(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    config = lan.write("r1.conf", owners_conf(200))
    r1 = lan.hivrrp("r1", config)
    assert wait_for(lambda: lan.has("r1", "10.51.200.1"), 8), lan.log("r1")
    r1.send_signal(signal.SIGHUP)   # the parse runs on a worker thread ...
    r1.send_signal(signal.SIGTERM)  # ... when the stop arrives
    assert r1.wait(10) == 0, lan.log("r1")
    log = lan.log("r1")
    after_stop = log[log.index("releasing masters and stopping"):]
    # Before the fix the pending reload ran after stop_all(): start() brought the
    # owners back to MASTER and their VIPs were added again after shutdown.
    assert "-> MASTER" not in after_stop and "reloaded:" not in after_stop, after_stop
    ns, _ = lan.nodes["r1"]
    assert "10.51." not in lan.run(ns, "ip", "-4", "addr", "show", "dev", "eth1").stdout


def test_a_sighup_after_sigterm_is_refused(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    r1 = lan.hivrrp("r1", lan.write("r1.conf", owners_conf(50)))
    assert wait_for(lambda: lan.has("r1", "10.51.50.1"), 8), lan.log("r1")
    r1.send_signal(signal.SIGTERM)
    r1.send_signal(signal.SIGHUP)
    assert r1.wait(10) == 0, lan.log("r1")
    log = lan.log("r1")
    assert "reloaded:" not in log[log.index("releasing masters"):]


def test_a_peer_with_another_auth_pass_is_logged_once_by_address(lan):
    """The drop is logged at once, naming the sender, and not again per advert."""
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    lan.hivrrp("r1", lan.write("r1.conf", conf(255)))          # owner: advertises at once
    config = lan.write("r2.conf", conf(100).replace("auth_pass 1234", "auth_pass 9999"))
    r2 = lan.hivrrp("r2", config)
    line = "(VI_1) received an invalid passwd from 192.0.2.1!"
    assert wait_for(lambda: line in lan.log("r2"), 4), lan.log("r2")
    time.sleep(3)                                               # three more adverts dropped
    log = lan.log("r2")
    assert log.count("received an invalid passwd") == 1, log
    namespace, _ = lan.nodes["r2"]
    assert (f"hivrrp {hivrrp.__version__} starting: configuration {config}, pid {r2.pid}, "
            f"network namespace {namespace}") in log
