"""The no_accept firewall: nftables drop sets in the kernel, on the netlink thread.

One table per family (firewall_policy.Settings: `nftables NAME`, default
"hivrrp"), made at start and removed at stop; a table a killed run left
behind is replaced at start (and by `hivrrp release`). The VIPs of the
filtering masters go in and out of its sets in one transaction per trip to
the netlink thread, however many instances moved (netlink.Netlink.apply):
a transaction is all or nothing, so a failed one leaves the sets as they
were, and the next trip rebuilds the tables whole from what they must hold.
Messages are encoded by kernel/nftables.py; the policy is firewall_policy.py.

Used from one thread at a time (the netlink worker); status() may be read
from any.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence

from hivrrp.kernel import nftables as nft
from hivrrp.kernel.addrbatch import (
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    SOL_NETLINK,
    Change,
    errors,
)
from hivrrp.kernel.firewall_policy import DropSet, Element, Settings, element, holder
from hivrrp.kernel.sockets import force_buffers
from hivrrp.util.ratelimit import RateLimiter
from hivrrp.util.text import plural

log = logging.getLogger("hivrrp")

NETLINK_NETFILTER = 12
# A transaction is one datagram: a resync of 10,000 IPv6 link-local VIPs is
# about 320 KiB, more than the default send buffer allows.
SEND_BUFFER = 4 << 20
RECEIVE_BUFFER = 1 << 20
ANSWER_TIMEOUT = 5.0           # seconds for the kernel to answer a transaction
FAILURE_LOG_PERIOD = 60.0      # seconds between summaries of a recurring failure
FAMILIES = (4, 6)
# The kernel cannot filter at all: no nf_tables, or not allowed to.
UNAVAILABLE = {errno.EOPNOTSUPP, errno.EPROTONOSUPPORT, errno.EPERM, errno.EAFNOSUPPORT}
NF_TABLES_LOADED = "/sys/module/nf_tables"


class FirewallError(Exception):
    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


def table_names(settings: Settings, families) -> str:
    return " and ".join(f"{nft.FAMILY_NAMES[f]} {settings.table}" for f in sorted(families))


class Firewall:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.sock: socket.socket | None = None
        self.seq = int.from_bytes(os.urandom(3), "big")
        self.drops = DropSet()
        self.tables: set[int] = set()         # families whose table this run made
        self.in_step = True                   # the kernel's sets hold self.drops
        # Why nothing is filtered (the kernel cannot), None while all is well.
        self.problem: str | None = None
        self.transactions = 0                 # sent, including failed ones
        self.failures = 0
        self.limiter = RateLimiter(FAILURE_LOG_PERIOD)

    # ------------------------------------------------------------ interface

    def start(self, families: set[int]) -> None:
        """Tables for `families`, any left by a previous run replaced: that
        run's drop sets would go on dropping the VIPs it held."""
        try:
            left = self._leftovers(bool(families))
        except (OSError, FirewallError) as exc:
            if families:
                self._failed("read the nftables tables", exc, sticky=True)
            else:
                log.debug("nftables: no table read (%s): no instance needs one", exc)
            return
        try:
            messages = []
            for family in FAMILIES:
                if family in left or family in families:
                    messages += nft.delete_table(family, self.settings.table)
                if family in families:
                    messages += self._create(family)
            if messages:
                self._transaction(messages)
        except (OSError, FirewallError) as exc:
            self._failed("set up the nftables tables", exc, sticky=True)
            return
        self.tables = set(families)
        for what, found in (("replaced", left & families), ("removed", left - families)):
            if found:
                log.info("nftables: table %s left by a previous run %s",
                         table_names(self.settings, found), what)
        made = families - left
        if made:
            log.info("nftables: table %s created for no_accept (priority %d)",
                     table_names(self.settings, made), self.settings.priority)

    def update(self, add: Sequence[Change], remove: Sequence[Change]) -> None:
        """Addresses into and out of the drop sets, in one transaction."""
        added, removed = self.drops.change([(element(c), holder(c)) for c in add],
                                           [(element(c), holder(c)) for c in remove])
        if self.problem is not None:
            return              # said at start: the kernel cannot filter
        if not self.in_step:
            self._resync()
            return
        if not added and not removed:
            return
        messages = []
        for family in sorted({e[0] for e in added} - self.tables):
            # A reload gave a family its first filtering instance.
            messages += nft.delete_table(family, self.settings.table) + self._create(family)
        messages += self._elements(added, True) + self._elements(removed, False)
        try:
            self._transaction(messages)
        except (OSError, FirewallError) as exc:
            self._failed(f"change {plural(len(added) + len(removed), 'drop set element')}", exc)
            self.in_step = False
            if self.problem is None:      # else the kernel cannot: no point rebuilding
                self._resync()
            return
        new = {e[0] for e in added} - self.tables
        if new:
            self.tables = self.tables | new     # a new set: status() may be iterating
            log.info("nftables: table %s created for no_accept (priority %d)",
                     table_names(self.settings, new), self.settings.priority)

    def stop(self) -> None:
        """The tables removed: after the VIPs, so none is up unfiltered meanwhile."""
        self._log_summaries(everything=True)
        if not self.tables or self.problem is not None:
            return
        messages = []
        for family in sorted(self.tables):
            messages += nft.delete_table(family, self.settings.table)
        try:
            self._transaction(messages)
        except (OSError, FirewallError) as exc:
            self._failed("remove the nftables tables", exc)
            return
        log.info("nftables: table %s removed", table_names(self.settings, self.tables))
        self.tables = set()

    def remove_leftovers(self) -> list[int]:
        """`hivrrp release`: the tables a dead daemon left, removed (their families)."""
        left = self._leftovers(False)
        if left:
            messages = []
            for family in sorted(left):
                messages += nft.delete_table(family, self.settings.table)
            self._transaction(messages)
        return sorted(left)

    def status(self) -> dict:
        return {"table": self.settings.table, "families": sorted(self.tables),
                "elements": len(self.drops.elements), "transactions": self.transactions,
                "failures": self.failures, "in_step": self.in_step, "problem": self.problem}

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    # -------------------------------------------------------------- helpers

    def _create(self, family: int) -> list[bytes]:
        return nft.create_table(family, self.settings.table, self.settings.priority,
                                self.settings.counters)

    def _elements(self, elements: list[Element], add: bool) -> list[bytes]:
        out = []
        for (family, name), keys in self.drops.by_set(elements).items():
            out += nft.set_elements(family, self.settings.table, name, keys, add)
        return out

    def _resync(self) -> None:
        """Every table made again with what it must hold, in one transaction:
        no moment without them, whatever the kernel's sets held."""
        families = self.tables | self.drops.families()
        messages = []
        for family in sorted(families):
            messages += nft.delete_table(family, self.settings.table) + self._create(family)
        messages += self._elements(sorted(self.drops.elements), True)
        try:
            self._transaction(messages)
        except (OSError, FirewallError) as exc:
            self._failed("rebuild the nftables tables", exc)
            return
        self.tables = families
        self.in_step = True
        log.info("nftables: table %s rebuilt with %s", table_names(self.settings, families),
                 plural(len(self.drops.elements), "drop set element"))

    def _failed(self, what: str, exc: Exception, sticky: bool = False) -> None:
        self.failures += 1
        code = getattr(exc, "code", None) or getattr(exc, "errno", None)
        reason = str(exc) or type(exc).__name__
        if sticky or code in UNAVAILABLE:
            if self.problem is None:
                self.problem = f"cannot {what}: {reason}"
                log.error("no_accept is NOT enforced: cannot %s (%s); the VIPs of no_accept "
                          "instances accept traffic while master. nftables needs the nf_tables "
                          "module and CAP_NET_ADMIN", what, reason)
            return
        self._log_summaries()
        if self.limiter.note(reason, what, self.clock()):
            log.error("nftables: cannot %s: %s", what, reason)

    def _log_summaries(self, everything: bool = False) -> None:
        for summary in self.limiter.due(self.clock(), everything):
            log.error("nftables: %s more times in %.0f s: cannot %s: %s",
                      plural(summary.repeats, "failure"), summary.seconds, summary.item,
                      summary.key)

    def _socket(self) -> socket.socket:
        if self.sock is None:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
            try:
                sock.bind((0, 0))
                sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
                try:
                    sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
                except OSError:
                    pass  # older kernels: errors come without the kernel's text
                force_buffers(sock, receive=RECEIVE_BUFFER, send=SEND_BUFFER)
            except OSError:
                sock.close()
                raise
            self.sock = sock
        return self.sock

    def _next_seq(self, count: int) -> int:
        first, self.seq = self.seq, (self.seq + count) & 0xFFFFFFFF
        return first

    def _transaction(self, messages: list[bytes]) -> None:
        """Send one transaction; raises FirewallError with the kernel's first
        refusal (the transaction then changed nothing)."""
        sock = self._socket()
        data, begin, end = nft.batch(messages, self._next_seq(len(messages) + 2))
        self.transactions += 1
        sock.send(data)
        answers = self._answers(sock, begin, lambda seq, code: seq == end and code == 0)
        for seq, code, text in answers:
            if code:
                index = (seq - begin - 1) & 0xFFFFFFFF
                kind = _kind(messages[index]) if index < len(messages) else "transaction"
                raise FirewallError(code, f"{kind}: {os.strerror(code)}"
                                          + (f" ({text})" if text else ""))
        if not any(seq == end for seq, _code, _text in answers):
            raise FirewallError(errno.EPROTO, "the kernel did not confirm the transaction")

    def _answers(self, sock: socket.socket, first: int, final) -> list[tuple[int, int, str]]:
        """The kernel's answers to one request (processed while send() ran:
        they are queued by the time it returns), until final(seq, code)."""
        out: list[tuple[int, int, str]] = []
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while True:
            try:
                data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                if out:
                    return out            # everything the kernel said about it
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise FirewallError(errno.ETIMEDOUT, "no answer from the kernel") from None
                sock.settimeout(remaining)
                try:
                    data = sock.recv(1 << 20)
                except TimeoutError:
                    continue
                finally:
                    sock.settimeout(None)
            for seq, code, text in errors(data):
                if (seq - first) & 0xFFFFFFFF > 1 << 20:
                    continue              # a late answer to an earlier request
                out.append((seq, code, text))
                if final(seq, code):
                    return out

    def _leftovers(self, probe: bool) -> set[int]:
        """Families that have a table of our name now. Without nf_tables loaded
        there is none, and asking would load it: a host that never uses
        no_accept is not made to (`probe` asks anyway)."""
        if not probe and not os.path.exists(NF_TABLES_LOADED):
            return set()
        found = set()
        for family in FAMILIES:
            sock = self._socket()
            seq = self._next_seq(1)
            sock.send(nft.get_table(family, self.settings.table, seq))
            answers = self._answers(sock, seq, lambda s, code: s == seq)
            code = next((c for s, c, _t in answers if s == seq), 0)
            if code == 0:
                found.add(family)
            elif code != errno.ENOENT:
                raise FirewallError(code, f"cannot read the nftables tables: "
                                          f"{os.strerror(code)}")
        return found


def _kind(message: bytes) -> str:
    kind = struct.unpack_from("=H", message, 4)[0] & 0xFF
    return {nft.NFT_MSG_NEWTABLE: "create table", nft.NFT_MSG_DELTABLE: "delete table",
            nft.NFT_MSG_NEWCHAIN: "create chain", nft.NFT_MSG_NEWRULE: "add rule",
            nft.NFT_MSG_NEWSET: "create set", nft.NFT_MSG_NEWSETELEM: "add set elements",
            nft.NFT_MSG_DELSETELEM: "delete set elements"}.get(kind, f"message {kind}")
