"""The announcer's C queue (hivrrp._announce) and what kernel/announce.py does around it:
frames against scapy's, the order, the state check when due, full send buffers,
failures counted and logged, a reload's renumbering."""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import tempfile
from array import array
from pathlib import Path

from hivrrp._announce import AnnounceQueue
from hivrrp._engine import FAULT_INTERFACE
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr
from scapy.layers.l2 import ARP, Ether

from helpers.plans import LINKS, instance_text, owner_plan, plan_of
from hivrrp.kernel import announce
from hivrrp.kernel.announce import Announcer, pack

MAC = bytes.fromhex("020000000001")
BY_INDEX = {link.index: link for link in LINKS.values()}


def v4(k: int) -> bytes:
    return bytes([192, 0, 2, k]) + bytes(12)


def masters(directory, names_vrids):
    plan = owner_plan(directory, names_vrids)
    plan.engine.start_all(0)
    return plan


def queue_of(entries, repeat, ifindex=2, mac=MAC) -> AnnounceQueue:
    """A queue holding (engine index, family, 16-byte address) entries on one link."""
    q = AnnounceQueue(8)
    q.add(pack((i, 0, family, addr) for i, family, addr in entries), array("i", [ifindex]),
          mac, repeat)
    return q


def senders(frames) -> list[int]:
    """The last byte of each ARP frame's sender address: which VIP it announced."""
    return [frame[31] for _family, _ifindex, frame in frames]


_ENGINE = []


def _one_master():
    """An engine with one instance, MASTER (priority 255), built once."""
    if not _ENGINE:
        with tempfile.TemporaryDirectory() as directory:   # hypothesis: no tmp_path
            _ENGINE.append(masters(Path(directory), [("A", 51)]).engine)
    return _ENGINE[0]


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=6, max_size=6), st.ip_addresses(v=4), st.ip_addresses(v=6),
       st.integers(1, 2**31 - 1))
def test_frames_are_what_scapy_builds_for_a_gratuitous_arp_and_an_unsolicited_na(
        mac, address4, address6, ifindex):
    engine = _one_master()
    q = AnnounceQueue(4)
    q.add(pack([(0, 0, 4, address4.packed + bytes(12)), (0, 0, 6, address6.packed)]),
          array("i", [ifindex]), mac, 1)
    frames: list = []
    q.drain(engine, -1, -1, 10, capture=frames)
    text = ":".join(f"{b:02x}" for b in mac)
    arp = Ether(dst="ff:ff:ff:ff:ff:ff", src=text, type=0x0806) / ARP(
        op=1, hwsrc=text, psrc=str(address4), hwdst="ff:ff:ff:ff:ff:ff", pdst=str(address4))
    # The kernel fills in a raw ICMPv6 socket's checksum: 0 here.
    na = ICMPv6ND_NA(R=1, S=0, O=1, tgt=str(address6), cksum=0) / ICMPv6NDOptDstLLAddr(
        lladdr=text)
    assert frames == [(4, ifindex, bytes(arp)), (6, ifindex, bytes(na))]
    assert (q.sent, q.first, len(q)) == (2, 2, 0)


def test_every_first_frame_goes_before_any_repeat_also_for_addresses_queued_later(tmp_path):
    plan = masters(tmp_path, [("A", 1), ("B", 2), ("C", 3)])
    q = queue_of([(0, 4, v4(1)), (1, 4, v4(2))], repeat=3)
    frames: list = []
    q.drain(plan.engine, -1, -1, 3, capture=frames)          # A, B, then A's second
    q.add(pack([(2, 0, 4, v4(3))]), array("i", [2]), MAC, 2)
    q.drain(plan.engine, -1, -1, 100, capture=frames)
    # C's first frame before the second round goes on; then round by round.
    assert senders(frames) == [1, 2, 1, 3, 2, 1, 3, 2]
    assert (q.sent, q.first, len(q)) == (8, 3, 0)


def test_each_frame_is_checked_against_its_own_instance_when_due(tmp_path):
    text = instance_text("L", 1, ["192.0.2.1/24"], priority=255) + "".join(
        instance_text(f"F{k}", 2 + k, [f"192.0.2.{10 + k}/24"], extra="    follow L\n")
        for k in range(3))
    plan = plan_of(tmp_path, text)
    plan.engine.start_all(0)
    block, = plan.followers["L"].blocks
    q = AnnounceQueue(8)
    q.add(block.records, array("i", block.links), MAC * len(block.links), 2)
    frames: list = []
    q.drain(plan.engine, -1, -1, 1, capture=frames)             # F0's first frame
    # F1 faults on its own while its leader and the others stay master.
    plan.engine.set_fault(plan.index["F1"], FAULT_INTERFACE, True, 1)
    assert plan.state("F1") == "FAULT" and plan.state("L") == "MASTER"
    q.drain(plan.engine, -1, -1, 100, capture=frames)
    assert senders(frames) == [10, 12, 10, 12]
    assert q.dropped == 2 and len(q) == 0


def test_a_full_send_buffer_keeps_the_frames_in_their_order_and_the_drain_goes_on(tmp_path):
    plan = masters(tmp_path, [("A", 1)])
    q = queue_of([(0, 4, v4(k)) for k in range(1, 41)], repeat=2)
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)   # a few frames' worth
    peer.setblocking(False)
    received, blocked = [], 0
    try:
        for _ in range(200):
            if not len(q):
                break
            q.drain(plan.engine, ours.fileno(), ours.fileno(), 1000, named=False)
            blocked += q.blocked
            while True:
                try:
                    received.append(peer.recv(100)[31])
                except BlockingIOError:
                    break
    finally:
        ours.close()
        peer.close()
    assert blocked >= 2          # the buffer was full more than once, and nothing was lost
    assert received == [*range(1, 41), *range(1, 41)]
    assert (q.sent, q.first, q.errors) == (80, 40, 0)


def test_after_the_give_up_a_full_buffer_fails_the_frames_counted_not_raised(tmp_path):
    plan = masters(tmp_path, [("A", 1)])
    q = queue_of([(0, 4, v4(k)) for k in range(1, 41)], repeat=1)
    ours, peer = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    ours.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    try:
        q.drain(plan.engine, ours.fileno(), ours.fileno(), 1000, named=False, give_up=True)
    finally:
        ours.close()
        peer.close()
    assert not q.blocked and len(q) == 0
    assert 0 < q.sent < 40 and q.errors == 40 - q.sent
    assert q.take_errors() == [(errno.EAGAIN, 2, 4, 40 - q.sent)]


def test_send_failures_are_counted_by_kind_never_raised(tmp_path):
    plan = masters(tmp_path, [("A", 1)])
    q = queue_of([(0, 4, v4(1)), (0, 6, bytes(15) + b"\x01"), (0, 4, v4(2))], repeat=2)
    lonely = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)   # connected to nobody
    try:
        assert q.drain(plan.engine, lonely.fileno(), lonely.fileno(), 100, named=False) == 0
    finally:
        lonely.close()
    assert (q.errors, q.sent, len(q)) == (6, 0, 0)    # every repeat tried, none re-raised
    assert sorted(q.take_errors()) == [(errno.ENOTCONN, 2, 4, 4), (errno.ENOTCONN, 2, 6, 2)]
    assert q.take_errors() == []


def test_failures_are_logged_once_per_kind_then_summarised(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(announce, "ERROR_LOG_PERIOD", 0.05)
    plan = masters(tmp_path, [("VI_1", 51)])

    async def scenario():
        announcer = Announcer(lambda: plan, lambda: BY_INDEX)
        # Real sockets that refuse a packet socket's address: every frame fails.
        announcer.packet_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        announcer.icmp6_socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        loop = asyncio.get_running_loop()
        for pause in (0.01, 0.08, 0.01):
            announcer.announce(loop, "VI_1", 2, MAC, [(4, bytes([192, 0, 2, 51]))], repeat=3)
            await asyncio.sleep(pause)
        announcer.close()
        return announcer

    with caplog.at_level(logging.WARNING, logger="hivrrp"):
        announcer = asyncio.run(scenario())
    assert announcer.errors == 9 and announcer.sent == 0
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == ("gratuitous ARP on eth0 failed: Invalid argument (EINVAL; later failures "
                        "of the kind summarised)")
    # The second burst only counted; the third, a period after the first,
    # brought the summary of both.
    assert lines[1:] == ["gratuitous ARP on eth0 failed 8 more times in 0 s: Invalid argument"]


class FakeSocket:
    def __init__(self, sent):
        self.sent = sent

    def sendto(self, frame, where):
        self.sent.append(frame)

    def close(self):
        pass


def test_a_reload_during_a_burst_renumbers_the_queued_frames_by_name(tmp_path):
    first = masters(tmp_path, [("A", 51), ("B", 52)])
    # The reload puts an instance first: B is index 2 now, A (stopped) index 1,
    # which is B's old index.
    second = masters(tmp_path, [("NEW", 50), ("A", 51), ("B", 52)])
    second.engine.stop(second.index["A"], 1)
    current = [first]

    async def scenario():
        sent = []
        announcer = Announcer(lambda: current[0])
        announcer.packet_socket = announcer.icmp6_socket = FakeSocket(sent)
        loop = asyncio.get_running_loop()
        announcer.announce(loop, "B", 2, MAC, [(4, bytes([192, 0, 2, 52]))], repeat=4,
                           interval=0.01)
        await asyncio.sleep(0.005)
        current[0] = second
        for _ in range(100):
            if not len(announcer.queue):
                break
            await asyncio.sleep(0.01)
        return sent, announcer

    sent, announcer = asyncio.run(scenario())
    assert len(sent) == 4 and announcer.dropped == 0
    assert {frame[28:32] for frame in sent} == {bytes([192, 0, 2, 52])}


def test_a_drain_that_raises_does_not_stop_later_announcements(tmp_path):
    plan = masters(tmp_path, [("A", 51)])

    async def scenario():
        sent, calls = [], []

        def links():
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("a bug in the link table")
            return BY_INDEX

        announcer = Announcer(lambda: plan, links)
        announcer.packet_socket = announcer.icmp6_socket = FakeSocket(sent)
        loop = asyncio.get_running_loop()
        errors = []
        loop.set_exception_handler(lambda _loop, context: errors.append(context["exception"]))
        # A frame that fails is logged by its link's name: that lookup raises.
        refusing = [socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(2)]
        announcer.packet_socket, announcer.icmp6_socket = refusing
        announcer.announce(loop, "A", 2, MAC, [(4, bytes([192, 0, 2, 51]))], repeat=1)
        await asyncio.sleep(0.01)
        assert [str(e) for e in errors] == ["a bug in the link table"]
        announcer.packet_socket = announcer.icmp6_socket = FakeSocket(sent)
        announcer.announce(loop, "A", 2, MAC, [(4, bytes([192, 0, 2, 51]))], repeat=1)
        await asyncio.sleep(0.01)
        assert len(sent) == 1
        for sock in refusing:
            sock.close()

    asyncio.run(scenario())
