"""Follower instances between two hivrrp routers on a real (namespaced) LAN:
2 leaders with 200 followers each. Election, SIGKILL failover, the master's
return, and reloads adding and removing followers without a flap. One
daemon pair for the whole story (starting 402 instances twice over would
double the time; about 12 s here)."""

import re
import signal
import time

import pytest

from helpers.netns import wait_for

pytestmark = pytest.mark.netns

FOLLOWERS = 200
GROUPS = (("L0", "224.0.0.18"), ("L1", "224.0.0.19"))   # one VRID space each on eth1
MDI = 3 * 0.1 + (256 - 100) / 256 * 0.1                  # the backup's leaders, v3 0.1 s


def vip(group: int, n: int) -> str:
    """The n-th VIP of a group (0: its leader's)."""
    return f"10.{group + 1}.{n // 250}.{n % 250 + 1}"


def config(priority: int, followers=range(FOLLOWERS), more=()) -> str:
    """Both groups; `followers`: which of the 200 each group has, `more`: extra ones of L0."""
    out = []
    for g, (leader, group) in enumerate(GROUPS):
        common = f"    interface eth1\n    version 3\n    mcast_dst_ip {group}\n"
        out.append(f"vrrp_instance {leader} {{\n{common}    virtual_router_id 1\n"
                   f"    priority {priority}\n    advert_int 0.1\n"
                   f"    virtual_ipaddress {{\n        {vip(g, 0)}/16\n    }}\n}}\n")
        for n in [*followers, *(more if g == 0 else ())]:
            out.append(f"vrrp_instance {leader}F{n} {{\n{common}    virtual_router_id {n + 2}\n"
                       f"    priority {priority}\n    follow {leader}\n"
                       f"    virtual_ipaddress {{\n        {vip(g, n + 1)}/16\n    }}\n}}\n")
    return "".join(out)


def vips(lan, name: str) -> set[str]:
    return set(re.findall(r"\b(10\.[12]\.\d+\.\d+)/16", lan.addresses(name)))


def all_vips(followers=range(FOLLOWERS), more=()) -> set[str]:
    return {vip(g, 0) for g in range(2)} | {vip(g, n + 1) for g in range(2) for n in followers} \
        | {vip(0, n + 1) for n in more}


def test_two_routers_move_two_leaders_and_their_400_followers_together(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    every = all_vips()
    r1 = lan.hivrrp("r1", lan.write("r1.conf", config(200)))
    # r2 once r1's instances run: at 0.1 s adverts the two Master_Down_Intervals differ by
    # 0.04 s, less than two Python start-ups at once may differ (r2 master first).
    assert lan.wait_running("r1"), lan.log("r1")
    r2 = lan.hivrrp("r2", lan.write("r2.conf", config(100)))

    # Election: r1's leaders win, all 400 followers with them; r2 moves nothing.
    assert wait_for(lambda: vips(lan, "r1") == every, 15), (lan.log("r1")[-3000:],
                                                           lan.log("r2")[-3000:])
    assert vips(lan, "r2") == set()
    log1 = lan.log("r1")
    for leader, _ in GROUPS:
        assert re.search(rf"\({leader}\) BACKUP -> MASTER \(master_down\).*, "
                         rf"{FOLLOWERS} followers with it", log1), log1[-3000:]
    assert "-> MASTER" not in lan.log("r2")

    # SIGKILL of the master (its switch port down: a power cut): r2 takes every VIP.
    killed = lan.kill(r1)
    lan.run(lan.switch, "ip", "link", "set", lan.port_of["r1"], "down")
    assert wait_for(lambda: vips(lan, "r2") == every, MDI + 3), lan.log("r2")[-3000:]
    took = time.monotonic() - killed
    assert took <= MDI + 1.0, took
    log2 = lan.log("r2")
    for leader, _ in GROUPS:
        assert re.search(rf"\({leader}\) BACKUP -> MASTER \(master_down\).*went silent.*, "
                         rf"{FOLLOWERS} followers with it", log2), log2[-3000:]
    r1.wait(5)

    # The master comes back (its leftovers removed at start) and preempts: all of it
    # moves back, and r2's leaders take their followers down with them.
    lan.run(lan.switch, "ip", "link", "set", lan.port_of["r1"], "up")
    r1 = lan.hivrrp("r1", lan.workdir / "r1.conf")
    assert wait_for(lambda: vips(lan, "r1") == every and vips(lan, "r2") == set(), 15), (
        lan.log("r2")[-3000:])
    log2 = lan.log("r2")
    for leader, _ in GROUPS:
        assert re.search(rf"\({leader}\) MASTER -> BACKUP \(higher_priority\).*, "
                         rf"{FOLLOWERS} followers with it", log2), log2[-3000:]

    # Reloads on both routers: L0 gains followers 200..219, both groups lose 0..19.
    kept = range(20, FOLLOWERS)
    added = range(FOLLOWERS, FOLLOWERS + 20)
    wanted = all_vips(kept, added)
    held_before = vips(lan, "r1")
    lan.write("r1.conf", config(200, kept, added))
    lan.write("r2.conf", config(100, kept, added))
    r2.send_signal(signal.SIGHUP)
    r1.send_signal(signal.SIGHUP)
    stayed = every & wanted
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and vips(lan, "r1") != wanted:
        # No flap: every VIP that stays is held by r1 the whole time, never by r2.
        held = vips(lan, "r1")
        assert stayed <= held, sorted(stayed - held)[:5]
        assert not vips(lan, "r2") & stayed
        time.sleep(0.05)
    assert vips(lan, "r1") == wanted and vips(lan, "r2") == set()
    assert held_before - wanted == {vip(g, n + 1) for g in range(2) for n in range(20)}
    for name in ("r1", "r2"):
        log = lan.log(name)
        assert wait_for(lambda: "reloaded: 362 instances kept, 20 started, 40 removed"
                        in lan.log(name), 5), log[-3000:]
    # After the reload r1 moved only what was added or removed; r2 nothing.
    after = lan.log("r1").split("reloaded:")[-1]
    assert "MASTER -> BACKUP" not in after and "-> FAULT" not in after
    assert "-> MASTER" not in lan.log("r2").split("reloaded:")[-1]
    assert r1.poll() is None and r2.poll() is None
