"""The packet send path without sending: _io.FramePath's frames read by scapy
(an independent decoder, not our codec), its fallbacks, the links the daemon
tells it, and the pure policy of kernel/sendpath.py."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest
from hivrrp._engine import Engine
from hivrrp._io import FramePath
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.layers.vrrp import VRRP, VRRPv3

from helpers.fakedaemon import reload, started
from helpers.plans import ADDRESSES, LINKS, instance_text, plan_of
from hivrrp.daemon.driver import Driver
from hivrrp.kernel import sendpath
from hivrrp.kernel.netlink import Link

MAC = bytes.fromhex("020000000001")
ARPHRD_TUNNEL = 768


def masters(*specs: dict) -> Engine:
    """An engine whose instances (add_instance keywords) are all MASTER with an
    advert queued: priority 255 owners start as masters at once."""
    engine = Engine(len(specs))
    for spec in specs:
        engine.start(engine.add_instance(**{"priority": 255, "family": 4, "version": 3,
                                           "interval_cs": 100, **spec}), 0)
    return engine


def frame_path(**links: tuple) -> FramePath:
    frames = FramePath(-1)
    for ifindex, (mac, mtu) in links.items():
        frames.set_link(int(ifindex.removeprefix("if")), mac, mtu, ip_id=100)
    return frames


def multicast_mac(group: str) -> str:
    """RFC 1112 6.4, computed here without the code under test."""
    octets = [int(x) for x in group.split(".")]
    return "01:00:5e:%02x:%02x:%02x" % (octets[1] & 0x7F, octets[2], octets[3])


def scapy_frame(frame: bytes):
    ether = Ether(frame)
    ip = ether[IP]
    return ether, ip, ip.getlayer(VRRPv3) or ip.getlayer(VRRP)


def recomputed_ip_checksum(ip) -> int:
    clone = ip.copy()
    del clone.chksum
    return IP(bytes(clone)).chksum


def recomputed_vrrp_checksum(ip) -> int:
    clone = IP(bytes(ip))
    layer = clone.getlayer(VRRPv3) or clone.getlayer(VRRP)
    layer.chksum = None
    rebuilt = IP(bytes(clone))
    return (rebuilt.getlayer(VRRPv3) or rebuilt.getlayer(VRRP)).chksum


# ------------------------------------------------------------------ frames, read by scapy

@settings(max_examples=60, deadline=None)
@given(vrid=st.integers(1, 255), vips=st.lists(st.ip_addresses(v=4).map(str), min_size=1,
                                               max_size=20),
       group=st.sampled_from(["224.0.0.18", "239.255.1.2", "224.128.200.7"]),
       version=st.sampled_from([2, 3]), src=st.ip_addresses(v=4).map(str))
def test_a_frame_is_what_the_kernel_would_put_on_the_wire(vrid, vips, group, version, src):
    spec = {"vrid": vrid, "ifindex": 7, "src": src, "group": group, "version": version,
            "addresses": vips}
    if version == 2:
        spec.update(auth_type=1, auth_data=b"secret", interval_cs=100)
    engine = masters(spec)
    [(ifindex, frame)] = frame_path(if7=(MAC, 1500)).frames(engine)
    [(_, _, family, _, dst, message)] = engine.tx_packets()
    assert ifindex == 7 and family == 4
    ether, ip, vrrp = scapy_frame(frame)
    assert (ether.dst, ether.src, ether.type) == (multicast_mac(group), "02:00:00:00:00:01",
                                                 0x0800)
    assert (ip.version, ip.ihl, ip.tos, ip.ttl, ip.proto) == (4, 5, 0xC0, 255, 112)
    assert (str(ip.flags), ip.frag, ip.id) == ("DF", 0, 100)
    assert (ip.src, ip.dst, ip.len) == (src, group, 20 + len(message))
    assert ip.chksum == recomputed_ip_checksum(ip)
    assert bytes(ip.payload) == message                  # the engine's message, untouched
    assert (vrrp.version, vrrp.vrid, vrrp.priority, vrrp.addrlist) == (version, vrid, 255, vips)
    assert vrrp.chksum == recomputed_vrrp_checksum(ip)   # over the IP addresses written
    assert len(frame) == 14 + 20 + len(message)


def test_the_identification_counts_per_link_and_survives_a_mac_change():
    engine = masters({"vrid": 1, "ifindex": 3, "src": "192.0.2.1"},
                     {"vrid": 2, "ifindex": 3, "src": "192.0.2.1"},
                     {"vrid": 3, "ifindex": 4, "src": "198.51.100.1"})
    frames = FramePath(-1)
    frames.set_link(3, MAC, 1500, ip_id=0xFFFF)
    frames.set_link(4, MAC, 1500, ip_id=7)
    ids = [Ether(f)[IP].id for _, f in frames.frames(engine)]
    assert ids == [0xFFFF, 0, 7]                   # 16 bits, wrapping, one counter per link
    frames.set_link(3, bytes.fromhex("020000000099"), 1500)
    first = frames.frames(engine)[0][1]
    assert Ether(first).src == "02:00:00:00:00:99" and Ether(first)[IP].id == 1
    assert frames.link(3) == (bytes.fromhex("020000000099"), 1500, True, 3)


def test_df_is_written_as_the_raw_socket_s_pmtudisc_says():
    # IP_MTU_DISCOVER values (linux/in.h): DONT, WANT, DO, PROBE, INTERFACE, OMIT.
    engine = masters({"vrid": 1, "ifindex": 3, "src": "192.0.2.1"})
    flags = []
    for pmtudisc in range(6):
        frames = FramePath(-1, pmtudisc=pmtudisc)
        frames.set_link(3, MAC, 1500)
        [(_, frame)] = frames.frames(engine)
        ip = Ether(frame)[IP]
        assert ip.chksum == recomputed_ip_checksum(ip)
        flags.append(str(ip.flags))
    assert flags == ["", "DF", "DF", "DF", "", ""]


def test_the_driver_s_frames_take_df_from_the_raw_ipv4_socket(monkeypatch):
    # A UDP socket stands for the raw one (no root): its IP_MTU_DISCOVER set
    # to DONT as net.ipv4.ip_no_pmtu_disc would have made it.
    from hivrrp.daemon import driver as driver_module
    from hivrrp.kernel.sockets import IP_MTU_DISCOVER, SOL_IP

    made = []

    def pool(family, buffer_bytes):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setsockopt(SOL_IP, IP_MTU_DISCOVER, 0)
        made.append(sock)
        return SimpleNamespace(primary=sock, close=sock.close)

    def packet(buffer_bytes):
        made.append(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
        return made[-1]

    monkeypatch.setattr(driver_module.SocketPool, "create", staticmethod(pool))
    monkeypatch.setattr(driver_module, "open_packet", packet)
    driver = Driver(None, lambda events: None)
    try:
        driver.open_sockets({4}, 1)
        assert (driver.frames.pmtudisc, driver.frames.df) == (0, False)
    finally:
        for sock in made:
            sock.close()


def test_a_reload_that_adds_instances_grows_the_sockets_buffers(tmp_path, monkeypatch):
    # The buffers were sized for the start's instances only: a reload from 1
    # to 3 (at 1 MiB each here) left them at 1 MiB. UDP sockets stand for the
    # raw and packet ones (no root; capped at wmem_max/rmem_max without it,
    # which still grows them from the default).
    from hivrrp.daemon import driver as driver_module
    from hivrrp.kernel.sockets import SocketPool

    monkeypatch.setattr(driver_module, "SOCKET_BUFFER_PER_INSTANCE", 1 << 20)
    raw, packet = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))

    def sizes():
        return (raw.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF),
                raw.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                packet.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))

    async def scenario():
        d = await started(tmp_path, instance_text("VI_1", 1, ["192.0.2.10/24"]), LINKS,
                          ADDRESSES, monkeypatch)
        d.driver.pools = {4: SocketPool(4, 1 << 20, 20, [raw], counts=[0])}
        d.driver.packet_socket, d.driver.buffer_bytes = packet, 1 << 20
        before = sizes()
        await reload(d, "".join(instance_text(f"VI_{k}", k, [f"192.0.2.{10 + k}/24"])
                                for k in (1, 2, 3)))
        assert d.plan.names == ["VI_1", "VI_2", "VI_3"]
        grown = sizes()
        await reload(d, instance_text("VI_1", 1, ["192.0.2.10/24"]))
        d.driver.pools = {}             # not closed by the daemon: the test's sockets
        return before, grown, sizes(), d.driver.buffer_bytes

    try:
        before, grown, after, buffer_bytes = asyncio.run(asyncio.wait_for(scenario(), 10))
    finally:
        raw.close()
        packet.close()
    assert all(g > b for g, b in zip(grown, before)), (before, grown)
    assert after == grown and buffer_bytes == 3 << 20      # never shrunk


def test_what_the_packet_path_leaves_to_the_raw_socket_is_counted_by_reason():
    engine = masters({"vrid": 1, "ifindex": 3, "src": "192.0.2.1", "peers": ["192.0.2.9"]},
                     {"vrid": 2, "ifindex": 3, "src": "fe80::1", "family": 6},
                     {"vrid": 3, "ifindex": 5, "src": "192.0.2.1"},          # unknown link
                     {"vrid": 4, "ifindex": 6, "src": "192.0.2.1"},          # not Ethernet
                     {"vrid": 5, "ifindex": 8, "src": "192.0.2.1",           # over the MTU
                      "addresses": [f"192.0.2.{k}" for k in range(1, 11)]},
                     {"vrid": 6, "ifindex": 3, "src": "192.0.2.1"})
    frames = FramePath(-1)
    frames.set_link(3, MAC, 1500)
    frames.set_link(6, b"", 1500, usable=False)
    frames.set_link(8, MAC, 20 + 8 + 10 * 4 - 1)
    built = frames.frames(engine)
    assert [frame is not None for _, frame in built] == [False, False, False, False, False, True]
    assert frames.counters() == {"sent": 0, "send_errors": 0, "raw_unicast": 1, "raw_link": 2,
                                 "raw_oversize": 1}
    frames.forget_link(3)
    assert frames.frames(engine)[5][1] is None


def test_many_links_grow_the_table():
    frames = FramePath(-1)
    for ifindex in range(1, 200):
        frames.set_link(ifindex * 977, MAC[:5] + bytes([ifindex]), 1500 + ifindex, ip_id=0)
    for ifindex in range(1, 200):
        assert frames.link(ifindex * 977) == (MAC[:5] + bytes([ifindex]), 1500 + ifindex, True, 0)
    assert frames.link(5) is None


def test_bad_links_are_refused():
    frames = FramePath(-1)
    with pytest.raises(ValueError):
        frames.set_link(0, MAC, 1500)
    with pytest.raises(ValueError):
        frames.set_link(3, MAC[:4], 1500)


def test_the_per_packet_functions_are_nogil():
    # As test_engine.py's test_hot_path_is_nogil: Cython refuses a Python
    # object in a nogil function, so per-advert work cannot grow one.
    text = (Path(__file__).resolve().parents[2] / "ext" / "hivrrp" / "_io.pyx").read_text()
    for name in ("find", "usable_link", "write_headers", "take", "flush_c"):
        [line] = re.findall(rf"^\s*cdef [^#\n=]*\b{name}\(self.*$", text, re.MULTILINE)
        assert re.search(r"\)( noexcept)? nogil:$", line.strip()), line


# ------------------------------------------------------------------ the driver's links

def driver_with_frames() -> Driver:
    driver = Driver(None, lambda events: None)
    driver.frames = FramePath(-1)
    return driver


def test_the_driver_tells_the_frames_each_link_and_each_change(caplog):
    driver = driver_with_frames()
    links = {2: Link(2, "eth0", MAC, True), 9: Link(9, "gre1", bytes(4), True, 1476, ARPHRD_TUNNEL)}
    driver.sync_links(links)
    assert driver.frames.link(2)[:3] == (MAC, 1500, True)
    assert driver.frames.link(9)[2] is False
    new_mac = bytes.fromhex("020000000042")
    with caplog.at_level(logging.INFO, logger="hivrrp"):
        driver.sync_links({**links, 2: Link(2, "eth0", new_mac, True, 9000)})
    assert driver.frames.link(2)[:3] == (new_mac, 9000, True)
    assert "interface eth0: MAC 02:00:00:00:00:01 -> 02:00:00:00:00:42" in caplog.text
    driver.sync_links({2: Link(2, "eth0", new_mac, True, 9000)})
    assert driver.frames.link(9)[2] is False


def test_the_raw_driver_has_no_frames():
    driver = Driver(None, lambda events: None, "raw")
    driver.sync_links({link.index: link for link in LINKS.values()})   # nothing to tell
    assert driver.frames is None and driver.path_status()["mode"] == "raw"
    with pytest.raises(ValueError):
        Driver(None, lambda events: None, "fast")


def test_a_link_event_reaches_the_frames_before_what_it_decides_is_done(tmp_path):
    from hivrrp.daemon.lifecycle import Lifecycle
    from hivrrp.kernel.linkwatch import LinkWatch

    plan = plan_of(tmp_path, instance_text("VI_1", 1, ["192.0.2.10/24"]))
    order = []

    async def scenario():
        loop = asyncio.get_running_loop()
        lifecycle = Lifecycle(None, None, lambda: plan.config)
        watch = LinkWatch(loop, object(), lifecycle, lambda: plan, lambda actions: None,
                          lambda: order.append("engine work"), monitor=object())
        watch.on_link_table = lambda links, changed: order.append(("links", links[2].mac))
        watch.table.links = dict(LINKS)
        new_mac = bytes.fromhex("020000000077")
        watch.on_netlink([("link", 2, "eth0", new_mac, False, 1500, 1)])   # and down
        return new_mac

    new_mac = asyncio.run(scenario())
    assert order == [("links", new_mac), "engine work"]


# ------------------------------------------------------------------ the policy

def test_each_fallback_reason_is_said_once(tmp_path, caplog):
    text = (instance_text("MCAST", 1, ["192.0.2.10/24"])
            + instance_text("PEERS", 2, ["192.0.2.11/24"],
                            extra="    unicast_peer {\n        192.0.2.9\n    }")
            + instance_text("SIX", 3, ["fd00::3/64"], extra="    version 3")
            + instance_text("TUNNEL", 4, ["198.51.100.12/24"], interface="eth1"))
    links = {**LINKS, "eth1": Link(3, "eth1", bytes(4), True, 1476, ARPHRD_TUNNEL)}
    plan = plan_of(tmp_path, text, links=links)
    by_index = {link.index: link for link in links.values()}
    reasons = sendpath.raw_reasons(plan.instances.values(), by_index)
    assert reasons == {sendpath.UNICAST: ["PEERS"], sendpath.IPV6: ["SIX"],
                       "interface eth1 is not Ethernet (link type 768)": ["TUNNEL"]}
    driver = driver_with_frames()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hivrrp"):
        driver.explain_paths(plan, by_index)
        driver.explain_paths(plan, by_index)        # a reload: nothing new to say
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"(PEERS) adverts go through the raw IP socket: {sendpath.UNICAST}",
                     f"(SIX) adverts go through the raw IP socket: {sendpath.IPV6}",
                     "(TUNNEL) adverts go through the raw IP socket: interface eth1 is not "
                     "Ethernet (link type 768)"]


def test_many_instances_with_one_reason_are_one_line():
    logged: set = set()
    names = [f"VI_{k}" for k in range(1, 1001)]
    [line] = sendpath.fallback_lines({sendpath.IPV6: names}, logged)
    assert line.startswith("1000 instances send their adverts through the raw IP socket: IPv6")
    assert line.endswith("VI_1, VI_2, VI_3, VI_4, VI_5, VI_6, VI_7, VI_8 and 992 more")
    assert sendpath.fallback_lines({sendpath.IPV6: names}, logged) == []


def test_a_link_without_an_ethernet_address_takes_no_frames():
    assert sendpath.link_reason(Link(2, "eth0", MAC, True)) is None
    assert "no Ethernet address" in sendpath.link_reason(Link(2, "eth0", bytes(6), True))


def test_status_names_the_send_path_in_use():
    from hivrrp.cli import daemon_line

    line = daemon_line({"version": "1", "pid": 7, "send_path": {"summary": "auto"}}, "/s", 0)
    assert line.endswith(", socket /s, send path auto")
    driver = Driver(None, lambda events: None)
    driver.frames_problem = "no packet socket ([Errno 1] Operation not permitted)"
    assert driver.path_summary() == ("auto, but raw: no packet socket ([Errno 1] Operation not "
                                     "permitted)")
    assert driver_with_frames().path_summary() == "auto"
