"""A stand-in for the kernel's nfnetlink (nftables transactions), for the firewall's
tests without root."""

import errno
import struct

from hivrrp.kernel import nftables as nft
from hivrrp.kernel.rtnl import HEADER, NLMSG_ERROR, messages


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
        self.tables: set[int] = set()        # families with a table, for GETTABLE

    def send(self, data: bytes) -> int:
        parsed = [(t, seq, body) for t, _flags, seq, body in messages(data)]
        if kind(parsed[0][0]) == nft.NFT_MSG_GETTABLE:
            seq = parsed[0][1]
            family = {2: 4, 10: 6}[parsed[0][2][0]]
            self.queue.append(self._ack(seq, 0 if family in self.tables else errno.ENOENT))
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
        return len(data)

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
