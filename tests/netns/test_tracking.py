"""Tracking, sync groups and the notify FIFO in the running daemon (namespaces)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from netns_conf import FAST, VIP, master_down

from helpers.netns import wait_for

pytestmark = pytest.mark.netns

VIP_B = "192.0.2.27"


def group_conf(priority: int, fifo, *, tracked: str = "uplink") -> str:
    """VI_A and VI_B in sync group G; only VI_A tracks `tracked` (unweighted)."""
    def instance(name, vrid, vip, extra=""):
        return (f"vrrp_instance {name} {{\n    interface eth1\n    virtual_router_id {vrid}\n"
                f"    priority {priority}\n    advert_int {FAST['advert']}\n"
                f"    version {FAST['version']}\n{extra}"
                f"    virtual_ipaddress {{\n        {vip}/24\n    }}\n}}\n")
    return (f"global_defs {{\n    notify_fifo {fifo}\n}}\n"
            "vrrp_sync_group G {\n    group {\n        VI_A\n        VI_B\n    }\n}\n"
            + instance("VI_A", 51, VIP, f"    track_interface {{\n        {tracked}\n    }}\n")
            + instance("VI_B", 52, VIP_B))


def add_uplink(lan, node: str) -> str:
    ns, _ = lan.nodes[node]
    lan.run(ns, "ip", "link", "add", "uplink", "type", "veth", "peer", "name", "uplinkp")
    lan.run(ns, "ip", "link", "set", "uplinkp", "up")
    lan.run(ns, "ip", "link", "set", "uplink", "up")
    return ns


class FifoReader:
    """Reads the daemon's notify FIFO without blocking it (it opens it read-write)."""

    def __init__(self, path) -> None:
        self.path, self.fd, self.buffer = path, None, b""

    def lines(self) -> list[str]:
        if self.fd is None:
            if not os.path.exists(self.path):
                return []
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        for _ in range(1000):
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buffer += chunk
        return self.buffer.decode().splitlines()

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)


def test_a_faulty_member_takes_its_sync_group_over_to_the_peer(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    ns1 = add_uplink(lan, "r1")
    add_uplink(lan, "r2")
    fifo = lan.workdir / "r1.fifo"
    reader = FifoReader(fifo)
    try:
        r1 = lan.hivrrp("r1", lan.write("r1.conf", group_conf(200, fifo)))
        assert lan.wait_running("r1"), lan.log("r1")
        lan.hivrrp("r2", lan.write("r2.conf", group_conf(100, lan.workdir / "r2.fifo")))
        assert lan.wait_owner(VIP, "r1", 8) and lan.wait_owner(VIP_B, "r1", 2), lan.log("r1")
        # Only VI_A tracks the uplink: its failure takes VI_B along (keepalived
        # puts every member in FAULT at the same moment).
        lan.run(ns1, "ip", "link", "set", "uplink", "down")
        assert lan.wait_owner(VIP, "r2", 3) and lan.wait_owner(VIP_B, "r2", 1), lan.log("r2")
        log = lan.log("r1")
        assert "(VI_A) MASTER -> FAULT (fault)" in log
        assert "(VI_B) MASTER -> FAULT (sync_group)" in log
        # r2 is a group too: its members, released, become master as one.
        assert "(VI_B) BACKUP -> MASTER (sync_group)" in lan.log("r2")
        # Back up: both come back together as BACKUP and preempt as one group.
        lan.run(ns1, "ip", "link", "set", "uplink", "up")
        assert lan.wait_owner(VIP, "r1", 8) and lan.wait_owner(VIP_B, "r1", 2), lan.log("r1")
        assert wait_for(lambda: 'GROUP "G" MASTER 0' in reader.lines()[-3:], 3), reader.lines()
        lines = reader.lines()
        # keepalived's FIFO format: INSTANCE "name" STATE priority, GROUP ... 0.
        for expected in ('INSTANCE "VI_A" FAULT 200', 'INSTANCE "VI_B" FAULT 200',
                         'GROUP "G" FAULT 0', 'GROUP "G" BACKUP 0', 'GROUP "G" MASTER 0'):
            assert expected in lines, lines
        assert [line for line in lines if line.startswith("GROUP")] == [
            f'GROUP "G" {state} 0' for state in ("BACKUP", "MASTER", "FAULT", "BACKUP", "MASTER")]
        assert r1.poll() is None
    finally:
        reader.close()


def test_a_reload_keeps_what_the_trackers_said(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    ns1 = add_uplink(lan, "r1")
    weighted = ("vrrp_instance VI_1 {\n    interface eth1\n    virtual_router_id 51\n"
                f"    priority 200\n    advert_int {FAST['advert']}\n"
                f"    version {FAST['version']}\n    track_interface {{\n"
                "        uplink weight -150\n    }\n"
                f"    virtual_ipaddress {{\n        {VIP}/24\n    }}\n}}\n")
    r1 = lan.hivrrp("r1", lan.write("r1.conf", weighted))
    assert lan.wait_running("r1"), lan.log("r1")
    peer = weighted.replace("priority 200", "priority 100").replace(
        "    track_interface {\n        uplink weight -150\n    }\n", "")
    lan.hivrrp("r2", lan.write("r2.conf", peer))
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    lan.run(ns1, "ip", "link", "set", "uplink", "down")
    # 200 - 150 = 50 < 100: r2 preempts r1's lower-priority master.
    assert lan.wait_owner(VIP, "r2", 6), (lan.log("r1"), lan.log("r2"))
    # A reload with the same file: the down uplink still counts, nobody moves.
    r1.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "reloaded:" in lan.log("r1"), 5), lan.log("r1")
    # Past r1's Master_Down_Interval at its configured 200 with a second to spare: had the
    # reload forgotten the down uplink, r1 would have preempted by then.
    time.sleep(master_down(200, FAST["advert"]) + 1)
    assert lan.owner_of(VIP) == ["r2"], (lan.log("r1"), lan.log("r2"))
    assert lan.log("r2").count("-> MASTER") == 1
    # And when it comes back up, r1 takes over again.
    lan.run(ns1, "ip", "link", "set", "uplink", "up")
    assert lan.wait_owner(VIP, "r1", 6), lan.log("r1")
