"""`hivrrp decode --config`: each advert judged as this router's daemon would.

Captures made with scapy (an independent encoder), one advert per way a
router can refuse one, judged through the command line; every drop reason
the engine has must be reachable here, so a new reason cannot be missing
from decode.
"""

import json

import pytest
from click.testing import CliRunner
from hivrrp._engine import DROP_RECORD_REASONS
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.utils import PcapNgWriter, wrpcap

from helpers.captures import DATA
from helpers.keepalived_capture import SCENARIOS, peer_conf
from hivrrp.cli import main

CONF = """
vrrp_instance V2 {
    interface eth0
    virtual_router_id 51
    priority 100
    advert_int 1
    authentication {
        auth_type PASS
        auth_pass secret
    }
    virtual_ipaddress {
        192.0.2.51/24
        192.0.2.52/24
    }
}
vrrp_instance V3 {
    interface eth0
    version 3
    virtual_router_id 53
    advert_int 0.5
    virtual_ipaddress {
        198.51.100.53/24
    }
}
vrrp_instance UNICAST {
    interface eth0
    version 3
    virtual_router_id 54
    unicast_src_ip 10.0.0.2
    unicast_peer {
        10.0.0.1
    }
    virtual_ipaddress {
        203.0.113.54/24
    }
}
vrrp_instance SIX {
    interface eth0
    version 3
    virtual_router_id 52
    virtual_ipaddress {
        fd00::52/64
    }
}
vrrp_instance MINE {
    interface eth0
    virtual_router_id 55
    mcast_src_ip 192.0.2.2
    virtual_ipaddress {
        192.0.2.55/24
    }
}
vrrp_instance OWNER {
    interface eth0
    virtual_router_id 56
    priority 255
    owner_ignore_adverts
    virtual_ipaddress {
        192.0.2.56/24
    }
}
vrrp_instance ELSEWHERE {
    interface eth1
    virtual_router_id 61
    virtual_ipaddress {
        192.0.2.61/24
    }
}
"""

PEER = "192.0.2.1"
GROUP4 = "224.0.0.18"


def auth(password: bytes):
    data = password.ljust(8, b"\0")
    return {"authtype": 1, "auth1": int.from_bytes(data[:4], "big"),
            "auth2": int.from_bytes(data[4:], "big")}


def v2(vrid=51, addrs=("192.0.2.51", "192.0.2.52"), password=b"secret", src=PEER, dst=GROUP4,
       ttl=255, ip=None, **fields):
    header = IP(src=src, dst=dst, ttl=ttl, **(ip or {}))
    fields = {"priority": 100, "adv": 1, **(auth(password) if password is not None else {}),
              **fields}
    vrrp = VRRP(vrid=vrid, addrlist=list(addrs), **fields)
    return Ether() / header / vrrp


def v3(vrid=53, addrs=("198.51.100.53",), src=PEER, dst=GROUP4, adv=50, **fields):
    return Ether() / IP(src=src, dst=dst, ttl=255) / VRRPv3(vrid=vrid, priority=100, adv=adv,
                                                            addrlist=list(addrs), **fields)


def corrupt_checksum(packet):
    raw = bytearray(bytes(packet))
    raw[-1] ^= 0x01     # the last byte of the auth data: the checksum no longer matches
    return Ether(bytes(raw))


# reason -> an advert from this router's peer that the daemon drops for it
CASES = {
    "ok": v2(),
    "unknown_vrid": v2(vrid=99),
    "version_mismatch": v3(vrid=51, addrs=("192.0.2.51", "192.0.2.52")),
    "auth_failure": v2(password=b"wrong"),
    "auth_type_mismatch": v2(password=None),
    "auth_invalid_type": v2(password=None, authtype=3),
    "interval_mismatch": v2(adv=3),
    "address_count": v2(addrs=("192.0.2.51",)),
    "address_list": v2(addrs=("192.0.2.51", "192.0.2.99")),
    "not_peer": v3(vrid=54, addrs=("203.0.113.54",), src="10.0.0.9", dst="10.0.0.2"),
    "not_group": v3(dst="224.0.0.19"),
    "ttl": v2(ttl=64),
    "checksum": corrupt_checksum(v2()),
    "length": v2(ipcount=3),         # two addresses in the message
    "version": v2(version=1),
    "type": v2(type=2),
    "vrid": v2(vrid=0),
    "interval": v3(adv=0),
    "ip_header": v2(ip={"ihl": 4}),
    "owner": v2(vrid=56, addrs=("192.0.2.56",), password=None, priority=255),
    "own_advert": v2(vrid=55, addrs=("192.0.2.55",), password=None, src="192.0.2.2"),
}
# The reader yields only IP protocol 112: "protocol" never reaches the engine.
# follow_mismatch is no drop: a master follower accepts and counts the advert,
# and decode never runs the timers that make a master.
NOT_FROM_CAPTURES = {"", "protocol", "follow_mismatch"}


def decode(tmp_path, packets, *args, conf=CONF, interfaces=None):
    conf_path = tmp_path / "keepalived.conf"
    conf_path.write_text(conf)
    capture = tmp_path / ("c.pcapng" if interfaces else "c.pcap")
    if interfaces:
        with PcapNgWriter(str(capture)) as w:
            for packet, name in zip(packets, interfaces):
                packet.sniffed_on = name
                w.write(packet)
    else:
        wrpcap(str(capture), packets)
    result = CliRunner().invoke(main, ["decode", "--config", str(conf_path), *args,
                                       str(capture)])
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def verdicts(tmp_path, packets, *args, **kw):
    result = decode(tmp_path, packets, "--json", *args, **kw)
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_every_engine_drop_reason_has_a_case():
    assert set(DROP_RECORD_REASONS) - NOT_FROM_CAPTURES <= set(CASES)


@pytest.mark.parametrize("reason", CASES)
def test_each_reason(tmp_path, reason):
    [record] = verdicts(tmp_path, [CASES[reason]])
    assert record["verdict"] == reason, record
    if reason not in ("ok", "own_advert"):
        assert record["detail"], record
        # Every drop shows in one of the daemon's metrics, and decode names which.
        assert record["counters"], record


def test_what_the_kernel_drops_is_not_ok(tmp_path):
    # A bad IPv4 header checksum: ip_rcv() drops it, no raw socket sees it, so
    # the daemon never judges it; the engine alone would have said ok.
    good = v2()
    raw = bytearray(bytes(good))
    raw[14 + 10] ^= 0xFF                      # the IP header checksum's first byte
    [record] = verdicts(tmp_path, [Ether(bytes(raw))])
    assert record["verdict"] == "ip_checksum", record
    assert "the kernel drops it" in record["detail"] and record["counters"] == []
    [fine] = verdicts(tmp_path, [good])
    assert fine["verdict"] == "ok"


def test_counters_are_the_daemons_metrics(tmp_path):
    records = verdicts(tmp_path, [CASES["ok"], CASES["interval_mismatch"],
                                  CASES["unknown_vrid"], CASES["version_mismatch"]],
                       interfaces=["eth0"] * 4)
    assert [r["counters"] for r in records] == [
        ["hivrrp_adverts_received_total"],
        ['hivrrp_instance_receive_errors_total{reason="interval"}'],
        ['hivrrp_receive_errors_total{interface="eth0",reason="unknown_vrid"}'],
        ['hivrrp_receive_errors_total{interface="eth0",reason="version_mismatch"}']]


def test_text_lines_say_the_daemons_words(tmp_path):
    result = decode(tmp_path, [CASES["ok"], CASES["auth_failure"], CASES["interval_mismatch"],
                               CASES["address_list"], CASES["unknown_vrid"]])
    lines = result.stdout.splitlines()
    assert lines[0].endswith("verdict ok (V2 on eth0)")
    # droplog's lines, as the daemon logs them (keepalived's words)
    assert lines[1].endswith("verdict auth_failure: (V2) received an invalid passwd from "
                             "192.0.2.1!")
    assert lines[2].endswith("verdict interval_mismatch: (V2) advertisement interval mismatch "
                             "with 192.0.2.1 mine=1 sec rcv'd=3 sec")
    assert lines[3].endswith("verdict address_list: (V2) ip address associated with VRID 51 "
                             "not present in advert from 192.0.2.1: 192.0.2.52")
    assert lines[4].endswith("verdict unknown_vrid: (any interface): advert from 192.0.2.1 "
                             "for VRID 99, which no instance has here")
    # A pcap names no interface: said once, on stderr.
    assert result.stderr.count("does not say which interface") == 1


def test_ipv6(tmp_path):
    good = Ether() / IPv6(src="fe80::1", dst="ff02::12", hlim=255) / VRRPv3(
        vrid=52, priority=100, adv=100, addrlist=["fd00::52"])
    wrong = Ether() / IPv6(src="fe80::1", dst="ff02::12", hlim=255) / VRRPv3(
        vrid=52, priority=100, adv=100, addrlist=["fd00::53"])
    assert [r["verdict"] for r in verdicts(tmp_path, [good, wrong])] == ["ok", "address_list"]


def test_pcapng_interface_names_decide_the_instance(tmp_path):
    """VRID 61 is configured on eth1 only: on eth0 nobody has it."""
    packets = [v2(vrid=61, addrs=("192.0.2.61",), password=None) for _ in range(3)]
    records = verdicts(tmp_path, packets, interfaces=["eth1", "eth0", "eth9"])
    assert [(r["verdict"], r["interface"], r["matched"]) for r in records] == [
        ("ok", "eth1", "interface"), ("unknown_vrid", "eth0", "interface"),
        ("unknown_vrid", "eth9", "interface")]
    assert records[0]["instance"] == "ELSEWHERE"
    assert records[1]["detail"] == ("eth0: advert from 192.0.2.1 for VRID 61, which no "
                                    "instance has here")


def test_without_names_matched_by_vrid_and_interface_option_overrides(tmp_path):
    packet = v2(vrid=61, addrs=("192.0.2.61",), password=None)
    [by_vrid] = verdicts(tmp_path, [packet])
    assert (by_vrid["verdict"], by_vrid["interface"], by_vrid["matched"]) == ("ok", "eth1",
                                                                              "vrid")
    [forced] = verdicts(tmp_path, [packet], "--interface", "eth0")
    assert (forced["verdict"], forced["interface"]) == ("unknown_vrid", "eth0")
    # "any" (tcpdump -i any) says nothing about the interface either.
    [anyif] = verdicts(tmp_path, [packet], interfaces=["any"])
    assert (anyif["verdict"], anyif["matched"]) == ("ok", "vrid")


def test_config_id(tmp_path):
    conf = CONF.replace("auth_pass secret", "@left auth_pass secret\n@right auth_pass other")
    left = verdicts(tmp_path, [CASES["ok"]], "-i", "left", conf=conf)
    right = verdicts(tmp_path, [CASES["ok"]], "-i", "right", conf=conf)
    assert (left[0]["verdict"], right[0]["verdict"]) == ("ok", "auth_failure")


def test_invalid_config_judges_nothing(tmp_path):
    conf_path = tmp_path / "bad.conf"
    conf_path.write_text("vrrp_instance X {\n    interface eth0\n    virtual_router_id 300\n}\n")
    capture = tmp_path / "c.pcap"
    wrpcap(str(capture), [CASES["ok"]])
    result = CliRunner().invoke(main, ["decode", "--config", str(conf_path), str(capture)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "virtual_router_id: 300 is out of range" in result.stderr
    assert "the daemon would not run it" in result.stderr


def test_config_options_need_config(tmp_path):
    capture = tmp_path / "c.pcap"
    wrpcap(str(capture), [CASES["ok"]])
    result = CliRunner().invoke(main, ["decode", "-i", "x", str(capture)])
    assert result.exit_code == 2 and "need --config" in result.stderr


def test_without_config_the_verdict_is_the_packets_own(tmp_path):
    """Plain decode is unchanged: only what is wrong with the packet itself."""
    capture = tmp_path / "c.pcap"
    wrpcap(str(capture), [CASES["auth_failure"], CASES["ttl"]])
    result = CliRunner().invoke(main, ["decode", str(capture)])
    assert [line.rsplit(" ", 1)[1] for line in result.stdout.splitlines()] == ["ok", "ttl"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_committed_keepalived_captures_are_ok_for_its_peer(tmp_path, scenario):
    """Real keepalived adverts (tests/data), judged by a peer with the same configuration."""
    conf_path = tmp_path / "peer.conf"
    conf_path.write_text(peer_conf("eth0"))
    [capture] = DATA.glob(f"{scenario.name}.pcap*")
    result = CliRunner().invoke(main, ["decode", "--json", "--config", str(conf_path),
                                       str(capture)])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records and {(r["verdict"], r["instance"]) for r in records} == {
        ("ok", scenario.name.upper().replace("-", "_"))}
