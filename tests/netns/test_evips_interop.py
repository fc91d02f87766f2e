"""More VIPs than fit in an advert, with the real keepalived as the peer.

keepalived 2.2.7 advertises the first N VIPs (255, or fewer by the MTU: 89
IPv6 addresses at 1500) and checks a received advert against those N. hivrrp
must list the same N or each side drops the other's adverts as an address
list error and both become master.
"""

from __future__ import annotations

import shutil
import signal
import time

import pytest

from helpers.netns import wait_for
from hivrrp.ops.control import request

pytestmark = pytest.mark.netns

ADVERT_INT = 0.5
MDI = 3 * ADVERT_INT + ADVERT_INT * 156 / 256     # Master_Down_Interval at priority 100
WATCH = 2 * MDI                                     # long enough to notice a takeover


def vips(family: int) -> list[str]:
    if family == 4:
        return [f"10.{1 + k // 250}.0.{k % 250 + 1}/32" for k in range(300)]
    return [f"fd00::1:{k + 1:x}/64" for k in range(120)]


# keepalived sends every VIP's gratuitous ARP from its one thread: 300 VIPs x
# its default 5 repeats, again 5 s later and at each lower-priority advert,
# were ~1,000 a second here, and its adverts starved behind them (hivrrp then
# rightly took over). One of each keeps the test on what it is about.
GARPS = ("global_defs {\n    vrrp_garp_master_repeat 1\n    vrrp_garp_master_delay 0\n"
         "    vrrp_garp_lower_prio_repeat 1\n}\n")


def conf(priority: int, family: int) -> str:
    lines = "".join(f"        {v}\n" for v in vips(family))
    return (GARPS + f"vrrp_instance VI_1 {{\n    interface eth1\n    virtual_router_id 51\n"
            f"    priority {priority}\n    advert_int {ADVERT_INT}\n    version 3\n"
            f"    virtual_ipaddress {{\n{lines}    }}\n}}\n")


def held(lan, name: str, family: int) -> int:
    """How many of the VIPs `name` has on its interface."""
    present = set(lan.addresses(name).split())
    return sum(v in present for v in vips(family))


def hivrrp_instance(lan) -> dict:
    reply = request(str(lan.workdir / "hv.sock"), {"command": "dump"}, timeout=5)
    return reply["result"]["instances"][0]


@pytest.mark.parametrize("family, advertised", [(4, 255), (6, 89)])
def test_keepalived_and_hivrrp_accept_each_other_s_evip_adverts(lan, family, advertised):
    if shutil.which("keepalived") is None:
        pytest.fail("keepalived is missing: tests/run.sh installs it")
    total = len(vips(family))
    lan.node("ka", ipv4="192.0.2.1/24")
    lan.node("hv", ipv4="192.0.2.2/24")
    ka = lan.keepalived("ka", lan.write("ka.conf", conf(200, family)))
    assert wait_for(lambda: held(lan, "ka", family) == total, 15), lan.log("ka", "keepalived")
    assert (f"(VI_1) Number of VIPs ({total}) exceeds maximum/space available in packet "
            f"(max {advertised} addresses) - excess moved to eVIPs") in lan.log("ka", "keepalived")

    # hivrrp as the backup: it accepts keepalived's adverts, or it would take over.
    hv = lan.hivrrp("hv", lan.write("hv.conf", conf(100, family)))
    assert wait_for(lambda: "running 1 instance" in lan.log("hv"), 15), lan.log("hv")
    assert (f"(VI_1) Number of VIPs ({total}) exceeds maximum/space available in packet "
            f"(max {advertised} addresses) - excess moved to eVIPs") in lan.log("hv")
    time.sleep(WATCH)
    counters = hivrrp_instance(lan)["counters"]
    assert "MASTER" not in lan.log("hv") and held(lan, "hv", family) == 0, lan.log("hv")
    assert counters["adverts_received"] >= 2, counters
    assert counters["address_list_errors"] == 0, counters

    # keepalived leaves (priority 0): hivrrp takes every VIP, eVIPs included.
    lan.stop_keepalived(ka)
    assert wait_for(lambda: held(lan, "hv", family) == total, MDI + 5), lan.log("hv")

    # keepalived as the backup: it accepts hivrrp's adverts, or it would take over.
    before = lan.log("ka", "keepalived")
    lan.keepalived("ka", lan.write("ka.conf", conf(100, family)))
    time.sleep(WATCH + 1)
    since = lan.log("ka", "keepalived")[len(before):]
    assert "Entering BACKUP STATE" in since, since
    assert "Entering MASTER STATE" not in since, since
    assert "ip number count" not in since and "not present in MASTER advert" not in since, since
    assert held(lan, "hv", family) == total and hv.poll() is None
    lan.kill(hv, signal.SIGTERM)
    assert hv.wait(10) == 0
