"""hivrrp and the real keepalived (Debian package) in one VRRP group."""

import shutil
import time

import pytest
from netns_conf import FAST, VIP, conf, master_down

from helpers.netns import wait_for

pytestmark = pytest.mark.netns


@pytest.fixture(autouse=True)
def nodes(lan):
    """keepalived's box (192.0.2.1) and hivrrp's (192.0.2.2) on the LAN."""
    if shutil.which("keepalived") is None:
        pytest.fail("keepalived is missing: tests/run.sh installs it")
    lan.node("ka", ipv4="192.0.2.1/24")
    lan.node("hv", ipv4="192.0.2.2/24")


# VRRPv2 at its 1 s; VRRPv3 at netns_conf.FAST's 0.25 s (centiseconds on the wire, as
# keepalived reads them), under the same ids as before.
TIMERS = pytest.mark.parametrize("timers", [{"version": 2, "advert": 1}, FAST], ids=["2", "3"])


@TIMERS
def test_keepalived_master_hivrrp_backup(lan, timers):
    mdi = master_down(100, timers["advert"])
    ka = lan.keepalived("ka", lan.write("ka.conf", conf(200, **timers)))
    # hivrrp once keepalived's instance runs: at 0.25 s adverts the two Master_Down_Intervals
    # differ by 0.1 s, and keepalived's start-up could take longer than that.
    assert wait_for(lambda: "Entering BACKUP STATE" in lan.log("ka", "keepalived"), 10), \
        lan.log("ka", "keepalived")
    hv = lan.hivrrp("hv", lan.write("hv.conf", conf(100, **timers)))
    assert lan.wait_owner(VIP, "ka", 8), lan.log("ka", "keepalived")
    time.sleep(2)
    assert "MASTER" not in lan.log("hv"), lan.log("hv")  # hivrrp accepts keepalived's adverts
    killed = lan.kill(ka)
    assert lan.wait_has(VIP, "hv", mdi + 2), lan.log("hv")
    assert time.monotonic() - killed <= mdi + 0.5
    assert hv.poll() is None


@TIMERS
def test_hivrrp_master_keepalived_backup(lan, timers):
    mdi = master_down(100, timers["advert"])
    hv = lan.hivrrp("hv", lan.write("hv.conf", conf(200, **timers)))
    # keepalived starts once hivrrp is master: started together, keepalived's
    # Master_Down_Interval (3.61 s) could run out before hivrrp's first advert
    # (3.22 s plus the Python start-up it needs first), a race and not a bug.
    assert lan.wait_owner(VIP, "hv", 8), lan.log("hv")
    ka = lan.keepalived("ka", lan.write("ka.conf", conf(100, **timers)))
    time.sleep(mdi + 1)
    assert lan.owner_of(VIP) == ["hv"]
    assert "Entering MASTER STATE" not in lan.log("ka", "keepalived")
    killed = lan.kill(hv)
    assert lan.wait_has(VIP, "ka", mdi + 2), lan.log("ka", "keepalived")
    assert time.monotonic() - killed <= mdi + 0.5
    lan.stop_keepalived(ka)


def test_hivrrp_preempts_keepalived_and_releases_to_it(lan):
    ka = lan.keepalived("ka", lan.write("ka.conf", conf(100)))
    assert lan.wait_owner(VIP, "ka", 8)
    hv = lan.hivrrp("hv", lan.write("hv.conf", conf(200)))
    assert lan.wait_owner(VIP, "hv", 6), lan.log("hv")
    assert "(VI_1) BACKUP -> MASTER (preempt)" in lan.log("hv")
    lan.kill(hv, 15)
    assert hv.wait(3) == 0
    # keepalived takes over after its Skew_Time thanks to our priority 0.
    assert lan.wait_owner(VIP, "ka", 2), lan.log("ka", "keepalived")
    lan.stop_keepalived(ka)


def test_priority_tie_goes_to_the_higher_address(lan):
    # A backup accepts an equal-priority master (RFC), so the tie-break only
    # happens between two masters: partition them, let both take over, heal.
    lan.isolate("ka", True)
    lan.isolate("hv", True)
    ka = lan.keepalived("ka", lan.write("ka.conf", conf(100)))
    hv = lan.hivrrp("hv", lan.write("hv.conf", conf(100)))
    assert lan.wait_has(VIP, "ka", 8) and lan.wait_has(VIP, "hv", 8)
    lan.isolate("ka", False)
    lan.isolate("hv", False)
    # 192.0.2.2 (hivrrp) is above 192.0.2.1 (keepalived): keepalived steps down.
    assert lan.wait_owner(VIP, "hv", 5), (lan.log("hv"), lan.log("ka", "keepalived"))
    time.sleep(2)
    assert lan.owner_of(VIP) == ["hv"]
    assert "MASTER -> BACKUP" not in lan.log("hv")
    lan.stop_keepalived(ka)
    assert hv.poll() is None


def test_priority_tie_keepalived_wins_with_the_higher_address(lan):
    lan.node("ka2", ipv4="192.0.2.3/24")
    lan.isolate("ka2", True)
    lan.isolate("hv", True)
    ka = lan.keepalived("ka2", lan.write("ka2.conf", conf(100)))
    lan.hivrrp("hv", lan.write("hv.conf", conf(100)))
    assert lan.wait_has(VIP, "ka2", 8) and lan.wait_has(VIP, "hv", 8)
    lan.isolate("ka2", False)
    lan.isolate("hv", False)
    assert lan.wait_owner(VIP, "ka2", 5), lan.log("hv")
    assert "(VI_1) MASTER -> BACKUP (higher_priority)" in lan.log("hv")
    lan.stop_keepalived(ka)
