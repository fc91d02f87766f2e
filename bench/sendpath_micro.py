"""The advert's kernel cost per packet on each send path, on a veth pair in namespaces.

    python bench/sendpath_micro.py [--family 4|6] [--packets 100000] [--rounds 5] [--batch 250]
                                   [--topology p2p|bridge] [--bridge-nf-off]
                                   [--qdisc pfifo_fast] [--paths raw,packet] [--perf FILE]

Two namespaces joined by one veth pair (a point-to-point segment, as between
two routers), or with --topology bridge the sender's veth into a bridge that
floods to two more ports (a backup and a client, as the lab's and
bench/e2e.py's segments). Inside the sender, the same batch of VRRPv3 adverts
(VRIDs 1..batch, one VIP each) goes out again and again through each path,
the paths interleaved within every round:

  raw       raw IP socket, IP_PKTINFO / IPV6_PKTINFO per message, sendmmsg
            (what `--send-path raw` does)
  packet    AF_PACKET with prebuilt Ethernet frames, sockaddr_ll per message,
            sendmmsg (what `--send-path auto` does)
  bypass    the same with PACKET_QDISC_BYPASS
  ring      PACKET_TX_RING (TPACKET_V2): each frame copied into the ring and
            its status set, one send() per batch
  daemon-raw, daemon-frames
            the daemon's own code: an engine with the same adverts queued,
            sent by _io.PacketIO (raw) or with _io.FramePath (frames, IPv4)

System time from getrusage per packet (the peer's receive runs in the
sender's softirq on a veth and is counted too, the same for every path);
medians over the rounds and each path's ratio to raw within each round.
Needs root (namespaces). Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import mmap
import os
import resource
import socket
import statistics
import struct
import subprocess
import sys
import time

PATHS = ("raw", "packet", "bypass", "ring", "daemon-raw", "daemon-frames")
SOL_PACKET = 263
PACKET_VERSION, PACKET_TX_RING, PACKET_QDISC_BYPASS = 10, 13, 20
TPACKET_V2 = 1
TP_STATUS_SEND_REQUEST = 1
TPACKET2_DATA = 32             # TPACKET_ALIGN(sizeof(struct tpacket2_hdr)): where a TX frame starts
RING_FRAME = 2048
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
IP_PKTINFO = 8                 # linux/in.h (not in Python 3.11's socket module)
SRC4, GROUP4 = "10.100.0.1", "224.0.0.18"
SRC6, GROUP6 = "fe80::1", "ff02::12"


class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.c_void_p), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def vrrp3(vrid: int, family: int, src: bytes, dst: bytes, vip: bytes) -> bytes:
    body = struct.pack("!BBBBH", 0x31, vrid, 200, 1, 10) + vip     # v3, advert, 1 address, 0.1 s
    pseudo = (src + dst + struct.pack("!BBH", 0, 112, len(body)) if family == 4
              else src + dst + struct.pack("!IxxxB", len(body), 112))
    ck = checksum(pseudo + body)
    return body[:6] + struct.pack("!H", ck) + body[8:]


def frames(family: int, count: int, mac: bytes) -> list[tuple[bytes, bytes]]:
    """(IP-less VRRP message, whole Ethernet frame) per VRID, as the kernel writes them."""
    out = []
    for vrid in range(1, count + 1):
        if family == 4:
            src, dst = socket.inet_aton(SRC4), socket.inet_aton(GROUP4)
            msg = vrrp3(vrid, 4, src, dst, socket.inet_aton(f"10.100.{vrid}.1"))
            ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0xC0, 20 + len(msg), 0, 0x4000,
                                       255, 112, 0, src, dst))
            ip[10:12] = struct.pack("!H", checksum(bytes(ip)))
            eth = b"\x01\x00\x5e\x00\x00\x12" + mac + struct.pack("!H", ETH_P_IP)
        else:
            src, dst = socket.inet_pton(socket.AF_INET6, SRC6), socket.inet_pton(socket.AF_INET6,
                                                                                 GROUP6)
            vip = socket.inet_pton(socket.AF_INET6, f"fd00::{vrid:x}")
            msg = vrrp3(vrid, 6, src, dst, vip)
            ip = bytearray(struct.pack("!IHBB16s16s", 0x6C000000, len(msg), 112, 255, src, dst))
            eth = b"\x33\x33\x00\x00\x00\x12" + mac + struct.pack("!H", ETH_P_IPV6)
        out.append((msg, eth + bytes(ip) + msg))
    return out


class Batch:
    """A sendmmsg vector built once: the per-call cost is the kernel's alone."""

    def __init__(self, buffers: list[bytes], names: list[bytes], controls: list[bytes]):
        n = len(buffers)
        self.keep = [ctypes.create_string_buffer(b, len(b)) for b in buffers + names + controls]
        data, name_bufs, ctl_bufs = self.keep[:n], self.keep[n:2 * n], self.keep[2 * n:]
        self.iov = (iovec * n)()
        self.msgs = (mmsghdr * n)()
        for i in range(n):
            self.iov[i].base = ctypes.addressof(data[i])
            self.iov[i].len = len(buffers[i])
            h = self.msgs[i].hdr
            h.iov = ctypes.addressof(self.iov[i])
            h.iovlen = 1
            h.name = ctypes.addressof(name_bufs[i])
            h.namelen = len(names[i])
            if controls:
                h.control = ctypes.addressof(ctl_bufs[i])
                h.controllen = len(controls[i])
        self.n = n


def raw_batch(family: int, ifindex: int, messages: list[bytes]) -> Batch:
    if family == 4:
        name = struct.pack("=H", socket.AF_INET) + struct.pack("!H4s", 0,
                                                               socket.inet_aton(GROUP4)) + bytes(8)
        info = struct.pack("=i4s4s", ifindex, socket.inet_aton(SRC4), bytes(4))
        control = struct.pack("=QiI", 16 + len(info), socket.IPPROTO_IP, IP_PKTINFO) + info
    else:
        name = struct.pack("=HHI16sI", socket.AF_INET6, 0, 0,
                           socket.inet_pton(socket.AF_INET6, GROUP6), ifindex)
        info = struct.pack("=16sI", socket.inet_pton(socket.AF_INET6, SRC6), ifindex)
        control = struct.pack("=QiI", 16 + len(info), socket.IPPROTO_IPV6,
                              socket.IPV6_PKTINFO) + info
    control += bytes(-len(control) % 8)
    return Batch(messages, [name] * len(messages), [control] * len(messages))


def packet_batch(ifindex: int, family: int, whole: list[bytes]) -> Batch:
    proto = ETH_P_IP if family == 4 else ETH_P_IPV6
    name = struct.pack("=HHiHBB8s", socket.AF_PACKET, socket.htons(proto), ifindex, 1, 0, 6,
                       whole[0][:6])
    return Batch(whole, [name] * len(whole), [])


def open_raw(family: int) -> socket.socket:
    from hivrrp.kernel.sockets import open_raw as hivrrp_raw  # the daemon's options, exactly
    return hivrrp_raw(family, 4 << 20)


class Ring:
    def __init__(self, sock: socket.socket, whole: list[bytes]):
        sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V2)
        frames_nr = 1
        while frames_nr < len(whole):
            frames_nr *= 2
        block = 1 << 16
        per_block = block // RING_FRAME
        blocks = max(1, frames_nr // per_block)
        frames_nr = blocks * per_block
        sock.setsockopt(SOL_PACKET, PACKET_TX_RING,
                        struct.pack("=IIII", block, blocks, RING_FRAME, frames_nr))
        self.map = mmap.mmap(sock.fileno(), block * blocks, mmap.MAP_SHARED,
                             mmap.PROT_READ | mmap.PROT_WRITE)
        self.sock, self.whole, self.frames_nr, self.head = sock, whole, frames_nr, 0
        self.request = struct.pack("=I", TP_STATUS_SEND_REQUEST)

    def send(self) -> int:
        """Each frame copied to the ring from where the kernel's head is (as a
        daemon would copy from its TX arena), its length and status set."""
        m, request = self.map, self.request
        for frame in self.whole:
            base = self.head * RING_FRAME
            m[base + TPACKET2_DATA:base + TPACKET2_DATA + len(frame)] = frame
            m[base + 4:base + 8] = struct.pack("=I", len(frame))        # tp_len
            m[base:base + 4] = request
            self.head = (self.head + 1) % self.frames_nr
        sent = self.sock.send(b"", socket.MSG_DONTWAIT)
        return len(self.whole) if sent > 0 else -1


def daemon_paths(args, senders: dict, socks: list, ifindex: int, mac: bytes,
                 raw: socket.socket) -> None:
    from hivrrp._engine import Engine
    from hivrrp._io import FramePath, PacketIO

    from hivrrp.kernel.sockets import open_packet

    engine = Engine(args.batch)
    src, group = (SRC4, GROUP4) if args.family == 4 else (SRC6, GROUP6)
    for vrid in range(1, args.batch + 1):
        vip = f"10.100.{vrid}.1" if args.family == 4 else f"fd00::{vrid:x}"
        engine.start(engine.add_instance(vrid=vrid, ifindex=ifindex, src=src, family=args.family,
                                         version=3, priority=255, interval_cs=10,
                                         addresses=[vip], group=group), 0)
    assert engine.tx_count == args.batch      # queued once, sent again and again
    raw_io = PacketIO(raw.fileno(), args.family, args.batch)
    senders["daemon-raw"] = lambda: raw_io.send(engine)
    packet = open_packet(4 << 20)
    socks.append(packet)
    frames = FramePath(packet.fileno(), args.batch)
    frames.set_link(ifindex, mac, 1500)
    senders["daemon-frames"] = lambda: raw_io.send(engine, frames)


def inner(args) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    ifname = args.inner
    ifindex = socket.if_nametoindex(ifname)
    with open(f"/sys/class/net/{ifname}/address") as f:
        mac = bytes.fromhex(f.read().strip().replace(":", ""))
    built = frames(args.family, args.batch, mac)
    messages, whole = [m for m, _ in built], [w for _, w in built]
    socks, senders = [], {}
    raw = open_raw(args.family)
    socks.append(raw)
    rb = raw_batch(args.family, ifindex, messages)
    senders["raw"] = lambda: libc.sendmmsg(raw.fileno(), rb.msgs, rb.n, 0)
    proto = ETH_P_IP if args.family == 4 else ETH_P_IPV6
    pb = packet_batch(ifindex, args.family, whole)
    for path in ("packet", "bypass"):
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        if path == "bypass":
            sock.setsockopt(SOL_PACKET, PACKET_QDISC_BYPASS, 1)
        socks.append(sock)
        senders[path] = (lambda s: lambda: libc.sendmmsg(s.fileno(), pb.msgs, pb.n, 0))(sock)
    daemon_paths(args, senders, socks, ifindex, mac, raw)
    ring_sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    socks.append(ring_sock)
    ring = Ring(ring_sock, whole)
    ring_sock.bind((ifname, proto))        # the ring's frames carry no address
    senders["ring"] = ring.send
    rounds = []
    calls = max(1, args.packets // args.batch)
    for _ in range(args.rounds):
        row = {}
        for path in args.paths:
            send = senders[path]
            for _ in range(20):       # warm: neighbour, caches
                send()
            before = resource.getrusage(resource.RUSAGE_SELF)
            wall = time.perf_counter()
            sent = 0
            for _ in range(calls):
                result = send()
                if result < 0:
                    raise OSError(ctypes.get_errno(), f"{path}: sendmmsg failed")
                sent += result if path != "ring" else args.batch
            if not sent:
                raise RuntimeError(f"{path}: nothing was sent")
            after = resource.getrusage(resource.RUSAGE_SELF)
            wall = time.perf_counter() - wall
            row[path] = {"sys_us": (after.ru_stime - before.ru_stime) / sent * 1e6,
                         "user_us": (after.ru_utime - before.ru_utime) / sent * 1e6,
                         "wall_us": wall / sent * 1e6, "sent": sent}
        rounds.append(row)
    print(json.dumps(rounds))


def outer(args) -> None:
    from hivrrp.tools.lab.topology import Topology  # noqa: PLC0415 (needs the package)
    t = Topology()
    try:
        r1, r2 = t.netns("r1"), t.netns("r2")
        if args.topology == "p2p":
            t.sh("ip", "link", "add", "sp0", "type", "veth", "peer", "name", "sp1", "netns", r2,
                 ns=r1)
        else:
            # The lab's and bench/e2e.py's segment: a bridge that floods every
            # advert to the backup and a client.
            switch, client = t.netns("sw"), t.netns("client")
            bridge = t.segment(switch, 0)
            if args.bridge_nf_off:
                # A real switch runs no netfilter; a Linux bridge does while
                # br_netfilter is loaded (built in here), on by default.
                for key in ("iptables", "ip6tables", "arptables"):
                    t.sh("sysctl", "-qw", f"net.bridge.bridge-nf-call-{key}=0", ns=switch)
            for ns, ifname in ((r1, "sp0"), (r2, "sp1"), (client, "sp2")):
                t.ports += 1
                port = f"{t.prefix}p{t.ports}"
                t.sh("ip", "link", "add", port, "type", "veth", "peer", "name", ifname,
                     "netns", ns, ns=switch)
                t.sh("ip", "link", "set", port, "master", bridge, "up", ns=switch)
            t.sh("sysctl", "-qw", "net.ipv6.conf.sp2.accept_dad=0", ns=client)
            t.sh("ip", "link", "set", "sp2", "up", ns=client)
        for ns, ifname in ((r1, "sp0"), (r2, "sp1")):
            t.sh("sysctl", "-qw", f"net.ipv6.conf.{ifname}.accept_dad=0", ns=ns)
            t.sh("ip", "link", "set", ifname, "up", ns=ns)
        t.sh("ip", "addr", "add", f"{SRC4}/16", "dev", "sp0", ns=r1)
        t.sh("ip", "addr", "add", f"{SRC6}/64", "dev", "sp0", "nodad", ns=r1)
        t.sh("ip", "addr", "add", "10.100.0.2/16", "dev", "sp1", ns=r2)
        if args.qdisc:
            t.sh("tc", "qdisc", "add", "dev", "sp0", "root", args.qdisc, ns=r1)
        perf = (["perf", "record", "-g", "-e", "cpu-clock", "-o", args.perf, "--"]
                if args.perf else [])
        out = subprocess.run(["ip", "netns", "exec", r1, *perf, sys.executable,
                              os.path.abspath(__file__), "--inner", "sp0", "--family",
                              str(args.family), "--packets", str(args.packets), "--rounds",
                              str(args.rounds), "--batch", str(args.batch), "--paths",
                              ",".join(args.paths)], capture_output=True, text=True, timeout=600)
        if out.returncode != 0:
            sys.exit(f"the sender failed:\n{out.stderr}")
        rounds = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        t.close()
    report(args, rounds)


def report(args, rounds: list[dict]) -> None:
    bridge_nf = " (bridge-nf-call off)" if args.bridge_nf_off else ""
    print(f"IPv{args.family}, VRRPv3, {args.topology}{bridge_nf}, "
          f"qdisc {args.qdisc or 'none (noqueue)'}, "
          f"{args.batch} adverts per call, "
          f"{rounds[0]['raw']['sent']} packets per path and round, {args.rounds} rounds; "
          "system time per packet (µs), medians")
    print(f"{'path':<14}{'sys µs':>9}{'user µs':>9}{'wall µs':>9}{'sys / raw':>11}")
    summary = {}
    for path in args.paths:
        sys_us = statistics.median(r[path]["sys_us"] for r in rounds)
        ratio = statistics.median(r[path]["sys_us"] / r["raw"]["sys_us"] for r in rounds)
        user = statistics.median(r[path]["user_us"] for r in rounds)
        wall = statistics.median(r[path]["wall_us"] for r in rounds)
        summary[path] = {"sys_us": round(sys_us, 3), "ratio_to_raw": round(ratio, 3),
                         "user_us": round(user, 3), "wall_us": round(wall, 3)}
        print(f"{path:<14}{sys_us:>9.2f}{user:>9.2f}{wall:>9.2f}{ratio:>11.2f}")
    print(json.dumps({"family": args.family, "topology": args.topology + bridge_nf,
                      "qdisc": args.qdisc or "noqueue",
                      "batch": args.batch, "rounds": args.rounds, "paths": summary}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", type=int, choices=(4, 6), default=4)
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--paths", default=",".join(PATHS),
                        help="comma-separated, of " + ", ".join(PATHS) + " (raw always runs)")
    parser.add_argument("--topology", choices=("p2p", "bridge"), default="p2p",
                        help="p2p: one veth pair; bridge: the sender's veth into a bridge "
                             "with two more ports (a backup and a client), as the lab's")
    parser.add_argument("--bridge-nf-off", action="store_true",
                        help="with --topology bridge: net.bridge.bridge-nf-call-*=0 in the "
                             "switch (br_netfilter's hooks on every bridged frame)")
    parser.add_argument("--qdisc", default="",
                        help="a root qdisc on the sender's veth (veths have none by default; "
                             "a NIC has mq/fq_codel): e.g. fq_codel, pfifo_fast")
    parser.add_argument("--perf", default="",
                        help="record the sender with `perf record -g` into this file")
    parser.add_argument("--inner", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 1 <= args.batch <= 1024 or not 1 <= args.rounds <= 50 or args.packets < 1:
        sys.exit("--batch is 1..1024, --rounds 1..50")
    args.paths = ["raw"] + [p for p in args.paths.split(",") if p != "raw"]
    if any(p not in PATHS for p in args.paths):
        sys.exit(f"--paths: one of {', '.join(PATHS)}")
    if args.inner:
        inner(args)
    else:
        if os.geteuid() != 0:
            sys.exit("bench/sendpath_micro.py needs root (network namespaces)")
        outer(args)


if __name__ == "__main__":
    main()
