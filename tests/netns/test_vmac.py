"""use_vmac in namespaces: what the kernel holds, read from it, beside what
keepalived 2.2.7 makes of the same configuration; a client's view of the
virtual MAC across failovers; the VMACs' life (adopted, fixed, made again,
deleted) and the sysctls around them."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from netns_conf import FAST, MDI_100

from helpers.netns import wait_for

pytestmark = pytest.mark.netns

VIP4, VIP6 = "192.0.2.26", "fd00::26"
MAC4, MAC6 = "00:00:5e:00:01:33", "00:00:5e:00:02:34"     # VRIDs 51 and 52


@pytest.fixture(autouse=True)
def tools():
    for tool in ("keepalived", "tcpdump"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: tests/run.sh installs it")


def instance(name: str, vrid: int, vip: str, priority: int = 200, extra: str = "",
             vmac: str = "    use_vmac\n", fast: bool = False) -> str:
    """fast: netns_conf.FAST's timers, for tests of the VMACs and not of VRRP's timing."""
    version = "    version 3\n" if ":" in vip or fast else ""
    advert = FAST["advert"] if fast else 1
    return (f"vrrp_instance {name} {{\n    interface eth1\n    virtual_router_id {vrid}\n"
            f"    priority {priority}\n    advert_int {advert:g}\n{version}{vmac}{extra}"
            f"    virtual_ipaddress {{\n        {vip}\n    }}\n}}\n")


BOTH = instance("VI_4", 51, f"{VIP4}/24") + instance("VI_6", 52, f"{VIP6}/64")


# ------------------------------------------------------------------ reading the kernel

def links(lan, ns: str) -> dict[str, dict]:
    return {link["ifname"]: link
            for link in json.loads(lan.run(ns, "ip", "-d", "-j", "link", "show").stdout)}


def addresses(lan, ns: str) -> dict[str, list[dict]]:
    return {entry["ifname"]: entry.get("addr_info", [])
            for entry in json.loads(lan.run(ns, "ip", "-j", "addr", "show").stdout)}


def holder(lan, ns: str, address: str) -> str | None:
    """The interface that holds `address` in `ns`."""
    for ifname, infos in addresses(lan, ns).items():
        if any(info["local"] == address for info in infos):
            return ifname
    return None


def sysctls(lan, ns: str, paths: list[str]) -> dict[str, str]:
    script = 'for p in "$@"; do printf "%s %s\\n" "$p" "$(cat /proc/sys/net/$p 2>&1)"; done'
    out = lan.run(ns, "sh", "-c", script, "sh", *paths).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


V4_KEYS = ("arp_ignore", "arp_filter", "accept_local", "rp_filter", "promote_secondaries")


def kernel_view(lan, ns: str) -> dict:
    """Everything use_vmac changes in a namespace, in comparable form."""
    view: dict = {}
    all_links = links(lan, ns)
    addrs = addresses(lan, ns)
    parent_ll = [a["local"] for a in addrs["eth1"] if a.get("scope") == "link"]
    for name, link in all_links.items():
        info = link.get("linkinfo", {})
        if info.get("info_kind") != "macvlan":
            continue
        view[name] = {
            "mode": info["info_data"]["mode"], "mac": link["address"], "parent": link["link"],
            "addrgenmode": link.get("inet6_addr_gen_mode"), "up": "UP" in link["flags"],
            "link_local": ["parent's" if a["local"] in parent_ll else a["local"]
                           for a in addrs.get(name, []) if a.get("scope") == "link"],
        }
        view[name].update(sysctls(lan, ns, [f"ipv4/conf/{name}/{k}" for k in V4_KEYS]
                                  + [f"ipv6/conf/{name}/disable_ipv6"]))
    view["eth1"] = sysctls(lan, ns, [f"ipv4/conf/eth1/{k}" for k in V4_KEYS])
    view["global"] = sysctls(lan, ns, ["ipv4/conf/all/rp_filter",
                                       "ipv4/conf/default/rp_filter"])
    view["VIPs on"] = {VIP4: holder(lan, ns, VIP4), VIP6: holder(lan, ns, VIP6)}
    return view


def capture(lan, ns: str, path, expression: str) -> subprocess.Popen:
    proc = lan.popen(ns, "tcpdump", "-i", "eth1", "-U", "-n", "-w", str(path), expression,
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Listening once it says so (stderr), not before: nothing is missed.
    line = proc.stderr.readline().decode(errors="replace")
    assert "listening" in line, line
    return proc


def frames(path) -> list[tuple[str, str]]:
    """(source MAC, the rest of tcpdump's line) of each captured frame."""
    out = subprocess.run(["tcpdump", "-r", str(path), "-e", "-n"], capture_output=True,
                         text=True, timeout=30).stdout
    found = []
    for line in out.splitlines():
        match = re.match(r"\S+ ([0-9a-f:]{17}) > ", line)
        if match:
            found.append((match.group(1), line))
    return found


def ours_settled(lan, name: str, pattern: str, timeout: float) -> bool:
    return wait_for(lambda: pattern in lan.log(name), timeout)


# ------------------------------------------------------------------ the tests

def test_the_kernel_holds_what_keepalived_makes_of_the_same_configuration(lan):
    """Issue 20 point 4(b): link kind, mode, MAC, name, address generation,
    sysctls and the VIPs' interface, read from the kernel in both namespaces,
    all/default rp_filter not 0 so that its clearing is compared too."""
    ka = lan.node("ka", ipv4="192.0.2.1/24")
    hv = lan.node("hv", ipv4="192.0.2.2/24")
    for ns in (ka, hv):
        lan.run(ns, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=2",
                "net.ipv4.conf.default.rp_filter=1", "net.ipv4.conf.eth1.rp_filter=0")
    # Apart: each is master of both instances, with everything in place.
    lan.isolate("ka", True)
    lan.isolate("hv", True)
    keepalived = lan.keepalived("ka", lan.write("ka.conf", BOTH))
    hivrrp = lan.hivrrp("hv", lan.write("hv.conf", BOTH))
    for ns, who in ((ka, "keepalived"), (hv, "hivrrp")):
        assert wait_for(lambda ns=ns: holder(lan, ns, VIP4) and holder(lan, ns, VIP6), 15), (
            who, lan.log("ka", "keepalived"), lan.log("hv"))
    theirs, ours = kernel_view(lan, ka), kernel_view(lan, hv)
    assert ours == theirs
    # And what that is (so that both being wrong the same way fails too):
    assert ours["vrrp.51"] == {
        "mode": "private", "mac": MAC4, "parent": "eth1", "addrgenmode": "none", "up": True,
        "link_local": [], "ipv4/conf/vrrp.51/arp_ignore": "1",
        "ipv4/conf/vrrp.51/arp_filter": "0", "ipv4/conf/vrrp.51/accept_local": "1",
        "ipv4/conf/vrrp.51/rp_filter": "0", "ipv4/conf/vrrp.51/promote_secondaries": "1",
        "ipv6/conf/vrrp.51/disable_ipv6": "1"}
    assert ours["vrrp.52"]["mac"] == MAC6 and ours["vrrp.52"]["link_local"] == ["parent's"]
    assert ours["vrrp.52"]["ipv4/conf/vrrp.52/arp_ignore"] == "0"     # keepalived: IPv4 only
    assert ours["vrrp.52"]["ipv6/conf/vrrp.52/disable_ipv6"] == "0"
    assert ours["eth1"]["ipv4/conf/eth1/arp_ignore"] == "1"
    assert ours["eth1"]["ipv4/conf/eth1/arp_filter"] == "1"
    assert ours["eth1"]["ipv4/conf/eth1/rp_filter"] == "2"            # raised to all's
    assert ours["global"] == {"ipv4/conf/all/rp_filter": "0",
                              "ipv4/conf/default/rp_filter": "2"}
    assert ours["VIPs on"] == {VIP4: "vrrp.51", VIP6: "vrrp.52"}
    # Stopped: the VMACs go and rp_filter is as before, with both daemons.
    lan.stop_keepalived(keepalived)
    lan.stop(hivrrp)
    assert hivrrp.returncode == 0
    for ns in (ka, hv):
        after = kernel_view(lan, ns)
        assert not [name for name in after if name.startswith("vrrp")], after
        assert after["global"] == {"ipv4/conf/all/rp_filter": "2",
                                   "ipv4/conf/default/rp_filter": "1"}
        assert after["eth1"]["ipv4/conf/eth1/rp_filter"] == "0"
    # The one difference: hivrrp puts the parent's arp_ignore and arp_filter
    # back; keepalived 2.2.7 leaves them at 1 (its saved copy follows the
    # kernel's news of its own change).
    assert kernel_view(lan, hv)["eth1"]["ipv4/conf/eth1/arp_ignore"] == "0"
    assert kernel_view(lan, hv)["eth1"]["ipv4/conf/eth1/arp_filter"] == "0"
    assert kernel_view(lan, ka)["eth1"]["ipv4/conf/eth1/arp_ignore"] == "1"


def test_a_client_sees_the_virtual_mac_through_failovers_with_keepalived(lan, tmp_path):
    """use_vmac on both routers (hivrrp 200, keepalived 100): the client's
    neighbour entry for the VIP is the virtual MAC, stays it when the VIP
    moves, and each master's gratuitous ARP comes from the virtual MAC."""
    ka_ns = lan.node("ka", ipv4="192.0.2.1/24")
    hv = lan.node("hv", ipv4="192.0.2.2/24")
    client = lan.node("client", ipv4="192.0.2.100/24")
    # The routers know the client's MAC already. Otherwise their first reply
    # from the VIP (routed out of the parent, whose subnet it shares) asks
    # for the client by ARP with the VIP as sender and the parent's MAC, and
    # the client takes that: keepalived 2.2.7 and hivrrp alike (measured), a
    # matter of the kernel's routing, not of the VMAC.
    client_mac = links(lan, client)["eth1"]["address"]
    for ns in (ka_ns, hv):
        lan.run(ns, "ip", "neigh", "replace", "192.0.2.100", "lladdr", client_mac, "dev",
                "eth1", "nud", "permanent")
    hv_conf = lan.write("hv.conf", instance("VI_1", 51, f"{VIP4}/24", 200))
    keepalived = lan.keepalived("ka", lan.write("ka.conf", instance("VI_1", 51, f"{VIP4}/24",
                                                                    100)))
    garps = tmp_path / "garp1.pcap"
    dump = capture(lan, client, garps, f"arp and host {VIP4}")
    hivrrp = lan.hivrrp("hv", hv_conf)
    assert wait_for(lambda: holder(lan, hv, VIP4) == "vrrp.51", 12), lan.log("hv")
    assert "Entering MASTER STATE" not in lan.log("ka", "keepalived")

    def neighbour() -> str:
        lan.run(client, "ping", "-c", "1", "-W", "1", VIP4, check=False)
        return lan.run(client, "ip", "neigh", "show", VIP4).stdout

    assert MAC4 in neighbour()
    time.sleep(1)
    lan.stop(dump)
    announced = [mac for mac, line in frames(garps) if "Request who-has" in line
                 and f"tell {VIP4}" in line]
    assert announced and set(announced) == {MAC4}, frames(garps)
    # hivrrp dies: keepalived takes over; the client's entry is still the
    # virtual MAC and reaches keepalived (its GARP moved the bridge's entry).
    garps = tmp_path / "garp2.pcap"
    dump = capture(lan, client, garps, f"arp and host {VIP4}")
    lan.kill(hivrrp)
    assert wait_for(lambda: holder(lan, ka_ns, VIP4) == "vrrp.51", MDI_100 + 3), \
        lan.log("ka", "keepalived")
    assert wait_for(lambda: MAC4 in neighbour() and "REACHABLE" in neighbour(), 5)
    replies = lan.run(client, "ping", "-c", "3", "-i", "0.2", "-W", "1", VIP4, check=False)
    assert replies.returncode == 0, replies.stdout
    time.sleep(1)
    lan.stop(dump)
    assert {mac for mac, line in frames(garps) if f"tell {VIP4}" in line} == {MAC4}
    # The dead daemon's VMAC still holds the MAC: `hivrrp release` (the
    # unit's ExecStopPost) deletes it.
    assert "vrrp.51" in links(lan, hv)
    released = subprocess.run(["ip", "netns", "exec", hv, sys.executable, "-m", "hivrrp",
                               "release", "-f", str(hv_conf), "--pid-file",
                               str(tmp_path / "release.pid")],
                              capture_output=True, text=True, timeout=60)
    assert released.returncode == 0, released.stderr
    assert "vrrp.51" not in links(lan, hv), released.stderr
    assert "VMACs deleted (left by a daemon that died): vrrp.51" in released.stderr
    # hivrrp back (priority 200) preempts: its GARPs from the virtual MAC too.
    garps = tmp_path / "garp3.pcap"
    dump = capture(lan, client, garps, f"arp and host {VIP4}")
    lan.hivrrp("hv", hv_conf)
    assert wait_for(lambda: holder(lan, hv, VIP4) == "vrrp.51", 12), lan.log("hv")
    assert wait_for(lambda: holder(lan, ka_ns, VIP4) is None, 5), lan.log("ka", "keepalived")
    # keepalived's second GARP burst (garp_master_delay, 5 s after its
    # takeover) may leave just as it steps down and point the bridge at it:
    # until hivrrp's next frame from the virtual MAC (its next advert, <= 1 s).
    assert wait_for(lambda: lan.run(client, "ping", "-c", "1", "-W", "1", VIP4,
                                    check=False).returncode == 0, 4)
    time.sleep(1)
    lan.stop(dump)
    assert {mac for mac, line in frames(garps) if f"tell {VIP4}" in line} == {MAC4}
    assert MAC4 in neighbour()
    lan.stop_keepalived(keepalived)


def test_a_backups_vmac_does_not_teach_switches_the_virtual_mac(lan, tmp_path):
    """A backup's VMAC joins the VRRP group: its IGMP report, from the virtual
    MAC, would have the switch send the master's traffic to the backup until
    the master's next advert. keepalived moves those reports to the parent
    (nftables); hivrrp has the kernel send none for 224.0.0.0/24
    (igmp_link_local_mcast_reports, keepalived's disable_local_igmp)."""
    ka = lan.node("ka", ipv4="192.0.2.1/24")
    hv = lan.node("hv", ipv4="192.0.2.2/24")
    client = lan.node("client", ipv4="192.0.2.100/24")
    keepalived = lan.keepalived("ka", lan.write("ka.conf", instance("VI_1", 51, f"{VIP4}/24",
                                                                    200)))
    assert wait_for(lambda: holder(lan, ka, VIP4) == "vrrp.51", 12), lan.log("ka", "keepalived")
    path = tmp_path / "igmp.pcap"
    dump = capture(lan, client, path, "igmp")
    hivrrp = lan.hivrrp("hv", lan.write("hv.conf", instance("VI_1", 51, f"{VIP4}/24", 100)))
    assert wait_for(lambda: "(VI_1) INIT -> BACKUP" in lan.log("hv"), 10), lan.log("hv")
    knob = "/proc/sys/net/ipv4/igmp_link_local_mcast_reports"
    assert lan.run(hv, "cat", knob).stdout.strip() == "0"
    time.sleep(3)              # the kernel repeats a join's report within a second or two
    lan.stop(dump)
    assert [line for mac, line in frames(path) if mac == MAC4] == []
    assert holder(lan, hv, VIP4) is None
    lan.stop(hivrrp)
    assert lan.run(hv, "cat", knob).stdout.strip() == "1"
    lan.stop_keepalived(keepalived)


def test_ipv6_the_parents_link_local_on_the_vmac_and_neighbour_adverts_from_it(lan, tmp_path):
    hv = lan.node("hv", ipv4="192.0.2.2/24")
    client = lan.node("client", ipv4="192.0.2.100/24")
    path = tmp_path / "v6.pcap"
    dump = capture(lan, client, path, "icmp6 or ip6 proto 112")
    lan.hivrrp("hv", lan.write("hv.conf", instance("VI_6", 52, f"{VIP6}/64", fast=True)))
    assert wait_for(lambda: holder(lan, hv, VIP6) == "vrrp.52", 12), lan.log("hv")
    time.sleep(2)
    lan.stop(dump)
    parent_ll = [a["local"] for a in addresses(lan, hv)["eth1"] if a.get("scope") == "link"]
    on_vmac = [a for a in addresses(lan, hv)["vrrp.52"] if a.get("scope") == "link"]
    # The parent's link-local, none made from the VMAC's MAC (addrgenmode none).
    assert [a["local"] for a in on_vmac] == parent_ll
    assert links(lan, hv)["vrrp.52"]["inet6_addr_gen_mode"] == "none"
    seen = frames(path)
    adverts = [(mac, line) for mac, line in seen if "VRRPv3" in line]
    assert adverts and all(mac == MAC6 and f"{parent_ll[0]} > ff02::12" in line
                           for mac, line in adverts), adverts
    adverts_na = [(mac, line) for mac, line in seen
                  if "neighbor advertisement" in line and f"tgt is {VIP6}" in line]
    assert adverts_na and {mac for mac, _ in adverts_na} == {MAC6}, seen


def test_vmac_xmit_base_sends_adverts_from_the_parent(lan, tmp_path):
    hv = lan.node("hv", ipv4="192.0.2.2/24")
    client = lan.node("client", ipv4="192.0.2.100/24")
    parent_mac = links(lan, hv)["eth1"]["address"]
    path = tmp_path / "xmit.pcap"
    dump = capture(lan, client, path, f"ip proto 112 or (arp and host {VIP4})")
    lan.hivrrp("hv", lan.write("hv.conf", instance("VI_1", 51, f"{VIP4}/24",
                                                   extra="    vmac_xmit_base\n")))
    assert wait_for(lambda: holder(lan, hv, VIP4) == "vrrp.51", 12), lan.log("hv")
    time.sleep(2.5)
    lan.stop(dump)
    seen = frames(path)
    adverts = [mac for mac, line in seen if "VRRPv2" in line]
    garps = [mac for mac, line in seen if f"tell {VIP4}" in line]
    assert len(adverts) >= 2 and set(adverts) == {parent_mac}, seen
    assert garps and set(garps) == {MAC4}, seen


def test_the_life_of_the_vmacs(lan):
    """Adopted and fixed at start, made again when deleted behind our back,
    deleted when a reload removes use_vmac (the others do not flap), the
    parent's sysctls back after the last, all gone at SIGTERM."""
    hv = lan.node("hv", ipv4="192.0.2.2/24")
    lan.run(hv, "sysctl", "-qw", "net.ipv4.conf.eth1.arp_ignore=2")
    # A previous run's VMAC (right) and one in the wrong mode.
    lan.run(hv, "ip", "link", "add", "vrrp.51", "link", "eth1", "address", MAC4, "type",
            "macvlan", "mode", "private")
    lan.run(hv, "ip", "link", "add", "vrrp.53", "link", "eth1", "address",
            "00:00:5e:00:01:35", "type", "macvlan", "mode", "bridge")
    before = {name: links(lan, hv)[name]["ifindex"] for name in ("vrrp.51", "vrrp.53")}
    three = (instance("VI_1", 51, "192.0.2.51/24", fast=True)
             + instance("VI_3", 53, "192.0.2.53/24", fast=True)
             + instance("VI_9", 59, "192.0.2.59/24", vmac="", fast=True))
    config = lan.write("hv.conf", three)
    hivrrp = lan.hivrrp("hv", config)
    assert wait_for(lambda: holder(lan, hv, "192.0.2.51") == "vrrp.51"
                    and holder(lan, hv, "192.0.2.53") == "vrrp.53"
                    and holder(lan, hv, "192.0.2.59") == "eth1", 12), lan.log("hv")
    now = links(lan, hv)
    assert {name: now[name]["ifindex"] for name in before} == before      # the same links
    assert now["vrrp.53"]["linkinfo"]["info_data"]["mode"] == "private"
    assert "1 put right, 1 adopted" in lan.log("hv")
    assert "(VI_3) Update old VMAC interface vrrp.53 due to wrong mode" in lan.log("hv")
    # Deleted behind our back: FAULT, then made again, master again.
    lan.run(hv, "ip", "link", "del", "vrrp.51")
    assert wait_for(lambda: holder(lan, hv, "192.0.2.51") == "vrrp.51", 10), lan.log("hv")
    assert links(lan, hv)["vrrp.51"]["ifindex"] != before["vrrp.51"]
    log = lan.log("hv")
    assert "(VI_1) VMAC vrrp.51 was deleted: making it again" in log
    assert "(VI_1) MASTER -> FAULT" in log and "(VI_3) MASTER ->" not in log
    # Set down: FAULT until someone sets it up (not brought up by us, as keepalived).
    mark = len(lan.log("hv"))
    lan.run(hv, "ip", "link", "set", "vrrp.51", "down")
    assert wait_for(lambda: "(VI_1) MASTER -> FAULT" in lan.log("hv")[mark:], 5), lan.log("hv")
    time.sleep(1)
    assert "DOWN" in lan.run(hv, "ip", "-br", "link", "show", "vrrp.51").stdout
    lan.run(hv, "ip", "link", "set", "vrrp.51", "up")
    assert wait_for(lambda: holder(lan, hv, "192.0.2.51") == "vrrp.51", 10), lan.log("hv")
    # The parent down: its VMACs lose their carrier, their instances fault.
    mark = len(lan.log("hv"))
    lan.run(hv, "ip", "link", "set", "eth1", "down")
    assert wait_for(lambda: all(f"({name}) MASTER -> FAULT" in lan.log("hv")[mark:]
                                for name in ("VI_1", "VI_3", "VI_9")), 5), lan.log("hv")
    lan.run(hv, "ip", "link", "set", "eth1", "up")
    assert wait_for(lambda: holder(lan, hv, "192.0.2.51") == "vrrp.51"
                    and holder(lan, hv, "192.0.2.53") == "vrrp.53", 10), lan.log("hv")
    # A reload takes use_vmac from VI_3: its VMAC goes, VI_1 and VI_9 stay masters.
    mark = len(lan.log("hv"))
    config.write_text(three.replace("    use_vmac\n    virtual_ipaddress {\n        192.0.2.53",
                                    "    virtual_ipaddress {\n        192.0.2.53"))
    hivrrp.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "vrrp.53" not in links(lan, hv), 10), lan.log("hv")[mark:]
    assert wait_for(lambda: holder(lan, hv, "192.0.2.53") == "eth1", 10), lan.log("hv")[mark:]
    since = lan.log("hv")[mark:]
    assert "(VI_1)" not in since and "(VI_9)" not in since, since
    assert sysctls(lan, hv, ["ipv4/conf/eth1/arp_ignore"]) == {
        "ipv4/conf/eth1/arp_ignore": "1"}                     # VI_1's VMAC is still there
    # The last VMAC goes: the parent's own values are back.
    config.write_text(three.replace("    use_vmac\n", ""))
    mark = len(lan.log("hv"))
    hivrrp.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "vrrp.51" not in links(lan, hv), 10), lan.log("hv")[mark:]
    # (The deletion and the parent's values go in one batch: the link may be
    # gone a moment before the values are back.)
    assert wait_for(lambda: sysctls(lan, hv, ["ipv4/conf/eth1/arp_ignore",
                                              "ipv4/conf/eth1/arp_filter"]) == {
        "ipv4/conf/eth1/arp_ignore": "2", "ipv4/conf/eth1/arp_filter": "0"}, 5)
    assert "(VI_9)" not in lan.log("hv")[mark:]
    # Back on, then SIGTERM: every VMAC deleted, the parent as it was.
    config.write_text(three)
    hivrrp.send_signal(signal.SIGHUP)
    assert wait_for(lambda: holder(lan, hv, "192.0.2.51") == "vrrp.51"
                    and holder(lan, hv, "192.0.2.53") == "vrrp.53", 12), lan.log("hv")
    lan.stop(hivrrp)
    assert hivrrp.returncode == 0
    assert not [name for name in links(lan, hv) if name.startswith("vrrp")]
    assert sysctls(lan, hv, ["ipv4/conf/eth1/arp_ignore", "ipv4/conf/eth1/arp_filter"]) == {
        "ipv4/conf/eth1/arp_ignore": "2", "ipv4/conf/eth1/arp_filter": "0"}
