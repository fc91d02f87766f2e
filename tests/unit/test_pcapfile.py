"""hivrrp's own pcap/pcapng reader, checked against scapy's readers and writers.

scapy is the independent implementation: files it writes must read back the
same through both readers, and files built here byte by byte (big-endian
pcapng, timestamp resolutions, Simple and obsolete Packet Blocks, several
sections) must read the same through scapy's reader as through ours.
"""

import struct
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import CookedLinux, Ether
from scapy.layers.vrrp import VRRP, VRRPv3
from scapy.utils import PcapNgWriter, PcapWriter, RawPcapReader

from hivrrp.tools.decode.capture import read_vrrp
from hivrrp.tools.decode.pcapfile import CaptureError, frames

V4 = IP(src="192.0.2.1", dst="224.0.0.18", ttl=255) / VRRP(vrid=1, addrlist=["192.0.2.9"])
V6 = IPv6(src="fe80::1", dst="ff02::12", hlim=255) / VRRPv3(vrid=2, addrlist=["fd00::9"])


def ours(path):
    return [(f.linktype, f.time, f.data, f.interface) for f in frames(str(path))]


def scapys(path):
    """The same records through scapy's readers (pcap or pcapng, by the file)."""
    out = []
    with RawPcapReader(str(path)) as reader:
        for data, meta in reader:
            if hasattr(meta, "tsresol"):
                time = (((meta.tshigh or 0) << 32) | (meta.tslow or 0)) / meta.tsresol
                name = meta.ifname.decode() if meta.ifname is not None else None
                out.append((meta.linktype, time, data, name))
            else:
                time = meta.sec + meta.usec / (1e9 if reader.nano else 1e6)
                out.append((reader.linktype, time, data, None))
    return out


def assert_same(path):
    mine, theirs = ours(path), scapys(path)
    assert len(mine) == len(theirs) > 0
    for a, b in zip(mine, theirs):
        assert a[0] == b[0] and a[2] == b[2] and a[3] == b[3]
        assert a[1] == pytest.approx(b[1], abs=1e-6)   # float seconds since 1970: µs
    return mine


@pytest.mark.parametrize("endianness", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_pcap_written_by_scapy(tmp_path, endianness, nano):
    path = tmp_path / "x.pcap"
    packets = [Ether() / V4, Ether() / V6, Ether() / V4]
    for k, p in enumerate(packets):
        p.time = 1700000000 + k + 0.123456789 if nano else 1700000000 + k + 0.25
    with PcapWriter(str(path), endianness=endianness, nano=nano) as w:
        for p in packets:
            w.write(p)
    mine = assert_same(path)
    assert [m[2] for m in mine] == [bytes(p) for p in packets]
    assert mine[1][1] == pytest.approx(1700000001.123456789 if nano else 1700000001.25,
                                       abs=1e-6)


def test_nanosecond_pcap_keeps_nanoseconds(tmp_path):
    path = tmp_path / "nano.pcap"
    p = Ether() / V4
    p.time = 1.123456789
    with PcapWriter(str(path), nano=True) as w:
        w.write(p)
    assert ours(path)[0][1] == pytest.approx(1.123456789, abs=1e-12)


def test_pcapng_two_interfaces_of_different_link_types_by_scapy(tmp_path):
    path = tmp_path / "two.pcapng"
    eth, cooked = Ether() / V4, CookedLinux(proto=0x86DD) / V6
    eth.sniffed_on, cooked.sniffed_on = "veth0", "any"
    eth.time, cooked.time = 1700000000.5, 1700000002.75
    with PcapNgWriter(str(path)) as w:
        for p in (eth, cooked, eth):
            w.write(p)
    mine = assert_same(path)
    assert [(m[0], m[3]) for m in mine] == [(1, "veth0"), (113, "any"), (1, "veth0")]
    datagrams = list(read_vrrp(str(path)))
    assert [(d.family, d.interface) for d in datagrams] == [(4, "veth0"), (6, "any"),
                                                            (4, "veth0")]


# ------------------------------------------------------ pcapng built by hand

class Ng:
    """A pcapng file block by block, in either byte order."""

    def __init__(self, order="<"):
        self.order = order
        self.data = b""

    def block(self, kind, body):
        body += b"\0" * (-len(body) % 4)
        n = len(body) + 12
        self.data += struct.pack(self.order + "II", kind, n) + body + struct.pack(
            self.order + "I", n)
        return self

    def option(self, code, value):
        return (struct.pack(self.order + "HH", code, len(value)) + value
                + b"\0" * (-len(value) % 4))

    def shb(self, major=1):
        return self.block(0x0A0D0D0A, struct.pack(self.order + "IHHq", 0x1A2B3C4D, major, 0,
                                                  -1))

    def idb(self, linktype, name=None, tsresol=None, tsoffset=None, snaplen=0):
        opts = b""
        if name is not None:
            opts += self.option(2, name.encode())
        if tsresol is not None:
            opts += self.option(9, bytes([tsresol]))
        if tsoffset is not None:
            opts += self.option(14, struct.pack(self.order + "q", tsoffset))
        if opts:
            opts += self.option(0, b"")
        return self.block(1, struct.pack(self.order + "HHI", linktype, 0, snaplen) + opts)

    def epb(self, interface, ticks, frame):
        return self.block(6, struct.pack(self.order + "IIIII", interface, ticks >> 32,
                                         ticks & 0xFFFFFFFF, len(frame), len(frame)) + frame)

    def opb(self, interface, ticks, frame):
        return self.block(2, struct.pack(self.order + "HHIIII", interface, 0, ticks >> 32,
                                         ticks & 0xFFFFFFFF, len(frame), len(frame)) + frame)

    def spb(self, frame):
        return self.block(3, struct.pack(self.order + "I", len(frame)) + frame)


ETH_V4, ETH_V6 = bytes(Ether() / V4), bytes(Ether() / V6)
SLL_V6 = bytes(CookedLinux(proto=0x86DD) / V6)


@pytest.mark.parametrize("order", ["<", ">"])
def test_hand_built_pcapng_agrees_with_scapy(tmp_path, order):
    path = tmp_path / "hand.pcapng"
    ng = (Ng(order).shb()
          .idb(1, "eth0")                       # microseconds (the default)
          .idb(113, "any", tsresol=9)           # nanoseconds
          .idb(1, None, tsresol=0x80 | 10)      # 1/1024 s
          .block(4, b"\0" * 8)                  # name resolution: skipped
          .epb(0, 1_700_000_000_250_000, ETH_V4)
          .epb(1, 1_700_000_001_123_456_789, SLL_V6)
          .opb(2, 1_700_000_002 * 1024 + 512, ETH_V6)
          .block(5, struct.pack(order + "III", 0, 0, 0)))   # statistics: skipped
    path.write_bytes(ng.data)
    mine = assert_same(path)
    assert [(m[0], m[3]) for m in mine] == [(1, "eth0"), (113, "any"), (1, None)]
    assert [m[1] for m in mine] == pytest.approx([1700000000.25, 1700000001.123456789,
                                                  1700000002.5], abs=1e-6)


def test_sections_in_both_byte_orders_each_with_its_interfaces(tmp_path):
    path = tmp_path / "sections.pcapng"
    first = Ng("<").shb().idb(1, "eth0").epb(0, 1_000_000, ETH_V4)
    # A new section forgets the interfaces before it: interface 0 is now SLL.
    second = Ng(">").shb().idb(113, "any").epb(0, 2_000_000, SLL_V6)
    path.write_bytes(first.data + second.data)
    # Not against scapy: its reader keeps the first section's interfaces
    # (and gives the second packet link type 1), where pcapng numbers
    # interfaces per section.
    assert ours(path) == [(1, 1.0, ETH_V4, "eth0"), (113, 2.0, SLL_V6, "any")]


def test_timestamp_offset_and_simple_packet_block(tmp_path):
    path = tmp_path / "offset.pcapng"
    ng = (Ng().shb().idb(1, "eth0", tsoffset=1_700_000_000, snaplen=30)
          .epb(0, 1_500_000, ETH_V4).spb(ETH_V4))
    path.write_bytes(ng.data)
    # if_tsoffset: seconds added to every timestamp of the interface (scapy ignores it).
    assert ours(path) == [(1, 1_700_000_001.5, ETH_V4, "eth0"),
                          (1, None, ETH_V4[:30], "eth0")]   # SPB: no time; cut at snaplen


def test_a_clock_beyond_time_t_is_printed_not_a_traceback(tmp_path):
    # An if_tsoffset far outside time_t (a writer's bug, or a hostile file):
    # `hivrrp decode` printed a traceback from time.gmtime().
    from click.testing import CliRunner

    from hivrrp.cli import main
    path = tmp_path / "far.pcapng"
    path.write_bytes(Ng().shb().idb(1, "eth0", tsoffset=2**62).epb(0, 1, ETH_V4).data)
    result = CliRunner().invoke(main, ["decode", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("4611686018427387904.000000s 192.0.2.1 > 224.0.0.18 ")


# --------------------------------------------------------- damaged files

def pcap_bytes(frames_, order="<"):
    out = struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for frame in frames_:
        out += struct.pack(order + "IIII", 1, 0, len(frame), len(frame)) + frame
    return out


GOOD_PCAP = pcap_bytes([ETH_V4, ETH_V4])
GOOD_NG = Ng().shb().idb(1, "eth0").epb(0, 1, ETH_V4).epb(0, 2, ETH_V4).data
SECOND_RECORD = 24 + 16 + len(ETH_V4)
NG_EPB1 = 28 + 32                    # SHB, IDB with if_name "eth0" and end of options
NG_EPB2 = NG_EPB1 + 32 + len(ETH_V4) + (-len(ETH_V4) % 4)


def patched(data, at, value):
    return data[:at] + value + data[at + len(value):]


DAMAGE = {
    "pcap header cut": (GOOD_PCAP[:10], 0, "pcap file header cut short"),
    "pcap record header cut": (GOOD_PCAP[:SECOND_RECORD + 7], SECOND_RECORD,
                               "record header cut short, 7 of 16"),
    "pcap record cut": (GOOD_PCAP[:-5], SECOND_RECORD, "truncated capture"),
    "pcap huge record": (patched(GOOD_PCAP, SECOND_RECORD + 8, struct.pack("<I", 1 << 30)),
                         SECOND_RECORD, "corrupt capture"),
    "pcapng block cut": (GOOD_NG[:-3], NG_EPB2, "truncated capture"),
    "pcapng block header cut": (GOOD_NG[:NG_EPB2 + 2], NG_EPB2, "block header cut short"),
    "pcapng odd block length": (patched(GOOD_NG, NG_EPB2 + 4, struct.pack("<I", 77)), NG_EPB2,
                                "block length 77"),
    "pcapng trailer differs": (GOOD_NG[:-4] + struct.pack("<I", 12), NG_EPB2,
                               "trailing length differs"),
    "pcapng unknown interface": (patched(GOOD_NG, NG_EPB2 + 8, struct.pack("<I", 3)), NG_EPB2,
                                 "packet of interface 3, but only 1 described"),
    "pcapng caplen beyond block": (patched(GOOD_NG, NG_EPB2 + 20, struct.pack("<I", 999)),
                                   NG_EPB2, "packet of 999 bytes in a block with room"),
    "pcapng bad byte order": (patched(GOOD_NG, 8, b"\0\0\0\0"), 0, "byte-order magic"),
    "pcapng version 2": (patched(GOOD_NG, 12, struct.pack("<H", 2)), 0, "version 2"),
    "pcapng option overrun": (patched(GOOD_NG, 28 + 16 + 2, struct.pack("<H", 200)), 28,
                              "option 2 of 200 bytes overruns"),
    "pcapng short epb": (Ng().shb().idb(1).block(6, b"\0" * 8).data, 28 + 20,
                         "block of type 6 too short"),
}


@pytest.mark.parametrize("name", DAMAGE)
def test_damage_is_an_error_naming_its_offset(tmp_path, name):
    data, offset, words = DAMAGE[name]
    path = tmp_path / "damaged"
    path.write_bytes(data)
    with pytest.raises(CaptureError) as caught:
        list(frames(str(path)))
    message = str(caught.value)
    assert f"{path}: offset {offset}: " in message and words in message, message


@pytest.mark.parametrize("name", ["pcap record cut", "pcapng unknown interface"])
def test_decode_command_on_damage(tmp_path, name):
    data, offset, words = DAMAGE[name]
    path = tmp_path / "damaged"
    path.write_bytes(data)
    result = subprocess.run([sys.executable, "-m", "hivrrp", "decode", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 1      # the packet before the damage
    assert result.stderr == f"hivrrp decode: {path}: offset {offset}: " + \
        result.stderr.split(f"offset {offset}: ", 1)[1]
    assert words in result.stderr and result.stderr.count("\n") == 1


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.sampled_from([GOOD_PCAP, GOOD_NG, pcap_bytes([ETH_V4], ">")]),
       cut=st.integers(0, 400), flips=st.lists(st.tuples(st.integers(0, 400),
                                                         st.integers(1, 255)), max_size=4))
def test_any_damage_is_a_capture_error_or_a_prefix(tmp_path_factory, data, cut, flips):
    """Whatever the damage: the frames read, then at most a CaptureError; no
    other exception (a traceback for the operator), no endless loop."""
    damaged = bytearray(data[:cut])
    for at, mask in flips:
        if at < len(damaged):
            damaged[at] ^= mask
    path = tmp_path_factory.mktemp("fuzz") / "f"
    path.write_bytes(bytes(damaged))
    got = []
    try:
        for frame in frames(str(path)):
            got.append(frame)
            assert len(got) <= 2
    except CaptureError as exc:
        assert str(exc).startswith(f"{path}: ")


def test_decode_needs_no_scapy(tmp_path):
    """The standard install has no scapy: decode must not need it."""
    path = tmp_path / "x.pcapng"
    path.write_bytes(GOOD_NG)
    code = ("import sys; sys.modules['scapy'] = None; sys.argv = ['hivrrp', 'decode', "
            f"{str(path)!r}]; from hivrrp.cli import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("VRRPv2 vrid 1 ") == 2
