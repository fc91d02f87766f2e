"""A stand-in for the kernel's nfnetlink (nftables transactions), for the firewall's
tests without root."""

import errno
import struct

from hivrrp.kernel import nftables as nft
from hivrrp.kernel.addrbatch import Change
from hivrrp.kernel.firewall import Firewall
from hivrrp.kernel.firewall_policy import Settings
from hivrrp.kernel.rtnl import HEADER, NLMSG_DONE, NLMSG_ERROR, messages

NLM_F_MULTI = 0x2


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def kind(message_type: int) -> int:
    return message_type & 0xFF


class Kernel:
    """Answers batches as nfnetlink_rcv_batch does: an ack for BEGIN, then either
    an ack for END (committed) or the errors of the refused messages."""

    def __init__(self):
        self.batches: list[list[tuple[int, int, bytes]]] = []   # (type, seq, body)
        self.queue: list[bytes] = []
        self.refuse: dict[int, int] = {}     # message kind -> errno, for the next batch
        self.refuse_all: int | None = None   # errno for every batch (the kernel cannot)
        # What a dump of the tables (GETTABLE) lists: families with a table of
        # `name` and hivrrp's mark, and any others as (family, name, user data).
        self.name = "hivrrp"
        self.tables: set[int] = set()
        self.others: list[tuple[int, str, bytes | None]] = []
        self.dumps = 0                       # tables listed (GETTABLE dumps) so far

    def send(self, data: bytes) -> int:
        parsed = [(t, seq, body) for t, _flags, seq, body in messages(data)]
        if kind(parsed[0][0]) == nft.NFT_MSG_GETTABLE:
            self.dumps += 1
            self.queue.append(self._dump(parsed[0][1]))
            return len(data)
        assert parsed[0][0] == nft.NFNL_MSG_BATCH_BEGIN and parsed[-1][0] == nft.NFNL_MSG_BATCH_END
        self.batches.append(parsed)
        begin, end = parsed[0][1], parsed[-1][1]
        if self.refuse_all is not None:
            self.queue.append(self._ack(begin, self.refuse_all))
            return len(data)
        self.queue.append(self._ack(begin, 0))
        failed = [(seq, self.refuse[kind(t)]) for t, seq, _ in parsed[1:-1]
                  if kind(t) in self.refuse]
        self.refuse = {}
        for seq, code in failed:
            self.queue.append(self._ack(seq, code))
        if not failed:
            self.queue.append(self._ack(end, 0))
            self._commit(parsed[1:-1])
        return len(data)

    def _commit(self, parsed) -> None:
        """The tables a committed transaction made and deleted, for later dumps."""
        for message_type, _seq, body in parsed:
            if kind(message_type) not in (nft.NFT_MSG_NEWTABLE, nft.NFT_MSG_DELTABLE):
                continue
            family, name, _userdata = nft.parse_table(body)
            if kind(message_type) == nft.NFT_MSG_DELTABLE:
                self.others = [t for t in self.others if t[:2] != (family, name)]
                if name == self.name:
                    self.tables.discard(family)
            elif name == self.name and not any(t[:2] == (family, name) for t in self.others):
                self.tables.add(family)

    def _dump(self, seq: int) -> bytes:
        listed = [(f, self.name, nft.MARK) for f in sorted(self.tables)] + self.others
        out = b""
        for family, name, userdata in listed:
            attrs = _attr(nft.NFTA_TABLE_NAME, name.encode() + b"\0")
            if userdata is not None:
                attrs += _attr(nft.NFTA_TABLE_USERDATA, userdata)
            body = nft.NFGENMSG.pack(nft.NFPROTO[family], 0, 0) + attrs
            out += HEADER.pack(HEADER.size + len(body), (nft.NFNL_SUBSYS_NFTABLES << 8)
                               | nft.NFT_MSG_NEWTABLE, NLM_F_MULTI, seq, 0) + body
        return out + HEADER.pack(HEADER.size + 4, NLMSG_DONE, NLM_F_MULTI, seq, 0) + b"\0" * 4

    @staticmethod
    def _ack(seq: int, code: int) -> bytes:
        body = struct.pack("=i", -code) + HEADER.pack(HEADER.size, 0, 0, seq, 0)
        return HEADER.pack(HEADER.size + len(body), NLMSG_ERROR, 0x100, seq, 0) + body

    def recv(self, size: int, flags: int = 0) -> bytes:
        if not self.queue:
            raise BlockingIOError
        return self.queue.pop(0)

    def settimeout(self, value):
        pass

    def close(self):
        pass

    def kinds(self, index: int = -1) -> list[int]:
        return [kind(t) for t, _seq, _body in self.batches[index][1:-1]]

    def deleted(self, index: int = -1) -> list[tuple[int, str]]:
        """(family, name) of the tables a batch deletes."""
        return [nft.parse_table(body)[:2] for t, _seq, body in self.batches[index][1:-1]
                if kind(t) == nft.NFT_MSG_DELTABLE]


NFPROTO_FAMILY = {2: 4, 10: 6}


class StatefulKernel(Kernel):
    """Kernel, but it remembers which tables exist and what their sets hold,
    applies a committed transaction, and refuses elements for a missing table
    (ENOENT), as nf_tables does. `events` records what was committed, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: dict[int, set[bytes]] = {}
        self.events: list[str] = []

    def flush(self) -> None:
        """`nft flush ruleset`."""
        self.tables, self.elements = set(), {}

    def send(self, data: bytes) -> int:
        parsed = list(messages(data))
        if parsed[0][0] != nft.NFNL_MSG_BATCH_BEGIN or self.refuse_all is not None or self.refuse:
            return super().send(data)
        tables = set(self.tables)
        elements = {f: set(e) for f, e in self.elements.items()}
        events = []
        for message_type, _flags, _seq, body in parsed[1:-1]:
            family = NFPROTO_FAMILY[body[0]]
            what = kind(message_type)
            if what == nft.NFT_MSG_NEWTABLE:
                tables.add(family)
                elements.setdefault(family, set())
            elif what == nft.NFT_MSG_DELTABLE:
                tables.discard(family)
                elements.pop(family, None)
                events.append(f"delete table {family}")
            elif what in (nft.NFT_MSG_NEWSETELEM, nft.NFT_MSG_DELSETELEM):
                if family not in tables:
                    self.refuse = {what: errno.ENOENT}
                    return super().send(data)
                keys = {body[i:i + 4] for i in range(len(body) - 4)}  # crude: presence only
                if what == nft.NFT_MSG_NEWSETELEM:
                    elements[family] |= keys
                    events.append(f"add elements {family}")
                else:
                    events.append(f"delete elements {family}")
        self.tables, self.elements = tables, elements
        self.events += events
        return super().send(data)


def vip(address: str, index: int = 2, add: bool = True) -> Change:
    return Change(add, index, 6 if ":" in address else 4, address, 64 if ":" in address else 24)


def firewall_on(kernel: Kernel, monkeypatch, *, marks: bool = True) -> Firewall:
    """A Firewall (table "hivrrp") talking to `kernel`, on a host with nf_tables."""
    firewall = Firewall(Settings("hivrrp", -1, False), clock=lambda: 0.0, marks=marks)
    monkeypatch.setattr(firewall, "_socket", lambda: kernel)
    monkeypatch.setattr("hivrrp.kernel.firewall.nf_tables_present", lambda: True)
    return firewall
