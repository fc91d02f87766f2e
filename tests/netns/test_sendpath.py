"""The adverts of one configuration sent by `--send-path raw` and by `auto`
(AF_PACKET frames), captured on the peer's end of a veth and compared byte
for byte: IPv4 and IPv6, VRRPv2 and v3, on the interface and on VMACs, with
the interface's MAC changed while the daemon runs. Also decoded by tshark
with checksum validation on. And both paths' adverts of one engine where a
per-namespace setting changes what the kernel writes (no daemon: a second).

Fields that legitimately differ per packet: the IPv4 identification (the
kernel's raw socket draws it from a counter per source and destination with
random jumps over time, the packet path counts per link) and so the IPv4
header checksum, which is checked on its own. Everything else must match.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from helpers.netns import Lab, wait_for
from hivrrp.cli import exchange

pytestmark = pytest.mark.netns

MAC_BEFORE, MAC_AFTER = "02:00:00:00:91:01", "02:00:00:00:91:02"
R1, R2 = "10.91.0.1", "10.91.0.2"
VMAC_V4 = bytes.fromhex("00005e00013c")       # VRID 60, IPv4
VMAC_V6 = bytes.fromhex("00005e00023d")       # VRID 61, IPv6
IPV4_ID = slice(18, 20)
IPV4_CHECKSUM = slice(24, 26)


def instance(name: str, vrid: int, vip: str, *, version: int = 3, extra: str = "") -> str:
    # Priority 255: master at once, adverts from the start (0.1 s for v3, 1 s for v2).
    interval = "1" if version == 2 else "0.1"
    return (f"vrrp_instance {name} {{\n    interface IF\n    virtual_router_id {vrid}\n"
            f"    priority 255\n    version {version}\n    advert_int {interval}\n{extra}"
            f"    virtual_ipaddress {{\n        {vip}\n    }}\n}}\n")


CONFIG = ("global_defs {\n    vrrp_garp_master_delay 0\n}\n"
          + instance("V3", 51, "10.91.0.51/24")
          + instance("V2", 52, "10.91.0.52/24", version=2,
                     extra="    authentication {\n        auth_type PASS\n"
                           "        auth_pass secret\n    }\n")
          + instance("UNICAST", 53, "10.91.0.53/24",
                     extra=f"    unicast_peer {{\n        {R2}\n    }}\n")
          + instance("V6", 54, "fd00:91::54/64")
          + instance("VMAC4", 60, "10.91.0.60/24", extra="    use_vmac\n")
          + instance("VMAC6", 61, "fd00:91::61/64", extra="    use_vmac\n"))


@pytest.fixture(scope="module")
def captures(tmp_path_factory, namespaces_allowed):
    """{mode: (frames, log text, the daemon's send path status)} for raw, then auto."""
    if shutil.which("tcpdump") is None:
        pytest.fail("tcpdump is missing: tests/run.sh installs it")
    tmp = tmp_path_factory.mktemp("sendpath")
    out = {}
    with Lab() as lab:
        r1, r2 = lab.netns("r1"), lab.netns("r2")
        if1, if2 = lab.veth(r1, r2)
        lab.run(r1, "ip", "addr", "add", f"{R1}/24", "dev", if1)
        lab.run(r2, "ip", "addr", "add", f"{R2}/24", "dev", if2)
        conf = tmp / "r1.conf"
        conf.write_text(CONFIG.replace("IF", if1))
        for mode in ("raw", "auto"):
            lab.run(r1, "ip", "link", "set", "dev", if1, "address", MAC_BEFORE)
            out[mode] = run_once(lab, r1, r2, if1, if2, conf, tmp, mode)
    return out


def run_once(lab: Lab, r1: str, r2: str, if1: str, if2: str, conf: Path, tmp: Path,
             mode: str) -> tuple[list[bytes], str, dict | None]:
    pcap, dump_log = tmp / f"{mode}.pcap", tmp / f"{mode}-tcpdump.log"
    log_path, sock = tmp / f"{mode}.log", str(tmp / f"{mode}.sock")
    with open(dump_log, "w") as dump_err:
        # --immediate-mode: the last adverts (priority 0) must not wait in a
        # ring block that tcpdump drops when it is stopped.
        dump = lab.popen(r2, "tcpdump", "-i", if2, "-U", "--immediate-mode", "-n", "-w", str(pcap),
                         "ip proto 112 or ip6 proto 112", stdout=subprocess.DEVNULL,
                         stderr=dump_err)
    assert wait_for(lambda: "listening on" in dump_log.read_text(), 10), dump_log.read_text()
    with open(log_path, "w") as log:
        daemon = lab.popen(r1, sys.executable, "-m", "hivrrp", "run", "-f", str(conf),
                           "--control", sock, "--pid-file", str(tmp / f"{mode}.pid"),
                           "--send-path", mode, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for(lambda: "running 6 instances" in log_path.read_text(), 15), \
            log_path.read_text()
        time.sleep(0.4)
        lab.run(r1, "ip", "link", "set", "dev", if1, "address", MAC_AFTER)
        # A reload: the fallbacks are said once, not again for the new plan.
        daemon.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reloaded:" in log_path.read_text(), 10), log_path.read_text()
        time.sleep(0.8)       # past the v2 instance's second advert (1 s after the first)
        status = exchange(sock, {"command": "status"})["daemon"].get("send_path")
    finally:
        lab.stop(daemon)      # SIGTERM: every master says priority 0
    time.sleep(0.2)
    lab.stop(dump, signal.SIGINT)
    return [bytes(p) for p in rdpcap(str(pcap))], log_path.read_text(), status


def ipv4_header_ok(frame: bytes) -> bool:
    header = frame[14:34]
    words = sum(int.from_bytes(header[k:k + 2], "big") for k in range(0, 20, 2))
    while words >> 16:
        words = (words & 0xFFFF) + (words >> 16)
    return words == 0xFFFF


def comparable(frame: bytes) -> bytes:
    """The frame with the per-packet IPv4 fields blanked (IPv6 is whole)."""
    if frame[12:14] == b"\x08\x00":
        frame = bytearray(frame)
        frame[IPV4_ID] = frame[IPV4_CHECKSUM] = b"\0\0"
    return bytes(frame)


def vrid_of(frame: bytes) -> int:
    return frame[14 + 20 + 1] if frame[12:14] == b"\x08\x00" else frame[14 + 40 + 1]


def test_the_packet_path_sends_what_the_raw_path_sends(captures):
    raw, auto = ({comparable(f) for f in captures[mode][0]} for mode in ("raw", "auto"))
    assert auto == raw, (sorted(f.hex() for f in auto - raw), sorted(f.hex() for f in raw - auto))
    # Every instance was heard, at its priority and at 0 (the stop), from both MACs.
    seen = {(vrid_of(f), f[14 + 20 + 2] if f[12:14] == b"\x08\x00" else f[14 + 40 + 2], f[6:12])
            for f in auto}
    mac_after = bytes.fromhex(MAC_AFTER.replace(":", ""))
    mac_before = bytes.fromhex(MAC_BEFORE.replace(":", ""))
    for vrid in (51, 53, 54):
        assert {(vrid, 255, mac_before), (vrid, 255, mac_after), (vrid, 0, mac_after)} <= seen
    assert {(52, 255, mac_before), (52, 0, mac_after)} <= seen
    assert {(60, 255, VMAC_V4), (60, 0, VMAC_V4), (61, 255, VMAC_V6), (61, 0, VMAC_V6)} <= seen


def test_the_auto_run_really_sent_frames(captures):
    frames, log, status = captures["auto"]
    assert status["mode"] == "auto" and status["frames"] and status["summary"] == "auto", status
    assert status["sent"] > 0 and status["send_errors"] == 0, status
    assert status["raw_unicast"] > 0 and status["raw_link"] == 0, status
    raw_status = captures["raw"][2]
    assert raw_status["mode"] == "raw" and not raw_status["frames"], raw_status


def test_per_packet_ipv4_fields_are_valid(captures):
    for mode in ("raw", "auto"):
        frames = captures[mode][0]
        ipv4 = [f for f in frames if f[12:14] == b"\x08\x00"]
        assert ipv4, mode
        for frame in ipv4:
            assert ipv4_header_ok(frame), (mode, frame.hex())
            ip = Ether(frame)[IP]                 # an independent reading: scapy's
            assert (ip.tos, ip.ttl, ip.flags, ip.frag, ip.proto) == (0xC0, 255, "DF", 0, 112)


def test_fallbacks_are_logged_once_with_their_reason(captures):
    log = captures["auto"][1]
    assert log.count("(UNICAST) adverts go through the raw IP socket: unicast peers") == 1, log
    for name in ("V6", "VMAC6"):
        assert log.count(f"({name}) adverts go through the raw IP socket: IPv6") == 1, log
    for name in ("V3", "V2", "VMAC4"):
        assert f"({name}) adverts go through the raw IP socket" not in log
    assert "send path auto" in log
    raw_log = captures["raw"][1]
    assert "send path raw" in raw_log and "adverts go through the raw IP socket" not in raw_log


@pytest.mark.parametrize("mode", ["raw", "auto"])
def test_tshark_decodes_every_frame_cleanly(captures, mode, tmp_path):
    if shutil.which("tshark") is None:
        pytest.fail("tshark is missing: tests/run.sh installs it")
    path = tmp_path / "frames.pcap"
    from scapy.utils import wrpcap
    wrpcap(str(path), [Ether(f) for f in captures[mode][0]])
    checks = ["-o", "ip.check_checksum:TRUE"]
    fields = subprocess.run(
        ["tshark", "-n", "-r", str(path), *checks, "-T", "fields", "-E", "separator=,",
         "-e", "frame.number", "-e", "ip.checksum.status", "-e", "vrrp.checksum.status",
         "-e", "_ws.malformed", "-e", "_ws.expert.severity"],
        capture_output=True, text=True, timeout=60, check=True).stdout.splitlines()
    assert len(fields) == len(captures[mode][0])
    for line in fields:
        number, ip_status, vrrp_status, malformed, severity = line.split(",")
        assert vrrp_status == "1", line                  # 1: Good
        assert ip_status in ("1", ""), line               # "": IPv6, no header checksum
        assert not malformed and not severity, line
    expert = subprocess.run(["tshark", "-n", "-r", str(path), *checks, "-q", "-z", "expert,warn"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert "Errors" not in expert and "Warns" not in expert, expert


# ------------------------------------------------ what the namespace's settings change

SOURCE = "10.92.0.1"

# Run inside the namespace: the raw socket is made after the sysctl is set
# (the kernel reads it when a socket is created), one advert goes out on
# each path, and the peer end's capture gives both frames, raw first.
SEND_BOTH = r"""
import json, socket, sys
from hivrrp._engine import Engine
from hivrrp._io import FramePath, PacketIO
from hivrrp.kernel.sockets import open_packet, open_raw

out_if, in_if, src, mac = sys.argv[1:5]
index = socket.if_nametoindex(out_if)
capture = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
capture.bind((in_if, 0))
capture.settimeout(3)
engine = Engine(1)
engine.start(engine.add_instance(vrid=1, ifindex=index, src=src, priority=255, version=3), 0)
raw = open_raw(4, 1 << 20)
PacketIO(raw.fileno(), 4, 4).send(engine)
packet = open_packet(1 << 20)
frames = FramePath(packet.fileno(), 4)
frames.set_link(index, bytes.fromhex(mac.replace(":", "")), 1500)
PacketIO(raw.fileno(), 4, 4).send(engine, frames)
got = []
for _ in range(50):
    frame = capture.recv(2048)
    if frame[12:14] == b"\x08\x00" and frame[23] == 112:
        got.append(frame.hex())
        if len(got) == 2:
            break
print(json.dumps({"frames": got, "sent": frames.sent, "errors": frames.send_errors}))
"""


def test_frames_follow_ip_no_pmtu_disc_as_the_raw_socket_does(namespaces_allowed):
    # With net.ipv4.ip_no_pmtu_disc (any non-zero value) a new socket's
    # pmtudisc is IP_PMTUDISC_DONT and the raw socket's adverts carry no DF;
    # write_headers wrote DF whatever the namespace said, so the two paths'
    # frames differed on the wire (the issue asks for them to be the same).
    with Lab() as lab:
        ns = lab.netns("df")
        out_if, in_if = lab.veth(ns, ns)
        lab.run(ns, "ip", "addr", "add", f"{SOURCE}/24", "dev", out_if)
        lab.run(ns, "sysctl", "-qw", "net.ipv4.ip_no_pmtu_disc=1")
        [link] = json.loads(lab.run(ns, "ip", "-j", "link", "show", out_if).stdout)
        result = lab.run(ns, sys.executable, "-c", SEND_BOTH, out_if, in_if, SOURCE,
                         link["address"], check=False)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["sent"] == 1 and answer["errors"] == 0, answer
    raw, frame = (bytes.fromhex(f) for f in answer["frames"])
    assert raw[20] & 0x40 == 0, "the raw socket set DF: the sysctl did not apply"
    assert comparable(frame) == comparable(raw), (raw.hex(), frame.hex())


# Run inside the namespace: the driver's frames told MTU 1500, the device at
# 100 (its news never came), a 20-VIP advert (108 bytes of IP) sent twice.
SEND_OVER_MTU = r"""
import json, socket, sys
from hivrrp._engine import Engine
from hivrrp._io import PacketIO
from hivrrp.daemon.driver import Driver
from hivrrp.kernel.netlink import Link
from hivrrp.kernel.sockets import open_raw

out_if, src, mac = sys.argv[1:4]
index = socket.if_nametoindex(out_if)
driver = Driver(None, lambda events: None)
driver._open_frames(1 << 20)
driver.sync_links({index: Link(index, out_if, bytes.fromhex(mac.replace(":", "")), True, 1500)})
raw = open_raw(4, 1 << 20)
driver.senders = [PacketIO(raw.fileno(), 4, 4)]
counts = []
for _ in range(2):
    engine = Engine(1)
    engine.start(engine.add_instance(vrid=1, ifindex=index, src=src, priority=255, version=3,
                                     addresses=[f"10.93.0.{k}" for k in range(10, 30)]), 0)
    driver.send(engine)
    counts.append({**driver.frames.counters(), "raw_sent": driver.senders[0].sent})
print(json.dumps({"counts": counts, "mtu": driver.frames.link(index)[1]}))
"""


def test_a_frame_the_device_refuses_for_its_mtu_moves_the_adverts_to_the_raw_socket(
        namespaces_allowed):
    # The first advert is refused (EMSGSIZE) and lost; the driver asks the
    # kernel the MTU, and the next goes through the raw socket (fragmented),
    # not refused again.
    with Lab() as lab:
        ns = lab.netns("mtu")
        out_if, _in_if = lab.veth(ns, ns)
        lab.run(ns, "ip", "addr", "add", "10.93.0.1/24", "dev", out_if)
        lab.run(ns, "ip", "link", "set", "dev", out_if, "mtu", "100")
        [link] = json.loads(lab.run(ns, "ip", "-j", "link", "show", out_if).stdout)
        result = lab.run(ns, sys.executable, "-c", SEND_OVER_MTU, out_if, "10.93.0.1",
                         link["address"], check=False)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    first, second = answer["counts"]
    assert (first["send_errors"], first["sent"], first["raw_sent"]) == (1, 0, 0), answer
    assert (second["send_errors"], second["raw_oversize"], second["raw_sent"]) == (1, 1, 1), answer
    assert answer["mtu"] == 100
