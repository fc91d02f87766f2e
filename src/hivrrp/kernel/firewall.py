"""The no_accept firewall: nftables drop sets in the kernel, on the netlink thread.

One table per family (firewall_policy.Settings: `nftables NAME`, default
"hivrrp"), made at start and removed at stop, each with hivrrp's mark
(nftables.MARK). The mark says which tables are ours: at start and at
`hivrrp release` every marked table goes (a killed run's, under whatever name
it had then: its drop set would go on dropping the VIPs it held), and a table
of the configured name without it is another's (keepalived's, say), never
touched: that family goes unfiltered, and the log and `hivrrp status` say so.
(There is one daemon per network namespace: a marked table is no live one's.)

The VIPs of the filtering masters go in and out of the sets in one
transaction per trip to the netlink thread, however many instances moved
(netlink.Netlink.apply). A transaction is all or nothing: a failed one leaves
the sets as they were, and they are rebuilt whole, from what they must hold,
at once and again at each later change and check() until that succeeds.
check(), every few seconds while a table is held, notices one removed behind
our back (`nft flush ruleset`, which a restart of the nftables service runs)
and rebuilds it. What the kernel cannot do at all (no nf_tables for a family,
not allowed) is said once per family, and that family is left alone for the
run; the other goes on. Messages are encoded by kernel/nftables.py; the
policy is firewall_policy.py.

Used from one thread at a time (the netlink worker); status() may be read
from any: the sets and dicts it reads are replaced, never changed in place.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence

from hivrrp.kernel import nftables as nft
from hivrrp.kernel.addrbatch import (
    Change,
    errors,
    request_socket,
)
from hivrrp.kernel.firewall_policy import DropSet, Element, Settings, element, holder
from hivrrp.kernel.rtnl import NLMSG_DONE, NLMSG_ERROR, messages
from hivrrp.util.ratelimit import RateLimiter
from hivrrp.util.text import plural

log = logging.getLogger("hivrrp")

NETLINK_NETFILTER = 12
# A transaction is one datagram: a resync of 10,000 IPv6 link-local VIPs is
# about 320 KiB, more than the default send buffer allows.
SEND_BUFFER = 4 << 20
RECEIVE_BUFFER = 1 << 20
ANSWER_TIMEOUT = 5.0           # seconds for the kernel to answer a request
FAILURE_LOG_PERIOD = 60.0      # seconds between summaries of a recurring failure
FAMILIES = (4, 6)
FAMILY_LABELS = {4: "IPv4", 6: "IPv6"}
# The kernel cannot filter at all: no nf_tables, or not allowed to.
UNAVAILABLE = {errno.EOPNOTSUPP, errno.EPROTONOSUPPORT, errno.EPERM, errno.EAFNOSUPPORT}
NF_TABLES_MODULE = "/sys/module/nf_tables"
PROC_MODULES = "/proc/modules"
MODULES_BUILTIN = "/lib/modules/{release}/modules.builtin"
MARKS_SINCE = (5, 13)          # the first kernel to keep a table's NFTA_TABLE_USERDATA
NLM_F_DUMP_INTR = 0x10         # the dump crossed a change: read it again
DUMP_TRIES = 3


class FirewallError(Exception):
    def __init__(self, code: int, text: str, family: int | None = None) -> None:
        super().__init__(text)
        self.code = code
        self.family = family       # that of the refused message, if one was


def table_names(settings: Settings, families: Iterable[int]) -> str:
    return names((family, settings.table) for family in families)


def names(tables: Iterable[tuple[int, str]]) -> str:
    return " and ".join(f"{nft.FAMILY_NAMES[f]} {name}" for f, name in sorted(tables))


def labels(families: Iterable[int]) -> str:
    return " and ".join(FAMILY_LABELS[f] for f in sorted(families))


def nf_tables_present() -> bool:
    """Whether the kernel may hold nftables tables, found without asking it:
    asking loads the nf_tables module, and a host that never uses no_accept
    is not made to. Loaded, it is in /sys/module; built in, it is listed in
    modules.builtin, or the kernel has no modules at all (no /proc/modules)."""
    if os.path.exists(NF_TABLES_MODULE) or not os.path.exists(PROC_MODULES):
        return True
    try:
        with open(MODULES_BUILTIN.format(release=os.uname().release)) as f:
            return any(line.rstrip().endswith("/nf_tables.ko") for line in f)
    except OSError:
        return False               # not told: as a module not loaded, no table can be


def kernel_keeps_marks(release: str | None = None) -> bool:
    """Whether the kernel keeps a table's user data (Linux 5.13 and later).
    Before, no table shows the mark, and the configured name is all there is
    to tell ours by (as keepalived does)."""
    found = re.match(r"(\d+)\.(\d+)", release or os.uname().release)
    if found is None:
        return True                # not a version: assume a kernel of today
    return (int(found[1]), int(found[2])) >= MARKS_SINCE


class Firewall:
    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic,
                 marks: bool | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.marks = kernel_keeps_marks() if marks is None else marks
        self.sock: socket.socket | None = None
        self.seq = int.from_bytes(os.urandom(3), "big")
        self.drops = DropSet()
        self.wanted: set[int] = set()         # families start() was asked a table for
        self.tables: set[int] = set()         # families whose table this run made and holds
        self.listed = False                   # the kernel's tables read: the two below known
        self.stale: set[tuple[int, str]] = set()   # marked tables of a dead run, to remove
        self.others: set[int] = set()         # families where our name is another's table
        # Why a family is not filtered for the rest of the run (the kernel
        # cannot, or the name is taken), said once each.
        self.problems: dict[int, str] = {}
        self.in_step = True                   # the kernel's sets hold self.drops
        self.trouble: str | None = None       # why not, while out of step
        self.stopped = False
        self.transactions = 0                 # sent, including failed ones
        self.failures = 0
        self.limiter = RateLimiter(FAILURE_LOG_PERIOD)
        self.losses = RateLimiter(FAILURE_LOG_PERIOD)

    # ------------------------------------------------------------ interface

    def start(self, families: set[int]) -> None:
        """Tables for `families`; every table a dead run left removed (its drop
        sets would go on dropping the VIPs it held)."""
        self.wanted = set(families)
        try:
            self._read_tables(bool(families))
        except (OSError, FirewallError) as exc:
            if families:
                self._failed("read the nftables tables", exc, families)
            else:
                log.debug("nftables: no table read (%s): no instance needs one", exc)
            return
        self._rebuild("set up the nftables tables", at_start=True)

    def update(self, add: Sequence[Change], remove: Sequence[Change]) -> None:
        """Addresses into and out of the drop sets, in one transaction."""
        added, removed = self.drops.change([(element(c), holder(c)) for c in add],
                                           [(element(c), holder(c)) for c in remove])
        if self.stopped:
            return              # the tables are gone: nothing is made again at exit
        if not self.in_step or self.stale:
            self._resync()
            return
        new = {e[0] for e in added} - self.tables - self.problems.keys()
        for family in sorted(new & self.others):
            self._taken(family)
        new -= self.others
        added = [e for e in added if e[0] not in self.problems]
        removed = [e for e in removed if e[0] not in self.problems]
        if not added and not removed:
            return
        messages = []
        for family in sorted(new):
            # A reload gave a family its first filtering instance.
            messages += nft.delete_table(family, self.settings.table) + self._create(family)
        messages += self._elements(added, True) + self._elements(removed, False)
        try:
            self._transaction(messages)
        except (OSError, FirewallError) as exc:
            what = f"change {plural(len(added) + len(removed), 'drop set element')}"
            if not self._noticed_loss(exc):
                self._failed(what, exc, {e[0] for e in added + removed})
            self._resync()
            return
        if new:
            self.tables = self.tables | new
            log.info("nftables: table %s created for no_accept (priority %d)",
                     table_names(self.settings, new), self.settings.priority)

    def check(self) -> None:
        """Every few seconds (Netlink): a rebuild owed since a failure tried
        again, and a table removed behind our back noticed and made again."""
        self._log_summaries()
        if self.stopped:
            return
        if not self.in_step or self.stale:
            self._resync()
            return
        if not self.tables - self.problems.keys():
            return
        try:
            gone = self._gone()
        except (OSError, FirewallError) as exc:
            self.failures += 1
            self._say("read the nftables tables", str(exc))
            return
        if gone:
            self._lost(gone)
            self._resync()

    def needs_check(self) -> bool:
        """Whether check() has anything to look at (read from the loop)."""
        return not self.stopped and bool(not self.in_step or self.stale
                                         or self.tables - self.problems.keys())

    def stop(self) -> None:
        """The tables this run holds removed: after the VIPs, so none is up
        unfiltered meanwhile. Whatever a family's problem, the other's goes."""
        self.stopped = True
        self._log_summaries(everything=True)
        held = sorted(self.tables)
        if not held:
            return
        messages = []
        for family in held:
            messages += nft.delete_table(family, self.settings.table)
        try:
            self._transaction(messages)
        except (OSError, FirewallError) as exc:
            self._failed("remove the nftables tables", exc, set())
            return
        log.info("nftables: table %s removed", table_names(self.settings, held))
        self.tables = set()

    def remove_leftovers(self) -> list[tuple[int, str]]:
        """`hivrrp release`: the tables a dead daemon left (hivrrp's mark,
        whatever their name), removed; returns them. Another's table of the
        configured name stays."""
        self._read_tables(False)
        for family in sorted(self.others):
            log.info("nftables: table %s is not hivrrp's (it has no hivrrp mark): left alone",
                     table_names(self.settings, [family]))
        left = sorted(self.stale)
        if left:
            messages = []
            for family, name in left:
                messages += nft.delete_table(family, name)
            self._transaction(messages)
        self.stale = set()
        return left

    @property
    def problem(self) -> str | None:
        """Why no_accept is not (all) enforced now, None while it is."""
        by_text: dict[str, list[int]] = {}
        for family, text in sorted(self.problems.items()):
            by_text.setdefault(text, []).append(family)
        parts = [f"{text} ({labels(families)})" for text, families in by_text.items()]
        trouble = self.trouble
        if not self.in_step and trouble:
            parts.append(trouble)
        return "; ".join(parts) or None

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
        if not self.listed:
            # The start could not read the tables: whose they are is not known yet.
            try:
                self._read_tables(True)
            except (OSError, FirewallError) as exc:
                self._failed("read the nftables tables", exc,
                             self.wanted | self.drops.families())
                return
        self._rebuild("rebuild the nftables tables")

    def _rebuild(self, what: str, at_start: bool = False) -> None:
        """Every table made again with what it must hold, and a dead run's
        removed, in one transaction: no moment without them, whatever the
        kernel's sets held."""
        families = (self.wanted | self.drops.families()) - self.problems.keys()
        ours = {(family, self.settings.table) for family in families}
        stale = self.stale
        messages = []
        for family, name in sorted(stale - ours):
            messages += nft.delete_table(family, name)
        for family in sorted(families):
            messages += nft.delete_table(family, self.settings.table) + self._create(family)
        elements = [e for e in sorted(self.drops.elements) if e[0] in families]
        messages += self._elements(elements, True)
        if messages:
            try:
                self._transaction(messages)
            except (OSError, FirewallError) as exc:
                self._failed(what, exc, families)
                return
        self.stale = set()
        self.tables = families | (self.tables & self.problems.keys())
        self.in_step, self.trouble = True, None
        replaced = stale & ours
        if stale - ours:
            log.info("nftables: table %s left by a previous run removed", names(stale - ours))
        if at_start:
            if replaced:
                log.info("nftables: table %s left by a previous run replaced", names(replaced))
            made = families - {family for family, _name in replaced}
            if made:
                log.info("nftables: table %s created for no_accept (priority %d)",
                         table_names(self.settings, made), self.settings.priority)
        elif families:
            log.info("nftables: table %s rebuilt with %s", table_names(self.settings, families),
                     plural(len(elements), "drop set element"))

    def _read_tables(self, probe: bool) -> None:
        """Which tables are a dead run's (stale) and where our name is taken by
        another's (others). Without nf_tables loaded there is none, and asking
        would load it (`probe` asks anyway)."""
        found = self._list() if probe or nf_tables_present() else []
        table = self.settings.table
        if self.marks:
            stale = {(family, name) for family, name, marked in found if marked}
            others = {family for family, name, marked in found if name == table and not marked}
        else:
            stale = {(family, name) for family, name, _marked in found if name == table}
            others = set()
        self.stale, self.others, self.listed = stale, others, True
        for family in sorted(others & self.wanted):
            self._taken(family)

    def _list(self) -> list[tuple[int, str, bool]]:
        """(family, name, marked) of every ip and ip6 table."""
        for _attempt in range(DUMP_TRIES):
            sock = self._socket()
            seq = self._next_seq(1)
            sock.send(nft.list_tables(seq))
            bodies, interrupted = self._dump(sock, seq)
            if not interrupted:
                break
        out = []
        for body in bodies:
            family, name, userdata = nft.parse_table(body)
            if family is not None:
                out.append((family, name, userdata == nft.MARK))
        return out

    def _gone(self) -> set[int]:
        """The families whose table this run holds that are no longer there as
        ours. One now of our name but not ours is another's: left alone."""
        found = self._list()
        table = self.settings.table
        present = {family for family, name, marked in found
                   if name == table and (marked or not self.marks)}
        held = self.tables - self.problems.keys()
        replaced = {family for family, name, marked in found
                    if name == table and not marked and self.marks} & held
        for family in sorted(replaced):
            self.tables = self.tables - {family}
            self._taken(family)
        return held - present - replaced

    def _noticed_loss(self, exc: Exception) -> bool:
        """A change refused for want of its table (ENOENT): gone behind our
        back, said as that rather than as an error. True if it was."""
        if getattr(exc, "code", None) != errno.ENOENT:
            return False
        try:
            gone = self._gone()
        except (OSError, FirewallError):
            return False
        if not gone:
            return False
        self.failures += 1
        self._lost(gone)
        return True

    def _lost(self, gone: set[int]) -> None:
        self.in_step = False
        self.trouble = f"the table {table_names(self.settings, gone)} was removed by someone else"
        if self.losses.note("lost", None, self.clock()):
            log.warning("nftables: table %s was removed behind hivrrp's back (`nft flush "
                        "ruleset`, a restart of the nftables service?): rebuilding it with %s",
                        table_names(self.settings, gone),
                        plural(len(self.drops.elements), "drop set element"))

    def _taken(self, family: int) -> None:
        """Our name is another's table in `family`: it is left alone, and so
        no_accept goes unenforced there, loudly."""
        if family in self.problems:
            return
        self.problems = {**self.problems, family: (
            f"the table {table_names(self.settings, [family])} is not hivrrp's "
            f"(no hivrrp mark): left alone")}
        log.error("no_accept is NOT enforced for %s: the nftables table %s exists and hivrrp "
                  "did not make it (it has no hivrrp mark): left alone. The %s VIPs of "
                  "no_accept instances accept traffic while master; give hivrrp's table "
                  "another name (`nftables NAME` in global_defs)", FAMILY_LABELS[family],
                  table_names(self.settings, [family]), FAMILY_LABELS[family])

    def _failed(self, what: str, exc: Exception, families: Iterable[int]) -> None:
        """A refused or failed request: the sets are out of step (rebuilt at
        the next change or check). A kernel that cannot filter a family is
        said once, and that family left alone for the run."""
        self.failures += 1
        self.in_step = False
        code = getattr(exc, "code", None) or getattr(exc, "errno", None)
        reason = str(exc) or type(exc).__name__
        if code in UNAVAILABLE:
            family = getattr(exc, "family", None)
            blamed = {family} if family is not None else set(families)
            fresh = sorted(blamed - self.problems.keys())
            if blamed:
                if fresh:
                    self.problems = {**self.problems,
                                     **{f: f"cannot {what}: {reason}" for f in fresh}}
                    log.error("no_accept is NOT enforced for %s: cannot %s (%s); the %s VIPs "
                              "of no_accept instances accept traffic while master. nftables "
                              "needs the nf_tables module and CAP_NET_ADMIN", labels(fresh),
                              what, reason, labels(fresh))
                return
            # No family to blame: a dead run's tables that cannot be removed,
            # said once below, and not tried again every few seconds.
            self.stale = set()
        self.trouble = f"cannot {what}: {reason}"
        self._say(what, reason)

    def _say(self, what: str, reason: str) -> None:
        self._log_summaries()
        if self.limiter.note(reason, what, self.clock()):
            log.error("nftables: cannot %s: %s", what, reason)

    def _log_summaries(self, everything: bool = False) -> None:
        now = self.clock()
        for summary in self.limiter.due(now, everything):
            log.error("nftables: %s more times in %.0f s: cannot %s: %s",
                      plural(summary.repeats, "failure"), summary.seconds, summary.item,
                      summary.key)
        for summary in self.losses.due(now, everything):
            log.warning("nftables: a table removed behind hivrrp's back %s more in %.0f s "
                        "(each rebuilt)", plural(summary.repeats, "time"), summary.seconds)

    def _socket(self) -> socket.socket:
        if self.sock is None:
            self.sock = request_socket(RECEIVE_BUFFER, SEND_BUFFER, NETLINK_NETFILTER)
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
                message = messages[index] if index < len(messages) else None
                kind = _kind(message) if message is not None else "transaction"
                family = nft.FAMILY_OF.get(message[16]) if message is not None else None
                raise FirewallError(code, f"{kind}: {os.strerror(code)}"
                                          + (f" ({text})" if text else ""), family)
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
                data = _receive(sock, deadline)
            for seq, code, text in errors(data):
                if (seq - first) & 0xFFFFFFFF > 1 << 20:
                    continue              # a late answer to an earlier request
                out.append((seq, code, text))
                if final(seq, code):
                    return out

    def _dump(self, sock: socket.socket, seq: int) -> tuple[list[bytes], bool]:
        """The bodies of a dump's messages, and whether it crossed a change."""
        out: list[bytes] = []
        interrupted = False
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while True:
            try:
                data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                data = _receive(sock, deadline)
            for kind, flags, s, body in messages(data):
                if s != seq:
                    continue              # a late answer to an earlier request
                interrupted |= bool(flags & NLM_F_DUMP_INTR)
                if kind in (NLMSG_DONE, NLMSG_ERROR):
                    code = -struct.unpack_from("=i", body)[0] if len(body) >= 4 else 0
                    if code:
                        raise FirewallError(code, f"list tables: {os.strerror(code)}")
                    return out, interrupted
                out.append(body)


def _receive(sock: socket.socket, deadline: float) -> bytes:
    """The next datagram, waiting until `deadline` at most."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise FirewallError(errno.ETIMEDOUT, "no answer from the kernel")
    sock.settimeout(remaining)
    try:
        return sock.recv(1 << 20)
    except TimeoutError:
        raise FirewallError(errno.ETIMEDOUT, "no answer from the kernel") from None
    finally:
        sock.settimeout(None)


def _kind(message: bytes) -> str:
    kind = struct.unpack_from("=H", message, 4)[0] & 0xFF
    return {nft.NFT_MSG_NEWTABLE: "create table", nft.NFT_MSG_DELTABLE: "delete table",
            nft.NFT_MSG_NEWCHAIN: "create chain", nft.NFT_MSG_NEWRULE: "add rule",
            nft.NFT_MSG_NEWSET: "create set", nft.NFT_MSG_NEWSETELEM: "add set elements",
            nft.NFT_MSG_DELSETELEM: "delete set elements"}.get(kind, f"message {kind}")
