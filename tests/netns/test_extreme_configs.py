"""Extreme but valid configurations: whatever `hivrrp check` accepts (or fails only with
keepalived's corrections, which the daemon runs with: CORRECTED) must run.

Each case is a keepalived.conf at some edge (more VIPs than fit in an advert,
IPv6 beyond the MTU, hundreds of unicast peers, very long names, the shortest
and longest advert intervals, VIPs that are the host's own address,
duplicates). `check` must accept it, and `hivrrp run` must then start in a
namespace, bring every instance out of INIT, write its SIGUSR1/SIGUSR2 files,
reload on SIGHUP, and stop on SIGTERM with exit status 0 and no traceback.
The cases share one namespace and run one after another, so the module costs
one namespace set-up plus about a second a case.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass

import pytest

from helpers.netns import Lab, wait_for
from hivrrp.ops.control import request

pytestmark = pytest.mark.netns

HOST4 = "192.0.2.1"
UNICAST_NET = "10.0.0.1/16"        # on-link for the unicast peers
STARTUP = 25.0                     # seconds for a daemon to bring every instance out of INIT


@dataclass
class Host:
    lab: Lab
    ns: str
    eth: str        # MTU 1500
    small6: str     # MTU 1280, the IPv6 minimum
    small4: str     # MTU 576, the IPv4 minimum a host must accept

    def reset(self) -> None:
        """The interfaces' own addresses, as before the previous case (a VIP that
        was the host's address went with the daemon that removed it)."""
        for ifname, mtu in ((self.eth, 1500), (self.small6, 1280), (self.small4, 576)):
            self.lab.run(self.ns, "ip", "-4", "addr", "flush", "dev", ifname)
            self.lab.run(self.ns, "ip", "-6", "addr", "flush", "dev", ifname, "scope", "global")
            self.lab.run(self.ns, "ip", "link", "set", ifname, "mtu", str(mtu))
        self.lab.run(self.ns, "ip", "addr", "add", f"{HOST4}/24", "dev", self.eth)
        self.lab.run(self.ns, "ip", "addr", "add", UNICAST_NET, "dev", self.eth)
        self.lab.run(self.ns, "ip", "addr", "add", "192.0.2.129/25", "dev", self.small4)
        self.lab.run(self.ns, "ip", "addr", "add", "198.51.100.1/24", "dev", self.small6)

    def vips_on_eth(self) -> int:
        """Addresses on eth besides its own three (HOST4, UNICAST_NET, link-local)."""
        line = self.lab.run(self.ns, "ip", "-br", "addr", "show", "dev", self.eth).stdout
        return len(line.split()) - 2 - 3


@pytest.fixture(scope="module")
def host(namespaces_allowed):
    with Lab() as lab:
        ns, peer = lab.netns("x"), lab.netns("y")
        names = [lab.veth(ns, peer, k)[0] for k in range(3)]
        h = Host(lab, ns, *names)
        h.reset()
        # IPv6 link-locals (the v3 IPv6 source) come with the link; wait for them
        # (not on small4: below 1280 the kernel turns IPv6 off there).
        assert wait_for(lambda: all(
            "fe80::" in lab.run(ns, "ip", "-6", "addr", "show", "dev", n).stdout
            for n in (h.eth, h.small6)), 5)
        yield h


def instance(name: str, interface: str | None, vrid: int, vips, *, version: int = 3,
             priority: int = 100, advert_int: float = 1, extra: str = "") -> str:
    vip_lines = "".join(f"        {v}\n" for v in vips)
    return (f"vrrp_instance {name} {{\n"
            + (f"    interface {interface}\n" if interface else "")
            + f"    virtual_router_id {vrid}\n    priority {priority}\n"
            f"    advert_int {advert_int:g}\n    version {version}\n{extra}"
            f"    virtual_ipaddress {{\n{vip_lines}    }}\n}}\n")


def v4(n: int, base: int = 10) -> list[str]:
    """n distinct IPv4 /32s in 10.<base>.0.0/16 and up."""
    return [f"10.{base + k // 65025}.{k // 255 % 255}.{k % 255 + 1}/32" for k in range(n)]


def v6(n: int) -> list[str]:
    return [f"fd00::1:{k + 1:x}/64" for k in range(n)]


def peers(addresses) -> str:
    return "    unicast_peer {\n" + "".join(f"        {a}\n" for a in addresses) + "    }\n"


def case_many_vips_v2(h: Host) -> str:
    auth = "    authentication {\n        auth_type PASS\n        auth_pass secret\n    }\n"
    return instance("VI_1", h.eth, 1, v4(1000), version=2, extra=auth)


def case_many_vips_owner(h: Host) -> str:
    # Priority 255: master at once, so all 1,000 go onto the interface.
    return instance("VI_1", h.eth, 1, v4(1000), priority=255)


def case_ipv6_beyond_mtu(h: Host) -> str:
    return instance("VI_6", h.eth, 1, v6(200), priority=255)


def case_ipv6_small_mtu(h: Host) -> str:
    return instance("VI_6", h.small6, 1, v6(100))


def case_ipv4_small_mtu(h: Host) -> str:
    auth = "    authentication {\n        auth_type PASS\n        auth_pass secret\n    }\n"
    return (instance("VI_2", h.small4, 1, v4(300), version=2, extra=auth)
            + instance("VI_3", h.small4, 2, v4(300, 20), priority=255))


def case_hundreds_of_unicast_peers(h: Host) -> str:
    many = [f"10.0.{k // 250 + 1}.{k % 250 + 1}" for k in range(300)]
    unroutable = [f"203.0.113.{k + 1}" for k in range(200)]
    return (instance("VI_U1", h.eth, 1, v4(3), priority=255,
                     extra=f"    unicast_src_ip 10.0.0.1\n{peers(many)}")
            + instance("VI_U2", h.eth, 2, v4(3, 20), version=2, priority=255,
                       extra=peers(unroutable))
            + instance("VI_U3", None, 3, v4(3, 30), priority=255,
                       extra=f"    unicast_src_ip {HOST4}\n{peers(many[:5])}"))


def case_long_names(h: Host) -> str:
    name = "VI_" + "x" * 2000
    group = "G_" + "y" * 2000
    return (instance(name, h.eth, 1, v4(1))
            + instance(name + "2", h.eth, 2, v4(1, 20))
            + f"vrrp_sync_group {group} {{\n    group {{\n        {name}\n        {name}2\n"
              "    }\n}\n")


def case_timer_extremes(h: Host) -> str:
    return (instance("V2_MIN", h.eth, 1, v4(1), version=2, advert_int=1)
            + instance("V2_MAX", h.eth, 2, v4(1, 20), version=2, advert_int=255)
            + instance("V3_MIN", h.eth, 3, v4(1, 30), advert_int=0.01, priority=255)
            + instance("V3_MAX", h.eth, 4, v4(1, 40), advert_int=40.95)
            + instance("V6_MIN", h.eth, 5, v6(1), advert_int=0.01, priority=255)
            + instance("V6_MAX", h.eth, 6, v6(1), advert_int=40.95))


def case_vip_is_host_address(h: Host) -> str:
    return (instance("VI_OWN", h.eth, 1, [f"{HOST4}/24"], priority=255)
            + instance("VI_OWN_B", h.small4, 2, ["192.0.2.129/25"]))


def case_duplicate_vips(h: Host) -> str:
    same = ["192.0.2.50/24", "192.0.2.50/24", "fd00::50/64"][:2]
    return (instance("VI_A", h.eth, 1, same, priority=255)
            + instance("VI_B", h.eth, 2, same)
            + instance("VI_C", h.small4, 3, same, priority=255)
            + instance("VI_D", h.eth, 4, ["fd00::50/64", "fd00::50/64"], priority=255)
            + instance("VI_E", h.small6, 5, ["fd00::50/64"], priority=255))


def case_every_vrid(h: Host) -> str:
    return "".join(instance(f"VI_{vrid}", h.eth, vrid, [f"10.50.{vrid}.1/32"],
                            priority=255 if vrid % 2 else 100)
                   for vrid in range(1, 256))


def case_host_address_among_vips(h: Host) -> str:
    # The host's primary goes first at stop: the kernel takes its secondaries with it.
    return instance("VI_P", h.eth, 1, [f"{HOST4}/24", "192.0.2.60/24", "192.0.2.61/24"],
                    priority=255)


def case_vip_options(h: Host) -> str:
    vips = [f"192.0.2.70/24 label {h.eth}:averyveryverylonglabel", "192.0.2.71/24 brd +",
            "192.0.2.72/24 brd 192.0.2.255 scope host", "192.0.2.73/24 dev nosuchif",
            f"192.0.2.74/24 dev {h.small4}", "10.77.0.1/8", "10.77.0.2/32"]
    return instance("VI_O", h.eth, 1, vips, priority=255,
                    extra="    virtual_ipaddress_excluded {\n"
                          + "".join(f"        {a}\n" for a in [*v4(500, 60), *v6(500)])
                          + "    }\n")


def case_sources_not_on_host(h: Host) -> str:
    return (instance("VI_S1", h.eth, 1, v4(2), priority=255,
                     extra="    unicast_src_ip 203.0.113.99\n" + peers(["10.0.0.2"]))
            + instance("VI_S2", h.eth, 2, v4(2, 20), priority=255,
                       extra="    mcast_src_ip 198.51.100.99\n")
            + instance("VI_S3", h.eth, 3, v6(2), priority=255,
                       extra="    mcast_src_ip fd00::99\n    mcast_dst_ip ff02::1:99\n")
            + instance("VI_S4", h.eth, 4, v4(2, 30), priority=255,
                       extra="    mcast_dst_ip 239.255.255.250\n"))


def case_ipv6_unicast_peers(h: Host) -> str:
    return instance("VI_6U", h.eth, 1, v6(3), priority=255,
                    extra=peers([f"fd00::2:{k + 1:x}" for k in range(300)]))


def case_timers_and_garp_extremes(h: Host) -> str:
    # preempt_delay only below 255: an owner starts as MASTER, and keepalived (and check)
    # call preempt_delay there a config error.
    extra = ("    down_timer_adverts 100\n    garp_master_repeat 255\n"
             "    garp_master_refresh 1\n    garp_master_refresh_repeat 255\n"
             "    garp_master_delay 0\n")
    return ("global_defs {\n    vrrp_garp_interval 0\n    vrrp_gna_interval 0\n}\n"
            + instance("VI_G", h.eth, 1, v4(20), priority=255, advert_int=0.01, extra=extra)
            + instance("VI_G6", h.eth, 2, v6(20), priority=255, advert_int=0.01, extra=extra)
            + instance("VI_GB", h.eth, 3, v4(2, 20), priority=1, advert_int=40.95,
                       extra="    preempt_delay 1000\n    down_timer_adverts 100\n"))


def case_routes_and_rules(h: Host) -> str:
    routes = ("    virtual_routes {\n        10.88.0.0/16 via 192.0.2.254 dev " + h.eth + "\n"
              "        blackhole 10.89.0.0/16\n        10.90.0.0/16 dev nosuchif\n"
              "        10.91.0.0/16 via 203.0.113.1\n        10.92.0.0/16 table 4000000000\n"
              "    }\n    virtual_rules {\n        from 10.88.0.0/16 table 100 priority 32000\n"
              "        to 10.89.0.0/16 lookup 65535\n    }\n")
    return instance("VI_R", h.eth, 1, v4(2), priority=255, extra=routes)


def case_no_vips(h: Host) -> str:
    # keepalived 2.2.7 (and check) take an instance without VIPs in VRRPv2 only ("at
    # least one is sensible"): VRRPv3, so IPv6 too, is refused ("at least one is required").
    return (instance("VI_N4", h.eth, 1, [], version=2, priority=255)
            + instance("VI_NU", h.eth, 2, [], version=2, priority=255,
                       extra=peers(["10.0.2.1"]) + "    virtual_ipaddress_excluded {\n"
                             "        fd00::3:1/64\n        192.0.2.80/24\n    }\n")
            + instance("VI_N2", h.eth, 3, [], version=2))


CASES = {f.__name__[5:]: f for f in (
    case_many_vips_v2, case_many_vips_owner, case_ipv6_beyond_mtu, case_ipv6_small_mtu,
    case_ipv4_small_mtu, case_hundreds_of_unicast_peers, case_long_names,
    case_timer_extremes, case_vip_is_host_address, case_duplicate_vips, case_every_vrid,
    case_host_address_among_vips, case_vip_options, case_sources_not_on_host,
    case_ipv6_unicast_peers, case_timers_and_garp_extremes, case_routes_and_rules,
    case_no_vips)}


def evip_line(name: str, total: int, room: int) -> str:
    return (f"({name}) Number of VIPs ({total}) exceeds maximum/space available in packet "
            f"(max {room} addresses) - excess moved to eVIPs")


# What the daemon logs (keepalived's words) for the cases with more VIPs than
# fit: 255 at most, fewer by the interface's MTU (1500, 1280, 576).
EVIPS = {"many_vips_v2": [("VI_1", 1000, 255)], "many_vips_owner": [("VI_1", 1000, 255)],
         "ipv6_beyond_mtu": [("VI_6", 200, 89)], "ipv6_small_mtu": [("VI_6", 100, 76)],
         "ipv4_small_mtu": [("VI_2", 300, 131), ("VI_3", 300, 133)]}
# Cases with keepalived's config errors that it (and hivrrp run) runs with: check fails them.
CORRECTED = {"no_vips"}
# Masters at once with every VIP on host.eth, eVIPs included.
ON_ETH = {"many_vips_owner": 1000, "ipv6_beyond_mtu": 200}


def hivrrp(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hivrrp", *args], capture_output=True,
                          text=True, timeout=60, **kwargs)


def states(sock: str) -> list[str] | None:
    try:
        reply = request(str(sock), {"command": "status"}, timeout=5)
    except (OSError, ValueError):
        return None
    return [row["state"] for row in reply.get("result", [])] if reply.get("ok") else None


def wait_logged(proc, log_path, text: str, timeout: float) -> bool:
    return wait_for(lambda: proc.poll() is not None
                    or text in log_path.read_text(errors="replace"), timeout)


@pytest.mark.parametrize("case", CASES)
def test_checked_config_runs_and_stops_cleanly(host, tmp_path, case):
    host.reset()
    text = CASES[case](host)
    conf = tmp_path / "keepalived.conf"
    conf.write_text(text)
    checked = hivrrp("check", "-f", str(conf))
    if case in CORRECTED:
        # keepalived -t fails it too (exit 5), and keepalived runs it.
        assert checked.returncode == 1 and "runs with them corrected" in checked.stdout, (
            checked.stdout + checked.stderr[-3000:])
    else:
        assert checked.returncode == 0, checked.stderr[-3000:]
    expected = text.count("vrrp_instance ")

    sock, log_path = tmp_path / "hivrrp.sock", tmp_path / "hivrrp.log"
    with open(log_path, "wb") as log:
        # TMPDIR: the SIGUSR1/SIGUSR2 files go there, as keepalived's.
        proc = host.lab.popen(host.ns, "env", f"TMPDIR={tmp_path}", sys.executable, "-m",
                              "hivrrp", "run", "-f", str(conf), "--control", str(sock),
                              "--pid-file", str(tmp_path / "pid"),
                              stdout=subprocess.DEVNULL, stderr=log)

    def running() -> bool:
        seen = states(sock)
        return proc.poll() is not None or (
            seen is not None and len(seen) == expected and "INIT" not in seen)

    def signalled(signum: signal.Signals, logged: str) -> bool:
        proc.send_signal(signum)
        return wait_logged(proc, log_path, logged, STARTUP)

    steps = [("start", lambda: wait_for(running, STARTUP, interval=0.1))]
    if case in ON_ETH:
        steps.append(("every VIP on the interface", lambda: wait_for(
            lambda: host.vips_on_eth() == ON_ETH[case], STARTUP)))
    # What an operator does to a running daemon: dumps, a reload.
    for signum, logged in ((signal.SIGUSR1, "data file written"),
                           (signal.SIGUSR2, "stats file written"),
                           (signal.SIGHUP, "reloaded:")):
        steps.append((signum.name, lambda signum=signum, logged=logged: signalled(signum, logged)))
    steps.append(("after the reload", lambda: wait_for(running, STARTUP, interval=0.1)))
    try:
        # The first step that fails, or after which the daemon is gone.
        failed = next((name for name, step in steps if not step() or proc.poll() is not None),
                      None)
    finally:
        if proc.poll() is None:
            host.lab.stop(proc, signal.SIGTERM, timeout=15)
    output = log_path.read_text(errors="replace")
    assert "Traceback" not in output, output[-6000:]
    assert failed is None, f"{failed}: {states(sock)}\n{output[-4000:]}"
    assert proc.returncode == 0, output[-4000:]
    for name, total, room in EVIPS.get(case, []):
        assert output.count(evip_line(name, total, room)) == 2, output[-4000:]  # start, reload
    if case not in EVIPS:
        assert "eVIPs" not in output


def test_check_warns_with_the_mtu_of_the_interface_it_finds(host, tmp_path):
    conf = tmp_path / "keepalived.conf"
    conf.write_text(case_ipv6_small_mtu(host))
    # `ip netns exec`: check reads the MTU from the namespace's own /sys.
    checked = subprocess.run(["ip", "netns", "exec", host.ns, sys.executable, "-m", "hivrrp",
                              "check", "-f", str(conf)], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stderr
    assert (f"vrrp_instance VI_6: 100 VIPs, but only the first 76 fit in its adverts (at the "
            f"MTU of {host.small6}, 1280)") in checked.stderr, checked.stderr
