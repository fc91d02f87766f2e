"""Live: real keepalived adverts captured by tcpdump, read by hivrrp's reader
(checked against tcpdump's own reading) and judged by `hivrrp decode --config`
against the sender's configuration as its peer has it, and against altered
ones; and a running hivrrp that drops adverts for the reason decode gives."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from netns_conf import conf

from helpers.keepalived_capture import FORMAT_ADVERTS, FORMATS, SCENARIOS, SRC_V4, peer_conf
from helpers.netns import wait_for
from hivrrp.tools.decode.capture import read_vrrp
from hivrrp.tools.decode.pcapfile import frames

pytestmark = pytest.mark.netns

ADVERTS = FORMAT_ADVERTS
LINKTYPES = {"ethernet-nano": 1, "any-sll2": 276, "any-sll": 113}
INSTANCE = {s.name: s.name.upper().replace("-", "_") for s in SCENARIOS}


@pytest.fixture(scope="module")
def captures(keepalived_recording):
    """(the captures' directory, the sender's veth, its peer's): tcpdump's FORMATS
    of one keepalived run (tests/netns/conftest.py)."""
    [tmp] = {path.parent for path in keepalived_recording.formats.values()}
    return tmp, keepalived_recording.if_sender, keepalived_recording.if_peer


def tcpdump_reading(path: Path):
    """(time, IP packet bytes) of each packet, as tcpdump itself reads the file."""
    out = subprocess.run(["tcpdump", "-r", str(path), "-nn", "-tt", "-x",
                          "--time-stamp-precision=nano"], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    packets = []
    for line in out.splitlines():
        if not line.startswith("\t"):
            packets.append([float(line.split()[0]), b""])
        else:
            hexdigits = re.sub(r"\s", "", line.split(":", 1)[1])
            packets[-1][1] += bytes.fromhex(hexdigits)
    return packets


@pytest.mark.parametrize("name", FORMATS)
def test_reader_agrees_with_tcpdump(captures, name):
    tmp, _, _ = captures
    path = tmp / f"{name}.pcap"
    assert {f.linktype for f in frames(str(path))} == {LINKTYPES[name]}
    theirs = tcpdump_reading(path)
    ours = list(read_vrrp(str(path)))
    assert len(ours) == len(theirs) == ADVERTS
    for datagram, (time, ip) in zip(ours, theirs):
        assert datagram.time == pytest.approx(time, abs=1e-6)
        if datagram.family == 4:
            assert ip.startswith(datagram.data)     # tcpdump may show link-layer padding too
        else:
            assert (ip[8:24], ip[24:40], ip[7]) == (datagram.src, datagram.dst,
                                                    datagram.hoplimit)
            assert ip[40:40 + len(datagram.data)] == datagram.data


def judge(tmp: Path, capture: str, config_text: str):
    config = tmp / "judge.conf"
    config.write_text(config_text)
    result = subprocess.run([sys.executable, "-m", "hivrrp", "decode", "--json", "--config",
                             str(config), str(tmp / f"{capture}.pcap")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_keepalived_adverts_are_ok_for_a_peer_with_the_same_config(captures):
    tmp, _, if_peer = captures
    records = judge(tmp, "ethernet-nano", peer_conf(if_peer))
    assert len(records) == ADVERTS
    assert {r["verdict"] for r in records} == {"ok"}
    assert {r["instance"] for r in records} == set(INSTANCE.values())


def scenario_block(text: str, scenario: str) -> tuple[int, int]:
    start = text.index(f"vrrp_instance {INSTANCE[scenario]} ")
    return start, text.index("\n}\n", start)


def altered(interface: str, scenario: str, old: str, new: str) -> str:
    text = peer_conf(interface)
    start, end = scenario_block(text, scenario)
    block = text[start:end]
    assert old in block, (old, block)
    return text[:start] + block.replace(old, new) + text[end:]


ALTERED = [
    ("keepalived-v2-pass", "auth_pass 1234", "auth_pass 9999", "auth_failure"),
    ("keepalived-v2-pass", "advert_int 1", "advert_int 2", "interval_mismatch"),
    ("keepalived-v2-pass", "auth_type PASS\n        auth_pass 1234", "", "auth_type_mismatch"),
    ("keepalived-v3-ipv4-any", "198.51.100.54/24", "198.51.100.55/24", "address_list"),
    ("keepalived-v3-ipv4-any", "        198.51.100.54/24\n", "", "address_count"),
    ("keepalived-v3-ipv4-any", "version 3", "version 2", "version_mismatch"),
    ("keepalived-v3-ipv6", "virtual_router_id 52", "virtual_router_id 62", "unknown_vrid"),
    ("keepalived-v3-unicast", f"        {SRC_V4}", "        10.0.0.9", "not_peer"),
]


@pytest.mark.parametrize("scenario, old, new, reason", ALTERED,
                         ids=[a[3] for a in ALTERED])
def test_altered_config(captures, scenario, old, new, reason):
    tmp, _, if_peer = captures
    records = judge(tmp, "ethernet-nano", altered(if_peer, scenario, old, new))
    vrid = next(s.vrid for s in SCENARIOS if s.name == scenario)
    mine = [r for r in records if r["vrid"] == vrid]
    assert mine and {r["verdict"] for r in mine} == {reason}, mine[0]
    assert {r["verdict"] for r in records if r["vrid"] != vrid} == {"ok"}


def test_running_hivrrp_drops_for_the_reason_decode_gives(lan, tmp_path):
    """The daemon's log and counters say what decode says, word for word.
    (The sender is hivrrp: keepalived 2.2.7 as master stops advertising while
    a peer it drops advertises at its own interval, so it would send nothing.)"""
    lan.node("r1", ipv4="192.0.2.1/24")
    r2 = lan.node("r2", ipv4="192.0.2.2/24")
    lan.hivrrp("r1", lan.write("r1.conf", conf(200)))
    wrong = conf(100).replace("auth_pass 1234", "auth_pass 9999")
    hivrrp_conf = lan.write("r2.conf", wrong)
    lan.hivrrp("r2", hivrrp_conf)
    capture, log = tmp_path / "r2.pcap", tmp_path / "tcpdump.log"
    dump = lan.popen(r2, "tcpdump", "-i", "eth1", "-U", "-n", "-c", "3", "-w", str(capture),
                     "ip proto 112 and src 192.0.2.1", stdout=subprocess.DEVNULL,
                     stderr=open(log, "w"))
    assert wait_for(lambda: "listening on" in log.read_text(), 10), log.read_text()
    try:
        dump.wait(20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"no adverts from r1:\n{lan.log('r1')[-2000:]}")
    assert wait_for(lambda: "invalid passwd" in lan.log("r2"), 10), lan.log("r2")
    result = subprocess.run([sys.executable, "-m", "hivrrp", "decode", "--json", "--config",
                             str(hivrrp_conf), str(capture)], capture_output=True, text=True,
                            timeout=60)
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 3 and {r["verdict"] for r in records} == {"auth_failure"}
    assert records[0]["detail"] == "(VI_1) received an invalid passwd from 192.0.2.1!"
    assert records[0]["detail"] in lan.log("r2")
    state = subprocess.run([sys.executable, "-m", "hivrrp", "dump", "--socket",
                            str(lan.workdir / "r2.sock")], capture_output=True, text=True,
                           timeout=30)
    [instance] = json.loads(state.stdout)["instances"]
    assert instance["counters"]["auth_failure"] >= 3
