"""conf/frr's recipe with real FRR: two hivrrp routers announce their VIPs to an upstream.

r1 (priority 200) and r2 (100) share a VRRP LAN; each runs hivrrp and FRR
(zebra + bgpd with conf/frr/frr.conf filled in) and has an eBGP session over
a link of its own to the upstream namespace (FRR with conf/frr/upstream.conf).
The upstream's kernel routes say where it sends the VIP's traffic.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest
from netns_conf import FAST, FAST_MDI_100

from helpers.netns import wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import frr  # noqa: E402

pytestmark = pytest.mark.netns

VIP = "203.0.113.10"
VIP_RANGE = "203.0.113.0/24"
LOCAL_AS, UPSTREAM_AS = 64511, 64496
UPLINK = {"r1": ("10.0.1.1", "10.0.1.2"), "r2": ("10.0.2.1", "10.0.2.2")}  # (upstream, router)
R1, R2 = UPLINK["r1"][1], UPLINK["r2"][1]
# BGP sessions come up in a few seconds; this bounds every wait for a route to move.
CONVERGE = 10.0


def keepalived_conf(priority: int, *, advert_int: float = FAST["advert"],
                    preempt_delay: int = 60) -> str:
    # The VIP with no /len is a /32: a connected /32 in zebra while hivrrp holds it.
    # preempt_delay: a restarted r1 stays BACKUP long enough to see the route settle on r2.
    return (f"vrrp_instance VI_1 {{\n    interface eth1\n    virtual_router_id 51\n"
            f"    version 3\n    priority {priority}\n    advert_int {advert_int:g}\n"
            + (f"    preempt_delay {preempt_delay}\n" if preempt_delay else "")
            + f"    virtual_ipaddress {{\n        {VIP}\n    }}\n}}\n")


class BgpLab:
    def __init__(self, lan) -> None:
        self.lan = lan
        self.routers = {name: lan.node(name, ipv4=f"192.0.2.{n}/24")
                        for n, name in enumerate(("r1", "r2"), 1)}
        self.upstream = lan.netns("up")
        self.frr: dict[str, frr.Frr] = {}
        self.links: dict[str, tuple[str, str]] = {}
        self.vrrp: dict = {}           # keepalived_conf()'s keywords for both routers
        for n, (name, ns) in enumerate(self.routers.items(), 1):
            self.links[name] = lan.veth(self.upstream, ns, n)
            up_if, router_if = self.links[name]
            lan.run(self.upstream, "ip", "addr", "add", f"{UPLINK[name][0]}/30", "dev", up_if)
            lan.run(ns, "ip", "addr", "add", f"{UPLINK[name][1]}/30", "dev", router_if)

    def start_frr(self) -> None:
        self.frr["up"] = frr.Frr(self.lan, self.upstream, "up", frr.render(
            "upstream.conf", UPSTREAM_AS=UPSTREAM_AS, UPSTREAM_ROUTER_ID="10.0.0.1",
            LOCAL_AS=LOCAL_AS, ROUTER1_IP=R1, ROUTER2_IP=R2, VIP_RANGE=VIP_RANGE))
        self.frr["up"].start()             # the upstream first: it is listening
        for name in self.routers:
            self.start_router_frr(name)

    def start_router_frr(self, name: str) -> None:
        upstream_ip, own = UPLINK[name]
        self.frr[name] = frr.Frr(self.lan, self.routers[name], name, frr.render(
            "frr.conf", LOCAL_AS=LOCAL_AS, ROUTER_ID=own, UPSTREAM_AS=UPSTREAM_AS,
            UPSTREAM_IP=upstream_ip, VIP_RANGE=VIP_RANGE))
        self.frr[name].start()

    def power(self, name: str, on: bool) -> None:
        """Every link of `name` down (its LAN port, its uplink) or up again."""
        state = "up" if on else "down"
        self.lan.run(self.lan.switch, "ip", "link", "set", self.lan.port_of[name], state)
        self.lan.run(self.routers[name], "ip", "link", "set", self.links[name][1], state)

    def sessions_up(self) -> bool:
        return all(self.frr["up"].established(r) for r in (R1, R2))

    def next_hops(self) -> frozenset[str]:
        return frr.bgp_routes(self.upstream).get(f"{VIP}/32", frozenset())

    def wait_next_hops(self, expected: set[str], timeout: float = CONVERGE) -> bool:
        return wait_for(lambda: self.next_hops() == expected, timeout, interval=0.1)

    def hivrrp(self, name: str, priority: int) -> subprocess.Popen:
        return self.lan.hivrrp(name, self.lan.write(f"{name}.conf",
                                                    keepalived_conf(priority, **self.vrrp)))

    def why(self) -> str:
        return "\n".join([f"upstream next hops for {VIP}: {sorted(self.next_hops())}",
                          self.frr["up"].vtysh(f"show bgp ipv4 unicast {VIP}/32"),
                          self.lan.log("r1"), self.lan.log("r2")]
                         + [f.logs() for f in self.frr.values()])

    def close(self) -> None:
        for daemons in self.frr.values():
            daemons.close()


@pytest.fixture
def bgp(lan):
    reason = frr.missing()
    if reason:
        pytest.fail(f"{reason}: tests/run.sh installs it")
    lab = BgpLab(lan)
    try:
        lab.start_frr()
        yield lab
    finally:
        lab.close()


def elect_r1(bgp) -> subprocess.Popen:
    """r1 master, r2 backup, both sessions up, the upstream's route via r1 alone."""
    r1 = bgp.hivrrp("r1", 200)
    assert bgp.lan.wait_owner(VIP, "r1", 8), bgp.why()
    bgp.hivrrp("r2", 100)            # after r1 is master: it sees the master, stays BACKUP
    assert wait_for(bgp.sessions_up, CONVERGE, interval=0.2), bgp.why()
    # r2 runs and its session is up, yet it does not announce a VIP it does not hold;
    # r1 announces the VIP and nothing else (not its LAN's or its uplink's subnet).
    assert bgp.wait_next_hops({R1}), bgp.why()
    assert bgp.frr["r1"].advertised(UPLINK["r1"][0]) == {f"{VIP}/32"}, bgp.why()
    assert bgp.frr["r2"].advertised(UPLINK["r2"][0]) == set(), bgp.why()
    return r1


def test_the_upstream_follows_the_master_and_a_killed_one_s_leftovers(bgp):
    r1 = elect_r1(bgp)
    bgp.lan.kill(r1)
    r1.wait(5)
    # r2 takes over and announces. r1's kernel keeps the VIP a SIGKILLed hivrrp could
    # not remove, so r1's bgpd goes on announcing it: the upstream spreads over both.
    assert bgp.lan.wait_has(VIP, "r2", FAST_MDI_100 + 2), bgp.why()
    assert wait_for(lambda: R2 in bgp.next_hops(), CONVERGE, interval=0.1), bgp.why()
    assert bgp.lan.has("r1", VIP) and bgp.next_hops() == {R1, R2}, bgp.why()
    time.sleep(2)                    # not a slow withdrawal: nothing will withdraw it
    assert bgp.next_hops() == {R1, R2}, bgp.why()
    # What systemd's Restart=on-failure does: hivrrp again, which removes the leftovers
    # first; r1's announcement goes with them and the route is r2's alone.
    bgp.hivrrp("r1", 200)
    assert bgp.wait_next_hops({R2}), bgp.why()
    assert "removing 1 VIP left over from a previous run" in bgp.lan.log("r1")
    assert not bgp.lan.has("r1", VIP)


def test_the_units_release_after_a_kill_leaves_the_route_to_the_peer(bgp):
    r1 = elect_r1(bgp)
    bgp.lan.kill(r1)
    r1.wait(5)
    # What the unit's ExecStopPost= does the moment the daemon dies, before (and
    # without) any restart: the leftover VIP goes, and with it r1's announcement.
    ns = bgp.routers["r1"]
    done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "hivrrp", "release",
                           "-f", str(bgp.lan.workdir / "r1.conf")],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0 and "removed 1 VIP left over" in done.stderr, done.stderr
    assert not bgp.lan.has("r1", VIP)
    assert bgp.lan.wait_has(VIP, "r2", FAST_MDI_100 + 2), bgp.why()
    assert bgp.wait_next_hops({R2}), bgp.why()


def test_a_router_that_dies_whole_is_withdrawn_at_once(bgp):
    r1 = elect_r1(bgp)
    # A power cut: hivrrp gone, and every link of r1 down (its LAN port, its uplink).
    bgp.lan.kill(r1)
    bgp.power("r1", on=False)
    # The upstream drops r1's session with its link (FRR's fast-external-failover), not
    # after the hold time (9 s, at least 6 s after the last keepalive); r2's route comes
    # once it is master.
    assert wait_for(lambda: not bgp.frr["up"].established(R1), 2, interval=0.1), bgp.why()
    assert bgp.wait_next_hops({R2}, FAST_MDI_100 + CONVERGE), bgp.why()


def test_a_returning_master_waits_for_its_session_with_preempt_delay(bgp):
    # Fast adverts: r1 would take the VIP back 0.4 s after it starts, before its new
    # bgpd has a session, and r2's withdrawal would leave the upstream without a route
    # until r1's session is up. preempt_delay keeps r1 BACKUP until the session is up:
    # 8 s, more than the 5 s after which either side retries a failed connection.
    bgp.vrrp = {"advert_int": 0.1, "preempt_delay": 8}
    r1 = elect_r1(bgp)
    bgp.lan.kill(r1)
    bgp.power("r1", on=False)
    bgp.frr.pop("r1").close()
    assert bgp.wait_next_hops({R2}), bgp.why()
    # Power on: a box that lost power has neither the VIP nor a BGP session; FRR and
    # hivrrp start together, as at boot.
    bgp.lan.run(bgp.routers["r1"], "ip", "addr", "del", f"{VIP}/32", "dev", "eth1")
    bgp.power("r1", on=True)
    bgp.start_router_frr("r1")
    bgp.hivrrp("r1", 200)
    started, unrouted = time.monotonic(), []

    def back_on_r1() -> bool:
        hops = bgp.next_hops()
        if not hops:
            unrouted.append(round(time.monotonic() - started, 2))
        return hops == {R1}
    assert wait_for(back_on_r1, 8 + CONVERGE, interval=0.02), bgp.why()
    assert not unrouted, (f"the upstream had no route for {VIP} from {unrouted[0]} to "
                          f"{unrouted[-1]} s after r1 started")
    assert bgp.lan.owner_of(VIP) == ["r1"]


def test_the_recipe_checks_only_once_every_placeholder_is_filled(tmp_path):
    filled = tmp_path / "frr.conf"
    filled.write_text(frr.render("frr.conf", LOCAL_AS=LOCAL_AS, ROUTER_ID=R1,
                                 UPSTREAM_AS=UPSTREAM_AS, UPSTREAM_IP="10.0.1.1",
                                 VIP_RANGE=VIP_RANGE))
    assert subprocess.run(["vtysh", "-C", "-f", str(filled)], capture_output=True,
                          timeout=30, check=False).returncode == 0
    raw = subprocess.run(["vtysh", "-C", "-f", str(frr.RECIPE / "frr.conf")],
                         capture_output=True, text=True, timeout=30, check=False)
    assert raw.returncode != 0 and "router bgp <LOCAL_AS>" in raw.stdout + raw.stderr
    with pytest.raises(ValueError, match="no value for <VIP_RANGE>"):
        frr.render("frr.conf", LOCAL_AS=1, ROUTER_ID=R1, UPSTREAM_AS=2, UPSTREAM_IP=R2)
