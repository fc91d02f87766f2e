"""What an operator reads when adverts cannot go out as frames: refused by
the packet socket, or over their link's MTU. Without root: FramePath(-1)
builds frames and sends none; a socket of another family stands for a packet
socket whose sends fail."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from hivrrp._io import FramePath, PacketIO

from helpers.engines import master_on
from helpers.fakedaemon import watching
from helpers.plans import LINKS, instance_text, plan_of
from hivrrp.daemon import sendlog
from hivrrp.daemon.driver import Driver
from hivrrp.daemon.sendlog import Refused
from hivrrp.kernel import sendpath

ETH0_MAC = LINKS["eth0"].mac
ARPHRD_ETHER = 1


def test_frames_that_cannot_be_sent_are_logged_once(caplog):
    # ENOBUFS, ENETDOWN, ENXIO (a deleted index), EMSGSIZE (an MTU the table
    # has not caught up with) all end in flush_c's "send_errors += 1": the
    # adverts are lost, not handed to the raw socket, and nothing in the log
    # said so (only the control socket's status had the count). A UDP socket
    # stands in for the packet socket: it refuses a sockaddr_ll
    # (EAFNOSUPPORT) as the packet socket refuses a frame, without root and
    # without a packet on any wire.
    failing = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    driver = Driver(None, lambda events: None)
    driver.frames = FramePath(failing.fileno())
    driver.frames.set_link(2, ETH0_MAC, 1500)
    driver.senders = [PacketIO(-1, 4, 16)]     # nothing reaches it: every advert is a frame
    try:
        with caplog.at_level(logging.DEBUG, logger="hivrrp"):
            for _ in range(50):
                driver.send(master_on(2))
    finally:
        failing.close()
    assert driver.frames.send_errors == 50 and driver.frames.sent == 0
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert 1 <= len(lines) <= 2, lines        # said, and not once per advert
    assert lines[0] == ("interface index 2: the packet socket refused an advert (lost): "
                        "Address family not supported by protocol (EAFNOSUPPORT)"), lines
    assert driver.path_status()["send_errors"] == 50


def test_the_raw_socket_s_refusals_are_logged_with_their_peer_then_counted(caplog, monkeypatch):
    # The raw path's send_errors were as silent. An fd of -1 refuses every
    # send (EBADF) without a packet on any wire; a minute later the repeats
    # are one line, and the kind then stays quiet until it recurs.
    clock = [1000.0]
    monkeypatch.setattr("time.monotonic", lambda: clock[0])
    driver = Driver(None, lambda events: None, "raw")
    driver.sync_links({2: LINKS["eth0"]})
    driver.senders = [PacketIO(-1, 4, 16)]
    with caplog.at_level(logging.DEBUG, logger="hivrrp"):
        for k in range(30):
            clock[0] += 2.5
            driver.send(master_on(2, peers=["192.0.2.9"]))
        driver.close()
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [
        "interface eth0: the raw IP socket refused an advert to 192.0.2.9 (lost): Bad file "
        "descriptor (EBADF)",
        "interface eth0: the raw IP socket refused 24 more adverts to 192.0.2.9 in 60 s: Bad "
        "file descriptor (EBADF)",
        "interface eth0: the raw IP socket refused 5 more adverts to 192.0.2.9 in 12 s: Bad "
        "file descriptor (EBADF)"], lines
    assert driver.path_status()["raw_send_errors"] == 30
    assert driver.send_errors() == {"packet": 0, "raw": 30}


def test_each_refusal_says_what_it_means_for_an_advert():
    assert sendpath.refusal(errno.ENOBUFS) == (
        "No buffer space available (ENOBUFS): the interface's queue or the socket's send buffer "
        "is full")
    assert sendpath.refusal(errno.ENXIO).endswith("(ENXIO): the interface is gone")
    assert sendpath.refusal(errno.EMSGSIZE).endswith("over the interface's MTU")
    assert sendpath.refusal(9999) == "Unknown error 9999 (9999)"


def test_an_advert_over_the_links_mtu_says_it_takes_the_raw_socket(tmp_path, caplog):
    # The MTU went down under a running master (68, IPv4's least) below its
    # 20-VIP advert (116 bytes of IP as VRRPv2). FramePath hands it to the raw socket,
    # counted in raw_oversize; linkpolicy warns that the next reload lists
    # fewer VIPs, but nothing named the fallback, unlike every other reason
    # frames are not used ("(VI_1) adverts go through the raw IP socket: ...").
    vips = [f"192.0.2.{k}/24" for k in range(10, 30)]
    plan = plan_of(tmp_path, instance_text("VI_1", 1, vips, priority=255))
    driver = Driver(None, lambda events: None)
    driver.frames = FramePath(-1)
    driver.senders = [PacketIO(-1, 4, 16)]     # fd -1: counted as a send error, sends nothing

    async def scenario():
        watch = watching(plan, driver, asyncio.get_running_loop())
        plan.engine.start(plan.index["VI_1"], 0)
        with caplog.at_level(logging.INFO, logger="hivrrp"):
            watch.on_netlink([("link", 2, "eth0", ETH0_MAC, True, 68, ARPHRD_ETHER)])
            for _ in range(3):
                driver.send(plan.engine)
                plan.engine.expire(10**9)

    caplog.clear()
    asyncio.run(scenario())
    assert driver.frames.raw_oversize >= 1
    lines = [r.getMessage() for r in caplog.records]
    # (The raw socket's own refusals, fd -1, are logged too: not this line.)
    assert any("raw IP socket" in line and "MTU 68" in line and "eth0" in line
               for line in lines), lines
    said = [line for line in lines if "are over its MTU" in line]
    assert said == ["interface eth0: adverts of 116 bytes are over its MTU 68: they go through "
                    "the raw IP socket, which fragments them (a reload or rebuild sizes them "
                    "for the MTU)"], lines                  # once, not per advert


def test_a_frame_over_the_device_s_mtu_makes_the_frames_ask_the_kernel_once(monkeypatch, caplog):
    # EMSGSIZE: the MTU the frames were told is stale (its news is late).
    # Asked once, the kernel's MTU bounds the frames: the next adverts over
    # it take the raw socket (fragmented) instead of being refused and lost.
    asked = []
    monkeypatch.setattr("hivrrp.daemon.driver.device_mtu", lambda index: asked.append(index)
                        or 100)
    driver = Driver(None, lambda events: None)
    driver.frames = FramePath(-1)
    driver.sync_links({2: LINKS["eth0"]})
    refused = Refused(sendlog.PACKET, errno.EMSGSIZE, 2, None)
    with caplog.at_level(logging.INFO, logger="hivrrp"):
        driver.on_refused(refused)
        driver.on_refused(refused)
    assert asked == [2]
    assert driver.frames.link(2)[:3] == (ETH0_MAC, 100, True)
    assert "interface eth0: its MTU is 100, not 1500 as last heard" in caplog.text
    [(_, frame)] = driver.frames.frames(master_on(2, addresses=[f"192.0.2.{k}" for k in
                                                               range(10, 30)]))
    assert frame is None and driver.frames.raw_oversize == 1
    driver.sync_links({2: LINKS["eth0"]}, [2])      # the news: as first told, 1500
    assert driver.frames.link(2)[1] == 1500
    for other in (Refused(sendlog.PACKET, errno.ENOBUFS, 2, None),
                  Refused(sendlog.RAW, errno.EMSGSIZE, 2, None)):
        driver.on_refused(other)
    assert asked == [2]
