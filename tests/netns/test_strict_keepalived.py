"""Debian's sample configuration (vrrp_strict with auth_type PASS) on a mixed pair:
keepalived 2.2.7 on one router, hivrrp on the other, as during a migration one node at
a time.

keepalived in strict mode sends no authentication and drops adverts that carry some
("received a 1 auth, expecting 0!"). hivrrp used to ignore vrrp_strict and send PASS:
each dropped the other's adverts and both routers held the VIPs.
"""

import re
import shutil
import signal
import time

import pytest
from netns_conf import MDI_100

from helpers.strict_corpus import DEBIAN_SAMPLE

pytestmark = pytest.mark.netns

VIPS = ("192.0.2.16", "192.0.2.17", "192.0.2.18")
AUTH_DROP = "auth, expecting"      # keepalived's "received a 1 auth, expecting 0!"


def debian_vrrp_config() -> str:
    """The sample's global_defs and vrrp_instance (its virtual_servers are keepalived's
    IPVS part, which neither daemon runs here), moved to the test's addresses and veth."""
    text = DEBIAN_SAMPLE.read_text()
    text = text[:text.index("virtual_server")]
    text = text.replace("192.168.200.", "192.0.2.").replace("interface eth0", "interface eth1")
    assert "vrrp_strict" in text and "auth_type PASS" in text and "state MASTER" in text
    assert not re.search(r"\b192\.168\.", text)
    return text


@pytest.fixture
def pair(lan):
    if shutil.which("keepalived") is None:
        pytest.fail("keepalived is missing: tests/run.sh installs it")
    lan.node("ka", ipv4="192.0.2.1/24")
    lan.node("hv", ipv4="192.0.2.2/24")
    config = lan.write("keepalived.conf", debian_vrrp_config())
    return lan, config


def holder(lan) -> list[str]:
    """The routers holding the VIPs, read from the kernel; each VIP must be on the same."""
    owners = {tuple(lan.owner_of(vip)) for vip in VIPS}
    assert len(owners) == 1, owners
    return list(owners.pop())


def wait_holder(lan, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(lan.owner_of(vip) == [name] for vip in VIPS):
            return True
        time.sleep(0.05)
    return False


def held_by(lan, name: str, seconds: float) -> list[str]:
    """[name] if `name` alone holds the VIPs throughout `seconds`, else who held them
    when that stopped (both routers, when a second master appears)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        now = holder(lan)
        if now != [name]:
            return now
        time.sleep(0.1)
    return [name]


def test_debian_sample_mixed_pair_elects_one_master_and_fails_over_both_ways(pair):
    lan, config = pair
    ka = lan.keepalived("ka", config)
    assert wait_holder(lan, "ka", 8), lan.log("ka", "keepalived")
    # hivrrp joins as a backup: keepalived's adverts (no authentication) are taken.
    hv = lan.hivrrp("hv", config)
    assert held_by(lan, "ka", MDI_100 + 2) == ["ka"], (lan.log("hv"),
                                                         lan.log("ka", "keepalived"))
    assert "-> MASTER" not in lan.log("hv"), lan.log("hv")
    assert AUTH_DROP not in lan.log("ka", "keepalived")
    # hivrrp ran the file with keepalived's corrections, and said so.
    assert "(VI_1) Strict mode does not support authentication. Ignoring." in lan.log("hv")

    # keepalived stops (its priority-0 advert): hivrrp takes over.
    lan.stop_keepalived(ka)
    assert wait_holder(lan, "hv", 3), lan.log("hv")
    # keepalived starts again and stays backup: the same priority, a master already there.
    mastered = lan.log("ka", "keepalived").count("Entering MASTER STATE")
    ka = lan.keepalived("ka", config)
    assert held_by(lan, "hv", MDI_100 + 2) == ["hv"], lan.log("ka", "keepalived")
    assert lan.log("ka", "keepalived").count("Entering MASTER STATE") == mastered

    # hivrrp stops (by its PID): keepalived takes over.
    lan.kill(hv, signal.SIGTERM)
    assert hv.wait(10) == 0
    assert wait_holder(lan, "ka", 3), lan.log("ka", "keepalived")
    # hivrrp starts again and stays backup.
    hv = lan.hivrrp("hv", config)
    assert held_by(lan, "ka", MDI_100 + 2) == ["ka"], lan.log("hv")
    assert AUTH_DROP not in lan.log("ka", "keepalived")

    lan.stop_keepalived(ka)
    assert wait_holder(lan, "hv", 3), lan.log("hv")
    lan.kill(hv, signal.SIGTERM)
    assert hv.wait(10) == 0
