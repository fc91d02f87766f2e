"""Every broken datagram yields one documented Reason: never an exception, never a crash."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.utils import checksum as rfc1071

from hivrrp import _wire

SRC6, DST6 = "fe80::1", "ff02::12"


def v2_packet(**fields) -> bytes:
    return bytes(IP(src="192.0.2.1", dst="224.0.0.18", ttl=255) /
                 VRRP(**{"vrid": 7, "addrlist": ["192.0.2.26", "192.0.2.27"], **fields}))


def v3_packet(**fields) -> bytes:
    return bytes(IP(src="192.0.2.1", dst="224.0.0.18", ttl=255) /
                 VRRPv3(**{"vrid": 7, "addrlist": ["192.0.2.26"], **fields}))


def v6_payload(**fields) -> bytes:
    return _wire.encode(**{"version": 3, "vrid": 7, "priority": 100, "interval": 100,
                           "addresses": ["fe80::7", "fd00::7"], "family": 6, "src": SRC6,
                           "dst": DST6, **fields})


def reason4(data: bytes, **kw) -> str | None:
    return _wire.decode_ipv4(data, **kw).error


def reason6(data: bytes, hoplimit: int = 255) -> str | None:
    return _wire.decode_ipv6(data, SRC6, DST6, hoplimit).error


def test_reference_packets_are_valid():
    assert reason4(v2_packet()) is None
    assert reason4(v3_packet()) is None
    assert reason6(v6_payload()) is None


@pytest.mark.parametrize("make", [v2_packet, v3_packet])
def test_ipv4_truncated_at_every_byte(make):
    data = make()
    for cut in range(len(data)):
        assert reason4(data[:cut]) == "length", cut


def test_ipv6_truncated_at_every_byte():
    data = v6_payload()
    for cut in range(len(data)):
        assert reason6(data[:cut]) == "length", cut


def test_ipv4_link_padding_is_ignored_but_ipv6_extra_bytes_are_not():
    # IPv4 knows its length (total length field): Ethernet padding is harmless.
    assert reason4(v2_packet() + b"\0" * 6) is None
    # An IPv6 raw socket hands over the payload: every byte counts.
    assert reason6(v6_payload() + b"\0" * 4) == "length"


def test_ip_total_length_beyond_the_datagram():
    data = bytearray(v2_packet())
    data[2:4] = struct.pack("!H", len(data) + 4)
    assert reason4(bytes(data)) == "length"


@pytest.mark.parametrize("make, count", [
    (v2_packet, 0), (v2_packet, 1), (v2_packet, 3), (v2_packet, 255),
    (v3_packet, 0), (v3_packet, 2), (v3_packet, 3), (v3_packet, 255),
])
def test_wrong_address_count(make, count):
    # scapy fixes the checksum up, so only the count disagrees with the length.
    assert reason4(make(ipcount=count)) == "length"


def test_wrong_count_ipv6():
    data = bytearray(v6_payload())
    data[3] = 3
    assert reason6(bytes(data)) == "length"


@pytest.mark.parametrize("make", [v2_packet, v3_packet])
def test_every_single_bit_flip_in_the_vrrp_message_is_caught(make):
    data = make()
    for byte in range(20, len(data)):
        for bit in range(8):
            broken = bytearray(data)
            broken[byte] ^= 1 << bit
            # Any flip changes version/type/length or breaks the checksum.
            assert reason4(bytes(broken)) is not None, (byte, bit)


def test_corrupted_checksums():
    for make, reason in ((v2_packet, "checksum"), (v3_packet, "checksum")):
        data = bytearray(make())
        data[26] ^= 0xFF
        assert reason4(bytes(data)) == reason
        advert = _wire.decode_ipv4(bytes(data))
        assert advert.checksum == "bad" and advert.vrid == 7
    data = bytearray(v6_payload())
    data[7] ^= 0x01
    assert reason6(bytes(data)) == "checksum"


def carp_advert(vhid: int, advskew: int, authlen: int, advbase: int, counter: bytes,
                hmac: bytes) -> bytes:
    """CARP (OpenBSD ip_carp.h) shares IP protocol 112 and version 2 with VRRPv2."""
    body = struct.pack("!BBBBBBH8s20s", 0x21, vhid, advskew, authlen, 0, advbase, 0, counter,
                       hmac)
    body = body[:6] + struct.pack("!H", rfc1071(body)) + body[8:]
    return bytes(IP(src="192.0.2.1", dst="224.0.0.18", ttl=255, proto=112) / body)


@given(vhid=st.integers(1, 255), advskew=st.integers(0, 254), advbase=st.integers(1, 255),
       authlen=st.sampled_from([0, 1, 2, 3, 4, 6, 7, 8]), counter=st.binary(min_size=8,
       max_size=8), hmac=st.binary(min_size=20, max_size=20))
def test_carp_is_rejected_by_length(vhid, advskew, authlen, advbase, counter, hmac):
    # CARP is 36 bytes whatever its authlen (VRRP's count byte) says; only
    # authlen 5 would make it the same shape as a 5-address VRRPv2 advert.
    advert = _wire.decode_ipv4(carp_advert(vhid, advskew, authlen, advbase, counter, hmac))
    assert advert.error == "length"


@pytest.mark.parametrize("ttl", [0, 1, 64, 254])
def test_ttl_below_255(ttl):
    data = bytes(IP(src="192.0.2.1", dst="224.0.0.18", ttl=ttl) / VRRP(vrid=9))
    advert = _wire.decode_ipv4(data)
    assert advert.error == "ttl" and advert.ttl == ttl
    assert advert.vrid == 9  # header still shown, for troubleshooting
    # A socket for routed unicast peers may accept less.
    assert reason4(data, min_ttl=ttl) is None
    assert reason6(v6_payload(), hoplimit=ttl) == "ttl"


def test_wrong_ip_protocol():
    data = bytearray(v2_packet())
    data[9] = 17
    assert reason4(bytes(data)) == "protocol"


@pytest.mark.parametrize("first_byte", [0x65, 0x44, 0x40, 0x00])
def test_unusable_ipv4_header(first_byte):
    data = bytearray(v2_packet())
    data[0] = first_byte  # IP version 6, IHL 4, IHL 0, version 0
    assert reason4(bytes(data)) == "ip_header"


@pytest.mark.parametrize("version", [0, 1, 4, 5, 15])
def test_unknown_vrrp_version(version):
    assert reason4(v2_packet(version=version)) == "version"
    assert reason4(v3_packet(version=version)) == "version"


def test_v2_over_ipv6_is_a_version_error():
    data = bytearray(v6_payload())
    data[0] = 0x21
    assert reason6(bytes(data)) == "version"


@pytest.mark.parametrize("kind", [0, 2, 3, 15])
def test_unknown_type(kind):
    assert reason4(v2_packet(type=kind)) == "type"
    assert reason4(v3_packet(type=kind)) == "type"


def test_vrid_zero_and_interval_zero():
    assert reason4(v2_packet(vrid=0)) == "vrid"
    assert reason4(v3_packet(vrid=0)) == "vrid"
    assert reason4(v2_packet(adv=0)) == "interval"
    assert reason4(v3_packet(adv=0)) == "interval"
    # Reserved bits set do not make a zero interval valid.
    assert reason4(v3_packet(adv=0, res=0xF)) == "interval"


REASONS = set(_wire.REASONS[1:]) | {None}


@given(st.binary(max_size=120))
def test_random_bytes_as_ipv4(data):
    assert reason4(data) in REASONS


@given(st.binary(max_size=120), st.integers(0, 255))
def test_random_bytes_as_ipv6(data, hoplimit):
    assert reason6(data, hoplimit) in REASONS


@given(header=st.binary(min_size=20, max_size=20), body=st.binary(max_size=80))
def test_random_bytes_behind_a_plausible_ipv4_header(header, body):
    # Keep version/IHL/length/protocol sane so the random part reaches the VRRP checks.
    hdr = bytearray(header)
    hdr[0], hdr[8], hdr[9] = 0x45, 255, 112
    hdr[2:4] = struct.pack("!H", 20 + len(body))
    advert = _wire.decode_ipv4(bytes(hdr) + body)
    assert advert.error in REASONS
    if advert.error is None:
        assert advert.version in (2, 3) and advert.vrid > 0 and advert.interval > 0


def test_reason_labels_are_stable():
    # These strings are metric label values: renaming one breaks dashboards.
    assert _wire.REASONS == ("ok", "ip_header", "protocol", "length", "ttl", "version", "type",
                             "checksum", "vrid", "interval")
    assert [r.name for r in _wire.Reason] == [label.upper() for label in _wire.REASONS]
