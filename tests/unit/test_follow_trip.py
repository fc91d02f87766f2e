"""A follower group's unit on its way to netlink (vipqueue.Batch, addrbatch):
the last word within a trip, every failure reported, sends that fit the
socket's send buffer."""


from helpers.follow import VIPS, group_text


class FakeKernel:
    """A NETLINK_ROUTE socket as the kernel answers it: every request in a
    sendmsg handled in order, an NLMSG_ERROR datagram for each that fails
    (errno from `fail`, by (add, address)) or asks for an acknowledgement."""

    def __init__(self, fail: dict[tuple[bool, str], int]) -> None:
        self.fail = fail
        self.answers: list[bytes] = []

    def sendmsg(self, buffers) -> int:
        import socket
        import struct

        from hivrrp.kernel.rtnl import (
            HEADER,
            IFADDRMSG,
            NLM_F_ACK,
            NLMSG_ERROR,
            RTM_NEWADDR,
            message,
            messages,
        )
        data = b"".join(buffers)
        for kind, flags, seq, body in messages(data):
            # The first attribute is IFA_LOCAL (4-byte header, then the address).
            address = socket.inet_ntop(socket.AF_INET, body[IFADDRMSG.size + 4:
                                                            IFADDRMSG.size + 8])
            code = self.fail.get((kind == RTM_NEWADDR, address), 0)
            if code or flags & NLM_F_ACK:
                echo = HEADER.pack(HEADER.size + len(body), kind, flags, seq, 0)
                self.answers.append(message(NLMSG_ERROR, 0, seq,
                                            struct.pack("=i", -code) + echo))
        return len(data)

    def recv(self, size: int) -> bytes:
        import socket
        if not self.answers:
            raise socket.timeout()
        return self.answers.pop(0)

    def settimeout(self, timeout) -> None:
        pass

    def setblocking(self, flag) -> None:
        pass


def fake_batcher(kernel, monkeypatch):
    import hivrrp.kernel.addrbatch as addrbatch
    from hivrrp.kernel.addrbatch import AddressBatcher

    monkeypatch.setattr(addrbatch, "ACK_TIMEOUT", 0.5)
    batcher = AddressBatcher.__new__(AddressBatcher)
    batcher.sock, batcher.seq, batcher.stale = kernel, 1, False
    batcher.send_limit = addrbatch.ENCODED_SEND
    return batcher


def test_a_unit_repeated_in_one_trip_still_reports_every_failure(tmp_path, monkeypatch):
    import errno

    from helpers.plans import plan_of
    from hivrrp.daemon import reactor
    from hivrrp.kernel.addrbatch import Encoded

    plan = plan_of(tmp_path, group_text(VIPS, head=""))
    leader, group = plan.instances["L"], plan.followers["L"]
    # What a trip held when the leader went MASTER, BACKUP, MASTER while the
    # trip before ran, before Batch kept the last word on a unit (the
    # leader's own actions, then its group's unit): the batcher must report
    # every failure of whatever list it is given.
    changes = []
    for old, new in (("BACKUP", "MASTER"), ("MASTER", "BACKUP"), ("BACKUP", "MASTER")):
        for action in (reactor.transition(leader, old, new, "x")
                       + reactor.group_transition(group, old, new, len(VIPS))):
            if isinstance(action, reactor.SetVips):
                changes += action.changes
    units = [c for c in changes if isinstance(c, Encoded)]
    assert len(units) == 3 and units[0] is units[2]      # the same unit, twice
    kernel = FakeKernel({(False, "192.0.2.11"): errno.EPERM})   # F1's VIP will not go
    failures = fake_batcher(kernel, monkeypatch).apply(changes)
    assert [(c.address, c.add, why) for c, why in failures] == [
        ("192.0.2.11", False, "Operation not permitted")]
    assert kernel.answers == []          # nothing left for the next trip to misread


def test_two_plans_units_in_one_trip_each_report_their_own_failures(tmp_path, monkeypatch):
    import errno

    from helpers.plans import plan_of

    # Around a reload: the old plan's group addition still queued, and the
    # new plan's (its followers changed) after a flap of the leader: both
    # numbered from ENCODED_SEQ at their builds.
    old = plan_of(tmp_path, group_text(VIPS, head="")).followers["L"]
    new = plan_of(tmp_path, group_text({"G0": "192.0.2.20", "G1": "192.0.2.21"},
                                       head="")).followers["L"]
    assert new.vips.first == old.vips.first                # the same numbers
    kernel = FakeKernel({(True, "192.0.2.11"): errno.EINVAL, (True, "192.0.2.21"): errno.EPERM})
    failures = fake_batcher(kernel, monkeypatch).apply([old.vips, new.vips])
    assert sorted((c.address, why) for c, why in failures) == [
        ("192.0.2.11", "Invalid argument"), ("192.0.2.21", "Operation not permitted")]
    assert kernel.answers == []


def test_a_group_unit_larger_than_the_send_buffer_is_split(monkeypatch):

    import hivrrp.kernel.addrbatch as addrbatch
    from helpers.netlink_sockets import capped_request_socket
    from hivrrp.kernel.addrbatch import ENCODED_SEQ, AddressBatcher, Change, encode_all

    monkeypatch.setattr(addrbatch, "request_socket", capped_request_socket)
    batcher = AddressBatcher()
    try:
        # One leader's 4,000 followers, a VIP each: one unit of 160,000 bytes.
        changes = [Change(True, 2, 4, f"10.1.{k // 250}.{k % 250 + 1}", 16) for k in range(4000)]
        unit = encode_all(changes, ENCODED_SEQ, key=object())
        assert len(unit.data) > batcher.send_limit
        sends = list(batcher._sends([unit]))
        assert all(sum(len(b) for b in buffers) <= batcher.send_limit
                   for buffers, _runs, _last in sends)
        # The pieces are the unit, cut between runs: each send ends on an
        # acknowledged request, and its answer's number ends it.
        from hivrrp.kernel.rtnl import NLM_F_ACK, messages
        assert len(sends) > 1
        assert b"".join(bytes(b) for buffers, _r, _l in sends for b in buffers) == unit.data
        assert [c for _b, runs, _l in sends for _f, cs in runs for c in cs] == changes
        for buffers, runs, last in sends:
            *_, (_kind, flags, seq, _body) = messages(b"".join(bytes(b) for b in buffers))
            assert flags & NLM_F_ACK and seq == last == runs[-1][0] + len(runs[-1][1]) - 1
    finally:
        batcher.close()


def test_a_group_flap_within_one_trip_sends_only_the_last_word(tmp_path):
    from helpers.plans import plan_of
    from hivrrp.daemon import reactor
    from hivrrp.kernel.addrbatch import Encoded
    from hivrrp.kernel.vipqueue import Batch

    plan = plan_of(tmp_path, group_text(VIPS, head=""))
    leader, group = plan.instances["L"], plan.followers["L"]
    batch = Batch()
    for old, new in (("BACKUP", "MASTER"), ("MASTER", "BACKUP"), ("BACKUP", "MASTER")):
        for action in (reactor.transition(leader, old, new, "x")
                       + reactor.group_transition(group, old, new, len(VIPS))):
            batch.add(action)
    sent = [c for item in batch.vips
            for c in (item.changes if isinstance(item, Encoded) else [item])]
    # As for independent instances (one dict, the last word per address): every
    # VIP ends added, and nothing is taken away on the way.
    assert [c.address for c in sent if not c.add] == []


def sent_of(batch):
    """(add, address) of every change the trip sends, a unit's unpacked."""
    from hivrrp.kernel.addrbatch import Encoded
    return [(c.add, c.address) for item in batch.vips
            for c in (item.changes if isinstance(item, Encoded) else [item])]


def queued(batch, plan, steps):
    """What on_engine_events queues for each (name, old, new, moved) in turn:
    an instance's own actions, and a leader's group's unit when it moved all."""
    from hivrrp.daemon import reactor
    for name, old, new, moved in steps:
        for action in reactor.transition(plan.instances[name], old, new, "x"):
            batch.add(action)
        group = plan.followers.get(name)
        for action in (reactor.group_transition(group, old, new, moved) or []) if group else []:
            batch.add(action)


def test_a_partial_flap_within_one_trip_sends_no_removal_of_what_ends_added(tmp_path):
    from helpers.plans import plan_of
    from hivrrp.kernel.vipqueue import Batch

    plan = plan_of(tmp_path, group_text(VIPS, head=""))
    batch = Batch(plan.unit_key)
    # The leader moves all three followers to MASTER; F1 faults on its own;
    # the leader goes BACKUP with F0 and F2 (each one's own removals); F1's
    # fault clears (BACKUP); the leader takes all three to MASTER again.
    queued(batch, plan, [("L", "BACKUP", "MASTER", 3), ("F1", "MASTER", "FAULT", 0),
                         ("L", "MASTER", "BACKUP", 2), ("F0", "MASTER", "BACKUP", 0),
                         ("F2", "MASTER", "BACKUP", 0), ("L", "BACKUP", "MASTER", 3)])
    sent = sent_of(batch)
    assert [address for add, address in sent if not add] == []
    assert sorted(address for add, address in sent) == sorted(["192.0.2.200", *VIPS.values()])


def test_followers_own_removals_after_their_groups_unit_are_the_last_word(tmp_path):
    from helpers.plans import plan_of
    from hivrrp.kernel.vipqueue import Batch

    plan = plan_of(tmp_path, group_text(VIPS, head=""))
    batch = Batch(plan.unit_key)
    # MASTER as a group, then out of it one by one (F1 faulted first): the
    # followers' VIPs end removed and are never added on the way.
    queued(batch, plan, [("L", "BACKUP", "MASTER", 3), ("F1", "MASTER", "FAULT", 0),
                         ("L", "MASTER", "BACKUP", 2), ("F0", "MASTER", "BACKUP", 0),
                         ("F2", "MASTER", "BACKUP", 0)])
    sent = sent_of(batch)
    assert [address for add, address in sent if add] == []
    assert sorted(address for _add, address in sent) == sorted(["192.0.2.200", *VIPS.values()])
    # And a follower VIP re-added (vip_removed) beside its group's addition
    # is sent once, within the unit.
    from hivrrp.daemon import reactor
    again = Batch(plan.unit_key)
    queued(again, plan, [("L", "BACKUP", "MASTER", 3)])
    again.add(reactor.vip_removed(plan.instances["F2"], "MASTER", 2, "192.0.2.12")[0])
    assert sorted(sent_of(again)) == sorted((True, a) for a in ["192.0.2.200", *VIPS.values()])
