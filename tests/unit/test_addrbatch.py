"""Our RTM_NEWADDR/RTM_DELADDR encoder against pyroute2's (an independent implementation)."""

import ipaddress
import socket

from hypothesis import given
from hypothesis import strategies as st
from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
from pyroute2.netlink.rtnl import RTM_DELADDR, RTM_NEWADDR
from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg

from hivrrp.kernel.addrbatch import (
    ENCODED_SEND,
    ENCODED_SEQ,
    SCOPES,
    AddressBatcher,
    Change,
    _change_of,
    encode,
    encode_all,
    errors,
)


def pyroute2_bytes(change: Change, seq: int, ack: bool) -> bytes:
    msg = ifaddrmsg()
    msg["family"] = socket.AF_INET if change.family == 4 else socket.AF_INET6
    msg["prefixlen"] = change.prefixlen
    msg["index"] = change.index
    attrs = [("IFA_LOCAL", change.address), ("IFA_ADDRESS", change.address)]
    if change.add:
        msg["scope"] = SCOPES[change.scope or "global"]
        if change.label:
            attrs.append(("IFA_LABEL", change.label))
        if change.broadcast and change.family == 4:
            attrs.append(("IFA_BROADCAST", change.broadcast))
        if change.nodad and change.family == 6:
            msg["flags"] = 0x02
    msg["attrs"] = attrs
    msg["header"]["type"] = RTM_NEWADDR if change.add else RTM_DELADDR
    msg["header"]["flags"] = NLM_F_REQUEST | (NLM_F_ACK if ack else 0) | (
        NLM_F_CREATE | NLM_F_EXCL if change.add else 0)
    msg["header"]["sequence_number"] = seq
    msg.encode()
    return bytes(msg.data)


v4 = st.ip_addresses(v=4).map(str)
v6 = st.ip_addresses(v=6).map(str)
changes = st.one_of(
    st.builds(Change, st.booleans(), st.integers(1, 2**31 - 1), st.just(4), v4,
              st.integers(0, 32), st.one_of(st.none(), st.text("abcdef:0123", min_size=1,
                                                              max_size=15)),
              st.one_of(st.none(), st.sampled_from(sorted(SCOPES))),
              st.one_of(st.none(), v4), st.booleans()),
    st.builds(Change, st.booleans(), st.integers(1, 2**31 - 1), st.just(6), v6,
              st.integers(0, 128), st.none(),
              st.one_of(st.none(), st.sampled_from(sorted(SCOPES))), st.none(), st.booleans()),
)


@given(changes, st.integers(0, 2**32 - 1), st.booleans())
def test_requests_match_pyroute2_byte_for_byte(change, seq, ack):
    assert encode(change, seq, ack) == pyroute2_bytes(change, seq, ack)


def test_removal_carries_no_options():
    added = Change(True, 3, 4, "192.0.2.7", 24, label="eth0:vip", scope="link",
                   broadcast="192.0.2.255")
    request = encode(added.removal(), 1)
    assert request == pyroute2_bytes(Change(False, 3, 4, "192.0.2.7", 24), 1, True)
    assert ipaddress.ip_address("192.0.2.7").packed in request and b"eth0:vip" not in request


def test_error_answers_are_read_with_the_kernels_text():
    # NLMSG_ERROR, NLM_F_ACK_TLVS: errno -17 for seq 9, request header echoed, then
    # an NLMSGERR_ATTR_MSG; followed by a plain ack (errno 0) for seq 10.
    text = b"Address already assigned\0"
    tlv = (4 + len(text)).to_bytes(2, "little") + (1).to_bytes(2, "little") + text
    tlv += b"\0" * (-len(tlv) % 4)
    echoed = bytes(16)
    first = (16 + 4 + 16 + len(tlv)).to_bytes(4, "little") + (2).to_bytes(2, "little") + \
        (0x200).to_bytes(2, "little") + (9).to_bytes(4, "little") + bytes(4) + \
        (-17).to_bytes(4, "little", signed=True) + echoed + tlv
    ack = (36).to_bytes(4, "little") + (2).to_bytes(2, "little") + bytes(2) + \
        (10).to_bytes(4, "little") + bytes(4) + bytes(4) + echoed
    assert list(errors(first + ack)) == [(9, 17, "Address already assigned"), (10, 0, "")]
    assert list(errors(first[:30])) == []  # a truncated datagram yields nothing, no exception


# --- pre-encoded units (a follower group's VIPs, encoded at plan build) ------------


def unit_changes(n, add=True, base=0):
    return [Change(add, 2, 4, f"10.1.{(base + i) // 250}.{(base + i) % 250 + 1}", 16)
            for i in range(n)]


def test_an_encoded_unit_is_the_requests_the_batcher_would_make_only_the_last_acked():
    changes = unit_changes(3)
    unit = encode_all(changes, ENCODED_SEQ + 7, key="g")
    assert unit.data == b"".join(encode(c, ENCODED_SEQ + 7 + i, ack=i == 2)
                                 for i, c in enumerate(changes))
    assert (unit.first, len(unit), unit.add) == (ENCODED_SEQ + 7, 3, True)


def test_units_and_plain_changes_go_out_together_in_order():
    batcher = AddressBatcher.__new__(AddressBatcher)     # no socket: only the plan of sends
    batcher.seq = 5
    plain_a, plain_b = unit_changes(2, base=100), unit_changes(1, base=200)
    u1 = encode_all(unit_changes(3), ENCODED_SEQ, key=1)
    u2 = encode_all(unit_changes(2, add=False), ENCODED_SEQ + 3, key=1)
    [(buffers, runs, last)] = list(batcher._sends([*plain_a, u1, u2, *plain_b]))
    # Each run acknowledged at its end, the send done with the last run's answer.
    assert buffers == [encode_all(plain_a, 5, None).data, u1.data, u2.data,
                       encode_all(plain_b, 7, None).data]
    assert runs == [(5, tuple(plain_a)), (u1.first, u1.changes), (u2.first, u2.changes),
                    (7, tuple(plain_b))]
    assert last == 7
    # An answer's sequence number names its change, whichever run it is in.
    assert _change_of(runs, ENCODED_SEQ + 4) is u2.changes[1]
    assert _change_of(runs, ENCODED_SEQ + 1) is u1.changes[1]
    assert _change_of(runs, 6) is plain_a[1]
    assert _change_of(runs, 3) is None


def test_units_beyond_one_send_are_split_and_plain_seqs_never_reach_the_units():
    batcher = AddressBatcher.__new__(AddressBatcher)
    batcher.seq = ENCODED_SEQ - 1                    # about to run into the units' numbers
    big = [encode_all(unit_changes(4000, base=4000 * k), ENCODED_SEQ + 4000 * k, key=k)
           for k in range(4)]
    sends = list(batcher._sends([*unit_changes(2), *big]))
    assert sends[0][1][0][0] == 0                    # wrapped to 0, not into ENCODED_SEQ
    assert len(sends) == 2                           # 16,000 requests of 40 bytes: 2 sends
    assert all(sum(len(b) for b in buffers) <= ENCODED_SEND for buffers, _r, _l in sends)
    assert [first for _b, runs, _l in sends for first, _c in runs] == [
        0, *(ENCODED_SEQ + 4000 * k for k in range(4))]


def test_a_send_never_outgrows_the_sockets_send_buffer(monkeypatch):
    import hivrrp.kernel.addrbatch as addrbatch
    from helpers.netlink_sockets import capped_request_socket

    monkeypatch.setattr(addrbatch, "request_socket", capped_request_socket)
    batcher = AddressBatcher()
    try:
        limit = batcher.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        assert batcher.send_limit < limit < ENCODED_SEND
        units = [encode_all(unit_changes(2500, base=2500 * k), ENCODED_SEQ + 2500 * k, key=k)
                 for k in range(4)]
        sends = list(batcher._sends(units))
        assert len(sends) == 4
        assert all(sum(len(b) for b in buffers) <= batcher.send_limit
                   for buffers, _r, _l in sends)
    finally:
        batcher.close()


def test_an_encoded_unit_is_acknowledged_at_the_end_of_every_run():
    from hivrrp.kernel.rtnl import NLM_F_ACK, messages
    unit = encode_all(unit_changes(1200), ENCODED_SEQ, key="g")
    acked = [seq for _kind, flags, seq, _body in messages(unit.data) if flags & NLM_F_ACK]
    assert acked == [ENCODED_SEQ + 511, ENCODED_SEQ + 1023, ENCODED_SEQ + 1199]
    assert [done for _end, done in unit.runs] == [512, 1024, 1200]
    assert unit.runs[-1][0] == len(unit.data)


def test_with_progress_sends_are_smaller_and_each_reports_the_items_now_in(monkeypatch):
    import hivrrp.kernel.addrbatch as addrbatch
    monkeypatch.setattr(addrbatch, "PROGRESS_SEND", 16 << 10)     # about a group a send
    batcher = AddressBatcher.__new__(AddressBatcher)     # no socket: a recording stand-in
    batcher.seq, batcher.stale, batcher.send_limit = 5, False, ENCODED_SEND
    sends, answered = [], []

    class Sock:
        def sendmsg(self, buffers):
            sends.append(sum(len(b) for b in buffers))

    batcher.sock = Sock()
    batcher._answers = lambda runs, last: answered.append(sum(len(r) for _f, r in runs)) or []
    # A mass takeover's trip: each leader's own VIP, then its followers' unit.
    units = [encode_all(unit_changes(249, base=250 * k), ENCODED_SEQ + 249 * k, key=k)
             for k in range(4)]
    changes = []
    for k, unit in enumerate(units):
        changes += [Change(True, 2, 4, f"10.2.0.{k + 1}", 16), unit]
    changes.append(encode_all([], ENCODED_SEQ + 9999, key="empty"))  # nothing to send
    done = []
    assert batcher.apply(changes, progress=done.append) == []
    assert len(sends) == 4 and all(size <= 16 << 10 for size in sends)
    # After each send: every item whose requests were all answered (the next
    # leader's VIP rides with a unit; an empty unit counts with the item
    # before it), none whose requests were not.
    assert answered == [251, 250, 250, 249] and done == [3, 5, 7, 9]
    # Without progress: as few sends as fit.
    sends.clear()
    batcher.apply(changes)
    assert len(sends) == 1
