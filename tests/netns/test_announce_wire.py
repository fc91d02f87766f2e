"""Gratuitous ARPs and unsolicited NAs from the announcer's real sockets (frames
on the packet socket, NAs on the raw ICMPv6 socket, both by sendmmsg from C),
captured on the peer's end of a veth: byte for byte what scapy builds, the NA
with the checksum the kernel filled in and hop limit 255, every address's
first frame before any second, nothing lost."""

from __future__ import annotations

import ipaddress
import json
import shutil
import signal
import subprocess
import sys

import pytest
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap

from helpers.netns import Lab, wait_for

pytestmark = pytest.mark.netns

MAC = "02:00:00:00:92:01"
V4 = [f"10.92.{k // 250}.{k % 250 + 1}" for k in range(600)]
V6 = [f"fd00:92::{k + 1:x}" for k in range(60)]

# Inside the sender's namespace: one master instance in a real engine, its
# addresses (V4 and V6, as many as asked) announced twice each through the
# daemon's Announcer.
SENDER = r"""
import asyncio, json, socket, sys, types
from hivrrp._engine import Engine
from hivrrp.kernel.announce import Announcer

ifname, mac = sys.argv[1], bytes.fromhex(sys.argv[2])
v4 = [f"10.92.{k // 250}.{k % 250 + 1}" for k in range(int(sys.argv[3]))]
v6 = [f"fd00:92::{k + 1:x}" for k in range(int(sys.argv[4]))]
ifindex = socket.if_nametoindex(ifname)
engine = Engine(1, now=0)
engine.add_instance(vrid=1, ifindex=ifindex, family=4, version=3, src="10.92.255.1",
                    priority=255, interval_cs=100, preempt=True, preempt_delay=0,
                    group="224.0.0.18", peers=[], addresses=["10.92.255.2"], auth_type=0,
                    auth_data=b"", down_timer_adverts=3, lower_prio_no_advert=False,
                    higher_prio_send_advert=False, pseudo_header=True, track_link=True,
                    owner_ignore_adverts=False)
engine.start_all(0)
plan = types.SimpleNamespace(engine=engine, names=["A"], index={"A": 0})
addresses = ([(4, socket.inet_pton(socket.AF_INET, a)) for a in v4]
             + [(6, socket.inet_pton(socket.AF_INET6, a)) for a in v6])

async def main():
    announcer = Announcer(lambda: plan)
    announcer.announce(asyncio.get_running_loop(), "A", ifindex, mac, addresses, repeat=2)
    for _ in range(500):
        if not len(announcer.queue):
            break
        await asyncio.sleep(0.01)
    print(json.dumps({"state": engine.state(0), "sent": announcer.sent,
                      "errors": announcer.errors, "queued": len(announcer.queue)}))
    announcer.close()

asyncio.run(main())
"""


@pytest.fixture(scope="module")
def captured(tmp_path_factory, namespaces_allowed):
    if shutil.which("tcpdump") is None:
        pytest.fail("tcpdump is missing: tests/run.sh installs it")
    tmp = tmp_path_factory.mktemp("announce")
    pcap, dump_log = tmp / "garp.pcap", tmp / "tcpdump.log"
    with Lab() as lab:
        r1, r2 = lab.netns("r1"), lab.netns("r2")
        if1, if2 = lab.veth(r1, r2)
        lab.run(r1, "ip", "link", "set", "dev", if1, "address", MAC)
        lab.run(r1, "ip", "addr", "add", "10.92.255.1/16", "dev", if1)
        link_local = lab.run(r1, "ip", "-6", "-j", "addr", "show", "dev", if1).stdout
        with open(dump_log, "w") as err:
            # Room in the capture ring for the whole burst (it comes faster than
            # tcpdump reads): small slots (-s), a large ring (-B, KiB).
            dump = lab.popen(r2, "tcpdump", "-i", if2, "-s", "128", "-B", "16384", "-U",
                             "--immediate-mode", "-n", "-w", str(pcap), "arp or icmp6",
                             stdout=subprocess.DEVNULL, stderr=err)
        assert wait_for(lambda: "listening on" in dump_log.read_text(), 10), \
            dump_log.read_text()
        sender = lab.run(r1, sys.executable, "-c", SENDER, if1, MAC.replace(":", ""),
                         str(len(V4)), str(len(V6)), check=False)
        assert sender.returncode == 0, sender.stderr[-3000:]
        wait_for(lambda: len(rdpcap(str(pcap))) >= 2 * (len(V4) + len(V6)), 5)
        lab.stop(dump, signal.SIGINT)
        assert "0 packets dropped by kernel" in dump_log.read_text(), dump_log.read_text()
    local = [a["local"] for entry in json.loads(link_local) for a in entry["addr_info"]
             if a["local"].startswith("fe80")]
    return json.loads(sender.stdout), [Ether(bytes(p)) for p in rdpcap(str(pcap))], local


def test_every_frame_went_out_once_per_round(captured):
    report, frames, _local = captured
    assert report == {"state": "MASTER", "sent": 2 * (len(V4) + len(V6)), "errors": 0,
                      "queued": 0}
    arps = [f[ARP].psrc for f in frames if ARP in f]
    nas = [f[ICMPv6ND_NA].tgt for f in frames if ICMPv6ND_NA in f]
    # Every address's first frame before any address's second, in the order given.
    assert arps == V4 + V4
    assert [ipaddress.ip_address(a) for a in nas] == [ipaddress.ip_address(a) for a in V6] * 2


def test_gratuitous_arps_are_scapys_byte_for_byte(captured):
    _report, frames, _local = captured
    for f in (f for f in frames if ARP in f):
        address = f[ARP].psrc
        assert bytes(f) == bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=MAC, type=0x0806) / ARP(
            op=1, hwsrc=MAC, psrc=address, hwdst="ff:ff:ff:ff:ff:ff", pdst=address))


def test_neighbour_adverts_carry_the_kernels_checksum_and_hop_limit_255(captured):
    _report, frames, local = captured
    nas = [f for f in frames if ICMPv6ND_NA in f]
    assert nas and local
    for f in nas:
        na = f[ICMPv6ND_NA]
        assert (f.dst, f[IPv6].dst, f[IPv6].src, f[IPv6].hlim) == (
            "33:33:00:00:00:01", "ff02::1", local[0], 255)
        assert (na.R, na.S, na.O, f[ICMPv6NDOptDstLLAddr].lladdr) == (1, 0, 1, MAC)
        again = f.copy()
        del again[ICMPv6ND_NA].cksum           # scapy computes it over the pseudo-header
        assert Ether(bytes(again))[ICMPv6ND_NA].cksum == na.cksum
