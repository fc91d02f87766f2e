"""pcap and pcapng files, record by record: link type, time, frame, interface.

Our own reader rather than scapy's, which made `hivrrp decode` need an extra
the standard install lacks. Measured on this project's venv (scapy 2.8.0):
scapy takes 24 MB installed; `import scapy.utils` (its readers) costs 0.11 s
and 42 MB RSS, `import scapy.all` 0.75 s and 73 MB. That is a lot to install
next to a root daemon for two file formats of a few block types, and scapy's
pcapng reader reports a damaged block only as a log warning and then stops as
at the end of the file, without an offset. Here every damage is a
CaptureError naming the byte offset of the record or block that holds it.

Formats (https://ietf-opsawg-wg.github.io/draft-ietf-opsawg-pcap/):
pcap with micro- or nanosecond timestamps, either byte order; pcapng with
any number of sections (each with its byte order) and interfaces (each with
its link type, timestamp resolution and offset, and name: `if_name`, which
`hivrrp decode --config` uses to judge an advert on the interface it came
in on), Enhanced, Simple and obsolete Packet Blocks; other blocks are skipped.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

# A record or block longer than this is taken for corruption rather than
# read into memory (Wireshark's own limit for a pcapng block).
MAX_BLOCK = 16 * 1024 * 1024

PCAP_MAGICS = {  # first four bytes -> (byte order, timestamp fraction units per second)
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000), b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000), b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"      # the same in both byte orders
PCAPNG_BOM = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
IDB, OPB, SPB, EPB = 1, 2, 3, 6
OPT_END, IF_NAME, IF_TSRESOL, IF_TSOFFSET = 0, 2, 9, 14


class CaptureError(Exception):
    """The capture file cannot be read (missing, not a capture, corrupt)."""


@dataclass(frozen=True, slots=True)
class Frame:
    offset: int                # of its record or block in the file
    linktype: int
    time: float | None         # seconds since the epoch; None: the file does not say
    data: bytes
    interface: str | None      # pcapng if_name; None in pcap files or when not given


@dataclass(slots=True)
class _Interface:
    linktype: int
    snaplen: int
    units: int = 1_000_000     # timestamp ticks per second
    offset: int = 0            # seconds added to every timestamp
    name: str | None = None


def frames(path: str) -> Iterator[Frame]:
    """Every packet record of the pcap or pcapng file at `path`, in file order."""
    try:
        with open(path, "rb") as f:
            start = f.read(4)
            if start in PCAP_MAGICS:
                yield from _Reader(f, path).pcap(*PCAP_MAGICS[start])
            elif start == PCAPNG_SHB:
                yield from _Reader(f, path).pcapng()
            else:
                what = "empty file" if not start else f"starts with {start.hex(' ')}"
                raise CaptureError(f"{path}: not a pcap or pcapng capture ({what})")
    except OSError as exc:   # missing, a directory, a read error mid-file (EIO)
        raise CaptureError(f"{path}: {exc.strerror or exc}") from None


class _Reader:
    def __init__(self, f: BinaryIO, path: str) -> None:
        self.f = f
        self.path = path

    def error(self, offset: int, message: str) -> CaptureError:
        return CaptureError(f"{self.path}: offset {offset}: {message}")

    def read(self, offset: int, n: int, what: str) -> bytes:
        data = self.f.read(n)
        if len(data) < n:
            raise self.error(offset, f"{what} cut short, {len(data)} of {n} bytes: "
                                     "truncated capture")
        return data

    # ------------------------------------------------------------- pcap

    def pcap(self, order: str, units: int) -> Iterator[Frame]:
        header = self.read(0, 20, "pcap file header")
        _major, _minor, _zone, _sigfigs, _snaplen, network = struct.unpack(order + "HHiIII",
                                                                          header)
        # The upper bits say whether frames end with an FCS; decoding stops at
        # the IP length anyway.
        linktype = network & 0xFFFF
        offset = 24
        record = struct.Struct(order + "IIII")
        while True:
            head = self.f.read(16)
            if not head:
                return
            if len(head) < 16:
                raise self.error(offset, f"record header cut short, {len(head)} of 16 bytes: "
                                 "truncated capture")
            seconds, fraction, caplen, _wirelen = record.unpack(head)
            if caplen > MAX_BLOCK:
                raise self.error(offset, f"record claims {caplen} bytes: corrupt capture")
            data = self.read(offset, caplen, "record")
            yield Frame(offset, linktype, seconds + fraction / units, data, None)
            offset += 16 + caplen

    # ----------------------------------------------------------- pcapng

    def pcapng(self) -> Iterator[Frame]:
        offset, order = 0, "<"
        interfaces: list[_Interface] = []
        kind = PCAPNG_SHB     # the first block's type, read by frames()
        while True:
            if kind == PCAPNG_SHB:
                # A section header sets the byte order of everything up to the
                # next one, and starts a new list of interfaces.
                rest = self.read(offset, 8, "section header")
                order = PCAPNG_BOM.get(rest[4:8])
                if order is None:
                    raise self.error(offset, f"bad pcapng byte-order magic {rest[4:8].hex(' ')}")
                length = struct.unpack(order + "I", rest[:4])[0]
                body = self.block_body(offset, length, order, rest[4:8], 12)
                major = struct.unpack_from(order + "H", body, 4)[0] if len(body) >= 6 else None
                if major != 1:
                    raise self.error(offset, f"pcapng version {major}, not 1: not supported")
                interfaces = []
            else:
                length = struct.unpack(order + "I", self.read(offset, 4, "block header"))[0]
                body = self.block_body(offset, length, order, b"", 8)
                frame = self.block(offset, struct.unpack(order + "I", kind)[0], body, order,
                                   interfaces)
                if frame is not None:
                    yield frame
            offset += length
            kind = self.f.read(4)
            if not kind:
                return
            if len(kind) < 4:
                raise self.error(offset, f"block header cut short, {len(kind)} of 8 bytes: "
                                 "truncated capture")

    def block_body(self, offset: int, length: int, order: str, have: bytes,
                   read: int) -> bytes:
        """The body of the block at `offset` (`read` bytes of it read already,
        `have` of them body), checked against its trailing length."""
        if length % 4 or length < 12 or length > MAX_BLOCK:
            raise self.error(offset, f"block length {length}: corrupt capture")
        rest = self.read(offset, length - read, "block")
        if struct.unpack(order + "I", rest[-4:])[0] != length:
            raise self.error(offset, "block's trailing length differs from its leading one: "
                             "corrupt capture")
        return have + rest[:-4]

    def block(self, offset: int, kind: int, body: bytes, order: str,
              interfaces: list[_Interface]) -> Frame | None:
        try:
            if kind == IDB:
                interfaces.append(self.interface(offset, body, order))
                return None
            if kind == EPB:
                number, high, low, caplen, _wirelen = struct.unpack_from(order + "IIIII", body)
                return self.packet(offset, interfaces, number, (high << 32) | low, body, 20,
                                   caplen)
            if kind == OPB:
                number, _drops, high, low, caplen, _wirelen = struct.unpack_from(
                    order + "HHIIII", body)
                return self.packet(offset, interfaces, number, (high << 32) | low, body, 20,
                                   caplen)
            if kind == SPB:
                if not interfaces:
                    raise self.error(offset, "packet before any interface description")
                wirelen = struct.unpack_from(order + "I", body)[0]
                snaplen = interfaces[0].snaplen or wirelen
                caplen = min(wirelen, snaplen, len(body) - 4)
                return Frame(offset, interfaces[0].linktype, None, body[4:4 + caplen],
                             interfaces[0].name)
        except struct.error:
            raise self.error(offset, f"block of type {kind} too short for its fields") from None
        return None   # statistics, name resolution, comments...: nothing to decode

    def packet(self, offset: int, interfaces: list[_Interface], number: int, ticks: int,
               body: bytes, start: int, caplen: int) -> Frame:
        if number >= len(interfaces):
            raise self.error(offset, f"packet of interface {number}, but only "
                             f"{len(interfaces)} described before it")
        if start + caplen > len(body):
            raise self.error(offset, f"packet of {caplen} bytes in a block with room "
                             f"for {len(body) - start}: corrupt capture")
        interface = interfaces[number]
        seconds, part = divmod(ticks, interface.units)
        time = seconds + interface.offset + part / interface.units
        return Frame(offset, interface.linktype, time, body[start:start + caplen],
                     interface.name)

    def interface(self, offset: int, body: bytes, order: str) -> _Interface:
        linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", body)
        interface = _Interface(linktype, snaplen)
        for code, value in self.options(offset, body, 8, order):
            if code == IF_NAME:
                interface.name = value.rstrip(b"\0").decode("utf-8", "backslashreplace")
            elif code == IF_TSRESOL and value:
                # High bit set: a negative power of 2, else of 10.
                interface.units = (2 if value[0] & 0x80 else 10) ** (value[0] & 0x7F)
            elif code == IF_TSOFFSET and len(value) == 8:
                interface.offset = struct.unpack(order + "q", value)[0]
        return interface

    def options(self, offset: int, body: bytes, at: int, order: str
                ) -> Iterator[tuple[int, bytes]]:
        while at + 4 <= len(body):
            code, length = struct.unpack_from(order + "HH", body, at)
            if code == OPT_END:
                return
            if at + 4 + length > len(body):
                raise self.error(offset, f"option {code} of {length} bytes overruns its block: "
                                 "corrupt capture")
            yield code, body[at + 4:at + 4 + length]
            at += 4 + length + (-length % 4)
