"""The nftables messages of the no_accept firewall, encoded (no IO).

The same tables keepalived 2.2.7 makes (vrrp_nftables.c), as `nft list` shows them:

    table ip NAME {
        set vips { type ipv4_addr }
        chain in { type filter hook input priority P; policy accept;
                   ip daddr @vips drop }
        chain out { type filter hook output priority P; policy accept;
                    ip saddr @vips drop }
    }
    table ip6 NAME {
        set vips { type ipv6_addr }
        set vips_link_local { type ipv6_addr . iface_index }
        set neighbor-discovery { type icmpv6_type; flags constant;
                                 elements = { nd-neighbor-solicit, nd-neighbor-advert } }
        chain in { type filter hook input priority P; policy accept;
                   icmpv6 type @neighbor-discovery accept
                   ip6 daddr fe80::/10 goto in_link_local
                   ip6 daddr @vips drop }
        chain out { ... the same with saddr and out_link_local }
        chain in_link_local { ip6 daddr . iif @vips_link_local drop }
        chain out_link_local { ip6 saddr . oif @vips_link_local drop }
    }

keepalived adds the link-local set and chains at its first link-local VIP;
here they come with the table, empty until one is needed. Each table carries
hivrrp's mark, a comment (NFTA_TABLE_USERDATA, kept by the kernel since 5.13;
`nft list` shows `comment "managed by hivrrp"`): what tells a table a killed
run left, whatever its name, from another's that has the configured name.

Library choice. pyroute2 (a dependency already) has nfnetlink message classes
for tables, chains, sets and rules, nested expression attributes included:
the set-up messages (a few dozen, once a run) are encoded with them. The set
elements, the only part that grows with the instances, are packed here with
struct: pyroute2 took 87 ms to encode 4,000 IPv4 elements (22 us each, on the
netlink thread, holding the GIL the adverts' loop needs), set_elements() 2 ms,
as addrbatch.py found for addresses. libnftables' JSON API was the other candidate: its
Python binding is Debian's python3-nftables, not on PyPI (the venv would need
the system's site packages), and each change would be JSON text parsed by the
library. pyroute2's NFTSocket is not used to send: it either makes one
transaction per message or commits without reading the kernel's answers, so
the batch framing is here and the answers are read by firewall.py.
"""

from __future__ import annotations

import socket
import struct

from hivrrp.kernel.pyroute2_lean import install as lean_pyroute2
from hivrrp.kernel.rtnl import HEADER, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST, attr

NFNL_SUBSYS_NFTABLES = 10
NFNL_MSG_BATCH_BEGIN, NFNL_MSG_BATCH_END = 0x10, 0x11
(NFT_MSG_NEWTABLE, NFT_MSG_GETTABLE, NFT_MSG_DELTABLE, NFT_MSG_NEWCHAIN) = (0, 1, 2, 3)
NFT_MSG_NEWRULE, NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM, NFT_MSG_DELSETELEM = 6, 9, 12, 14
NLM_F_APPEND = 0x800
NLA_F_NESTED = 0x8000
NFPROTO = {4: 2, 6: 10}                       # NFPROTO_IPV4, NFPROTO_IPV6
FAMILY_NAMES = {4: "ip", 6: "ip6"}
FAMILY_OF = {code: family for family, code in NFPROTO.items()}
NFGENMSG = struct.Struct("!BBH")              # family, version, res_id (big-endian)
NF_INET_LOCAL_IN, NF_INET_LOCAL_OUT = 1, 3
NF_DROP, NF_ACCEPT, NFT_GOTO = 0, 1, -4
NFT_PAYLOAD_NETWORK_HEADER, NFT_PAYLOAD_TRANSPORT_HEADER = 1, 2
NFT_META_IIF, NFT_META_OIF = 4, 5
NFT_SET_CONSTANT = 0x2
# nftables' data types (include/datatype.h), and how a concatenation is typed.
TYPE_IPADDR, TYPE_IP6ADDR, TYPE_IFINDEX, TYPE_ICMP6_TYPE = 7, 8, 20, 29
TYPE_BITS = 6
ND_NEIGHBOR_SOLICIT, ND_NEIGHBOR_ADVERT = 135, 136
IPPROTO_ICMPV6 = 58

VIPS, LINK_LOCAL, NEIGHBOUR_DISCOVERY = "vips", "vips_link_local", "neighbor-discovery"
# Set elements per NEWSETELEM message: its element list is one attribute,
# whose length is 16 bits (an IPv6 link-local element takes 32 bytes).
ELEMENTS_PER_MESSAGE = 1024
IPV4_SADDR, IPV4_DADDR, IPV6_SADDR, IPV6_DADDR = 12, 16, 8, 24   # network header offsets
IPV6_NEXT_HEADER = 6

NFTA_SET_ELEM_LIST_TABLE, NFTA_SET_ELEM_LIST_SET, NFTA_SET_ELEM_LIST_ELEMENTS = 1, 2, 3
NFTA_LIST_ELEM, NFTA_SET_ELEM_KEY, NFTA_DATA_VALUE = 1, 1, 1
NFTA_TABLE_NAME, NFTA_TABLE_USERDATA = 1, 6
# The mark: libnftnl's user data, one comment TLV (NFTNL_UDATA_TABLE_COMMENT,
# length with the NUL), so that `nft list` shows it as the table's comment.
MARK_TEXT = b"managed by hivrrp"
MARK = bytes([0, len(MARK_TEXT) + 1]) + MARK_TEXT + b"\0"


def _nftsocket():
    """pyroute2's nftables messages, imported at the first table (half a MiB
    that a daemon without no_accept instances does without)."""
    lean_pyroute2()
    from pyroute2.netlink.nfnetlink import nftsocket
    return nftsocket


def _type(kind: int) -> int:
    return (NFNL_SUBSYS_NFTABLES << 8) | kind


def _message(kind: int, flags: int, family: int, attrs: bytes) -> bytes:
    body = NFGENMSG.pack(NFPROTO.get(family, 0), 0, 0) + attrs
    return HEADER.pack(HEADER.size + len(body), _type(kind), NLM_F_REQUEST | flags, 0, 0) + body


def _encoded(msg, kind: int, flags: int, family: int) -> bytes:
    """A pyroute2 message's bytes (sequence number 0: batch() numbers them)."""
    msg["nfgen_family"] = NFPROTO[family]
    msg["res_id"] = 0
    msg["header"]["type"] = _type(kind)
    msg["header"]["flags"] = NLM_F_REQUEST | flags
    msg.encode()
    return bytes(msg.data)


def _table_msg(kind: int, flags: int, family: int, table: str) -> bytes:
    # One attribute: packed here, so that probing for and removing a table
    # (at every start, `hivrrp release`) needs no pyroute2.
    return _message(kind, flags, family, attr(NFTA_TABLE_NAME, table.encode() + b"\0"))


# ----------------------------------------------------------------- batches


def batch(messages: list[bytes], first_seq: int) -> tuple[bytes, int, int]:
    """One transaction: the messages between BATCH_BEGIN and BATCH_END, numbered
    from first_seq. Returns (datagram, seq of BEGIN, seq of END). Only BEGIN
    and END ask for an acknowledgement: the kernel answers a transaction's
    messages once it is over, the errors of a failed one included."""
    parts = [_batch_marker(NFNL_MSG_BATCH_BEGIN, first_seq)]
    seq = first_seq
    for message in messages:
        seq = (seq + 1) & 0xFFFFFFFF
        numbered = bytearray(message)
        struct.pack_into("=I", numbered, 8, seq)
        parts.append(bytes(numbered))
    end = (seq + 1) & 0xFFFFFFFF
    parts.append(_batch_marker(NFNL_MSG_BATCH_END, end))
    return b"".join(parts), first_seq, end


def _batch_marker(kind: int, seq: int) -> bytes:
    body = NFGENMSG.pack(socket.AF_UNSPEC, 0, NFNL_SUBSYS_NFTABLES)
    return HEADER.pack(HEADER.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK, seq, 0) + body


def list_tables(seq: int) -> bytes:
    """A dump of every table of every family (answered with NEWTABLE messages
    then NLMSG_DONE)."""
    numbered = bytearray(_message(NFT_MSG_GETTABLE, NLM_F_DUMP, 0, b""))
    struct.pack_into("=I", numbered, 8, seq)
    return bytes(numbered)


def parse_table(body: bytes) -> tuple[int | None, str, bytes | None]:
    """(family 4/6 or None for another, name, user data) of a NEWTABLE message's body."""
    family = FAMILY_OF.get(body[0]) if body else None
    name, userdata = "", None
    offset = NFGENMSG.size
    while offset + 4 <= len(body):
        length, kind = struct.unpack_from("=HH", body, offset)
        if length < 4:
            break
        value = body[offset + 4:offset + length]
        if kind & 0x3FFF == NFTA_TABLE_NAME:
            name = value.split(b"\0", 1)[0].decode(errors="replace")
        elif kind & 0x3FFF == NFTA_TABLE_USERDATA:
            userdata = value
        offset += (length + 3) & ~3
    return family, name, userdata


def delete_table(family: int, table: str) -> list[bytes]:
    """The table gone, whether it was there or not: "add" (no error if it
    exists) then delete, in the same transaction (the kernel before 6.3 has no
    delete-if-present)."""
    return [_table_msg(NFT_MSG_NEWTABLE, NLM_F_CREATE, family, table),
            _table_msg(NFT_MSG_DELTABLE, 0, family, table)]


def create_table(family: int, table: str, priority: int, counters: bool) -> list[bytes]:
    """The table with hivrrp's mark, its sets, chains and rules (sets empty but
    neighbour discovery's)."""
    out = [_message(NFT_MSG_NEWTABLE, NLM_F_CREATE, family,
                    attr(NFTA_TABLE_NAME, table.encode() + b"\0")
                    + attr(NFTA_TABLE_USERDATA, MARK))]
    for name, hook in (("in", NF_INET_LOCAL_IN), ("out", NF_INET_LOCAL_OUT)):
        out.append(_chain(family, table, name, (hook, priority)))
    key = (TYPE_IPADDR, 4) if family == 4 else (TYPE_IP6ADDR, 16)
    out.append(_set(family, table, VIPS, *key, set_id=1))
    if family == 4:
        out.append(_rule(family, table, "in",
                         _payload(NFT_PAYLOAD_NETWORK_HEADER, IPV4_DADDR, 4)
                         + _lookup(VIPS) + _verdict(NF_DROP, counters)))
        out.append(_rule(family, table, "out",
                         _payload(NFT_PAYLOAD_NETWORK_HEADER, IPV4_SADDR, 4)
                         + _lookup(VIPS) + _verdict(NF_DROP, counters)))
        return out
    for name in ("in_link_local", "out_link_local"):
        out.append(_chain(family, table, name, None))
    out.append(_set(family, table, LINK_LOCAL, (TYPE_IP6ADDR << TYPE_BITS) | TYPE_IFINDEX, 20,
                    set_id=2))
    out.append(_set(family, table, NEIGHBOUR_DISCOVERY, TYPE_ICMP6_TYPE, 1, set_id=3,
                    flags=NFT_SET_CONSTANT))
    out += set_elements(family, table, NEIGHBOUR_DISCOVERY,
                        [bytes([ND_NEIGHBOR_SOLICIT]), bytes([ND_NEIGHBOR_ADVERT])], True)
    for chain, offset, meta in (("in", IPV6_DADDR, NFT_META_IIF),
                                ("out", IPV6_SADDR, NFT_META_OIF)):
        # Neighbour discovery for the VIPs still flows, as keepalived lets it:
        # the owner must answer for (and probe) the address it holds.
        out.append(_rule(family, table, chain,
                         _payload(NFT_PAYLOAD_NETWORK_HEADER, IPV6_NEXT_HEADER, 1)
                         + _cmp(bytes([IPPROTO_ICMPV6]))
                         + _payload(NFT_PAYLOAD_TRANSPORT_HEADER, 0, 1)
                         + _lookup(NEIGHBOUR_DISCOVERY) + _verdict(NF_ACCEPT, counters)))
        out.append(_rule(family, table, chain,
                         _payload(NFT_PAYLOAD_NETWORK_HEADER, offset, 16)
                         + _bitwise(b"\xff\xc0" + b"\0" * 14)
                         + _cmp(b"\xfe\x80" + b"\0" * 14)
                         + _verdict(NFT_GOTO, counters, f"{chain}_link_local")))
        out.append(_rule(family, table, chain,
                         _payload(NFT_PAYLOAD_NETWORK_HEADER, offset, 16)
                         + _lookup(VIPS) + _verdict(NF_DROP, counters)))
        out.append(_rule(family, table, f"{chain}_link_local",
                         _payload(NFT_PAYLOAD_NETWORK_HEADER, offset, 16)
                         + _meta(meta, 2) + _lookup(LINK_LOCAL) + _verdict(NF_DROP, counters)))
    return out


def _chain(family: int, table: str, name: str, hook: tuple[int, int] | None) -> bytes:
    msg = _nftsocket().nft_chain_msg()
    attrs = [("NFTA_CHAIN_TABLE", table), ("NFTA_CHAIN_NAME", name)]
    if hook is not None:
        number, priority = hook
        attrs += [("NFTA_CHAIN_HOOK", {"attrs": [("NFTA_HOOK_HOOKNUM", number),
                                                 ("NFTA_HOOK_PRIORITY", priority)]}),
                  ("NFTA_CHAIN_POLICY", NF_ACCEPT), ("NFTA_CHAIN_TYPE", "filter")]
    msg["attrs"] = attrs
    return _encoded(msg, NFT_MSG_NEWCHAIN, NLM_F_CREATE, family)


def _set(family: int, table: str, name: str, key_type: int, key_len: int, *, set_id: int,
         flags: int = 0) -> bytes:
    """set_id: the kernel wants one, unique within the transaction."""
    msg = _nftsocket().nft_set_msg()
    msg["attrs"] = [("NFTA_SET_TABLE", table), ("NFTA_SET_NAME", name),
                    ("NFTA_SET_FLAGS", {"NFT_SET_CONSTANT"} if flags & NFT_SET_CONSTANT else set()),
                    ("NFTA_SET_KEY_TYPE", key_type), ("NFTA_SET_KEY_LEN", key_len),
                    ("NFTA_SET_ID", set_id)]
    return _encoded(msg, NFT_MSG_NEWSET, NLM_F_CREATE, family)


def _rule(family: int, table: str, chain: str, expressions: list) -> bytes:
    msg = _nftsocket().nft_rule_msg()
    msg["attrs"] = [("NFTA_RULE_TABLE", table), ("NFTA_RULE_CHAIN", chain),
                    ("NFTA_RULE_EXPRESSIONS", expressions)]
    return _encoded(msg, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family)


def _expr(name: str, *attrs) -> list:
    return [{"attrs": [("NFTA_EXPR_NAME", name), ("NFTA_EXPR_DATA", {"attrs": list(attrs)})]}]


def _payload(base: int, offset: int, length: int) -> list:
    return _expr("payload", ("NFTA_PAYLOAD_DREG", 1), ("NFTA_PAYLOAD_BASE", base),
                 ("NFTA_PAYLOAD_OFFSET", offset), ("NFTA_PAYLOAD_LEN", length))


def _meta(key: int, register: int) -> list:
    return _expr("meta", ("NFTA_META_KEY", key), ("NFTA_META_DREG", register))


def _lookup(set_name: str) -> list:
    return _expr("lookup", ("NFTA_LOOKUP_SET", set_name), ("NFTA_LOOKUP_SREG", 1))


def _value(data: bytes) -> dict:
    return {"attrs": [("NFTA_DATA_VALUE", data)]}


def _cmp(data: bytes) -> list:
    return _expr("cmp", ("NFTA_CMP_SREG", 1), ("NFTA_CMP_OP", 0), ("NFTA_CMP_DATA", _value(data)))


def _bitwise(mask: bytes) -> list:
    return _expr("bitwise", ("NFTA_BITWISE_SREG", 1), ("NFTA_BITWISE_DREG", 1),
                 ("NFTA_BITWISE_LEN", len(mask)), ("NFTA_BITWISE_MASK", _value(mask)),
                 ("NFTA_BITWISE_XOR", _value(b"\0" * len(mask))))


def _verdict(code: int, counter: bool, chain: str | None = None) -> list:
    """`nftables_counters`: a counter before the verdict, as keepalived's rules."""
    verdict: list = [("NFTA_VERDICT_CODE", code)]
    if chain is not None:
        verdict.append(("NFTA_VERDICT_CHAIN", chain))
    immediate = _expr("immediate", ("NFTA_IMMEDIATE_DREG", 0),
                      ("NFTA_IMMEDIATE_DATA", {"attrs": [("NFTA_DATA_VERDICT",
                                                          {"attrs": verdict})]}))
    return (_expr("counter") if counter else []) + immediate


# ------------------------------------------------------------ set elements


def set_elements(family: int, table: str, set_name: str, keys: list[bytes],
                 add: bool) -> list[bytes]:
    """NEWSETELEM (add) or DELSETELEM messages for `keys`, as many as needed.
    An addition of an element already there is no error (no NLM_F_EXCL); a
    removal of one that is not there fails the whole transaction."""
    head = (attr(NFTA_SET_ELEM_LIST_TABLE, table.encode() + b"\0")
            + attr(NFTA_SET_ELEM_LIST_SET, set_name.encode() + b"\0"))
    kind, flags = (NFT_MSG_NEWSETELEM, NLM_F_CREATE) if add else (NFT_MSG_DELSETELEM, 0)
    out = []
    for k in range(0, len(keys), ELEMENTS_PER_MESSAGE):
        elements = b"".join(
            attr(NFTA_LIST_ELEM | NLA_F_NESTED,
                  attr(NFTA_SET_ELEM_KEY | NLA_F_NESTED, attr(NFTA_DATA_VALUE, key)))
            for key in keys[k:k + ELEMENTS_PER_MESSAGE])
        out.append(_message(kind, flags, family,
                            head + attr(NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, elements)))
    return out
