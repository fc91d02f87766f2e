"""The committed keepalived captures, through the library and through `hivrrp decode`."""

import json
import subprocess
import sys

import pytest

from helpers.captures import DATA, assert_matches_scenario
from helpers.keepalived_capture import PACKETS_PER_CAPTURE, SCENARIOS


def capture_path(name):
    matches = sorted(DATA.glob(f"{name}.pcap*"))
    assert len(matches) == 1, matches
    return matches[0]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_keepalived_capture_decodes_as_configured(scenario):
    assert_matches_scenario(capture_path(scenario.name), scenario)


def test_both_file_formats_and_link_types_are_covered():
    suffixes = {p.suffix for p in DATA.glob("keepalived-*")}
    assert suffixes == {".pcap", ".pcapng"}
    # -i any writes Linux cooked v2 (276); peers' captures are Ethernet (1).
    with open(capture_path("keepalived-v3-ipv4-any"), "rb") as f:
        assert int.from_bytes(f.read(24)[20:24], "little") == 276


def hivrrp(*args):
    return subprocess.run([sys.executable, "-m", "hivrrp", *args], capture_output=True,
                          text=True, timeout=60)


def test_decode_command_text():
    result = hivrrp("decode", str(capture_path("keepalived-v2-pass")))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == PACKETS_PER_CAPTURE
    for line in lines:
        assert "10.0.0.1 > 224.0.0.18" in line
        assert "VRRPv2 vrid 51 prio 255 int 1s" in line
        assert 'auth PASS "1234"' in line
        assert line.endswith("addrs 192.0.2.26 verdict ok")


def test_decode_command_json():
    result = hivrrp("decode", "--json", str(capture_path("keepalived-v3-unicast")))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == PACKETS_PER_CAPTURE
    required = {"src", "dst", "ttl", "version", "type", "vrid", "priority", "count",
                "interval_cs", "auth_type", "addresses", "checksum", "error"}
    for record in records:
        assert required <= record.keys()
        assert (record["src"], record["dst"], record["ttl"]) == ("10.0.0.1", "10.0.0.2", 255)
        assert (record["version"], record["vrid"], record["priority"]) == (3, 54, 100)
        assert (record["interval_cs"], record["count"]) == (100, 1)
        assert record["addresses"] == ["203.0.113.54"]
        assert (record["checksum"], record["error"], record["auth_type"]) == ("ok-pseudo",
                                                                              None, None)


def test_decode_command_pcapng_ipv6_text():
    result = hivrrp("decode", str(capture_path("keepalived-v3-ipv6")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("VRRPv3 vrid 52 prio 150 int 0.3s addrs fe80::52,fd00::52 "
                               "verdict ok") == PACKETS_PER_CAPTURE


@pytest.mark.parametrize("content, message", [
    (None, "No such file or directory"),
    (b"", "not a pcap or pcapng capture"),
    (b"\x00garbage that is not a capture file at all" * 3, "not a pcap or pcapng capture"),
])
def test_decode_command_bad_files(tmp_path, content, message):
    path = tmp_path / "input.pcap"
    if content is not None:
        path.write_bytes(content)
    result = hivrrp("decode", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name, cut", [("keepalived-v2-pass", 150),
                                       ("keepalived-v3-ipv6", 300)])
def test_decode_command_truncated_capture(tmp_path, name, cut):
    path = tmp_path / "cut"
    path.write_bytes(capture_path(name).read_bytes()[:cut])
    result = hivrrp("decode", str(path))
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 1  # what came before the damage is still shown
    assert result.stderr.count("\n") == 1 and "truncated capture" in result.stderr
    assert f"{path}: offset " in result.stderr   # where the damage is


def test_version_and_help():
    version = hivrrp("--version")
    assert version.returncode == 0 and version.stdout.startswith("hivrrp, version ")
    console = subprocess.run(["hivrrp", "--version"], capture_output=True, text=True,
                             timeout=60)
    assert console.returncode == 0 and console.stdout == version.stdout
    assert "decode" in hivrrp("--help").stdout
