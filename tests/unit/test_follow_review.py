"""Review of follower instances (issue 21): reproductions of bugs found in the
merged change, each marked xfail(strict=True) until it is fixed."""

import asyncio

import pytest

from helpers.fakedaemon import reload, settle, started
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp._engine import FAULT_INTERFACE, FAULT_TRACKER
from hivrrp.daemon.driver import now_us
from hivrrp.kernel.announce_policy import FOLLOWERS

# Announcements fast enough to watch: one frame per burst, no delayed burst,
# a refresh round every 40 ms.
GARP_REFRESH = """
global_defs {
    vrrp_garp_master_delay 0
    vrrp_garp_master_repeat 1
    vrrp_garp_master_refresh 0.04
    vrrp_garp_master_refresh_repeat 1
}
"""


def group_text(vips: dict[str, str], head: str = GARP_REFRESH) -> str:
    """Leader L (192.0.2.200) and a follower per entry of `vips` (name -> VIP)."""
    out = head + instance_text("L", 1, ["192.0.2.200/24"], priority=200)
    for k, (name, vip) in enumerate(vips.items()):
        out += instance_text(name, 2 + k, [f"{vip}/24"], priority=200, extra="    follow L\n")
    return out


VIPS = {"F0": "192.0.2.10", "F1": "192.0.2.11", "F2": "192.0.2.12"}


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 20))


def fire(d, name):
    """The instance's timer is due now (a backup's master-down): run it as the driver does."""
    engine = d.plan.engine
    engine.expire(engine.timer(d.plan.index[name]))
    d.driver.after_engine_work()


def announced(d) -> set[str]:
    """The addresses of the gratuitous ARPs sent (the ARP target of each frame)."""
    return {".".join(str(b) for b in frame[-4:]) for frame in d.frames}


@pytest.mark.xfail(strict=True, reason="a leader's group refresh chain keeps the announce "
                   "entries of the plan it started under: after a reload that changes a "
                   "follower's VIP it announces the removed address and never the new one")
def test_a_reload_that_changes_a_followers_vip_refreshes_the_new_vip_not_the_old(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        assert set(d.plan.states().values()) == {"MASTER"}
        assert (FOLLOWERS, "L") in d.garp.pending            # the group's refresh chain
        # F0's VIP moves from .10 to .110; everything stays MASTER.
        await reload(d, group_text({**VIPS, "F0": "192.0.2.110"}))
        assert set(d.plan.states().values()) == {"MASTER"}
        d.frames.clear()
        await asyncio.sleep(0.2)                             # about 5 refresh rounds
        sent = announced(d)
        # 192.0.2.10 is no longer ours (the reload removed it): a GARP for it
        # points the LAN's caches at us for an address we do not answer.
        assert "192.0.2.10" not in sent
        assert "192.0.2.110" in sent
        d.driver.close()
    run(scenario())


@pytest.mark.xfail(strict=True, reason="the group's refresh chain is stopped only by the "
                   "group's own StopAnnouncing: followers that leave MASTER one by one (a "
                   "partial move) leave it running, and it doubles their refreshes later")
def test_followers_leaving_master_one_by_one_end_their_groups_refresh_chain(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        engine = d.plan.engine
        fire(d, "L")
        await settle(d)
        assert (FOLLOWERS, "L") in d.garp.pending
        # F1 faults on its own; then the leader faults: it moves F0 and F2
        # only, so they take the per-follower path (StopAnnouncing by name).
        engine.set_fault(d.plan.index["F1"], FAULT_TRACKER, True, now_us(d.loop))
        d.driver.after_engine_work()
        await settle(d)
        engine.set_fault(d.plan.index["L"], FAULT_INTERFACE, True, now_us(d.loop))
        d.driver.after_engine_work()
        await settle(d)
        assert d.plan.states() == {"L": "FAULT", "F0": "BACKUP", "F1": "FAULT",
                                   "F2": "BACKUP"}
        # Nobody of the group is master: nothing of its announcements may stay.
        assert (FOLLOWERS, "L") not in d.garp.pending
        # It does harm once they are masters again the same way: F0's VIP is
        # then refreshed by its own chain and by the group's, twice a round.
        engine.set_fault(d.plan.index["L"], FAULT_INTERFACE, False, now_us(d.loop))
        d.driver.after_engine_work()
        fire(d, "L")
        await settle(d)
        assert d.plan.states()["F0"] == "MASTER"
        d.frames.clear()
        await asyncio.sleep(0.2)
        f0 = sum(1 for frame in d.frames if frame[-4:] == bytes([192, 0, 2, 10]))
        l_ = sum(1 for frame in d.frames if frame[-4:] == bytes([192, 0, 2, 200]))
        assert f0 <= l_ + 1
        d.driver.close()
    run(scenario())


@pytest.mark.xfail(strict=True, reason="followers_became_master() does not check that the "
                   "followers are still master when their trip is done: a leader that left "
                   "MASTER before the trip ended leaves a group refresh chain running")
def test_a_group_that_left_master_before_its_trip_ended_gets_no_refresh_chain(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        engine = d.plan.engine
        fire(d, "L")                                   # the group's unit and Announce queued
        engine.set_fault(d.plan.index["L"], FAULT_INTERFACE, True, now_us(d.loop))
        d.driver.after_engine_work()                   # ... and its release, same trip
        await settle(d)
        assert set(d.plan.states().values()) == {"FAULT", "BACKUP"}
        assert "L" not in d.garp.pending               # the leader's own: checked, none
        assert (FOLLOWERS, "L") not in d.garp.pending  # the group's: runs for ever
        d.driver.close()
    run(scenario())


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
            HEADER, IFADDRMSG, NLM_F_ACK, NLMSG_ERROR, RTM_NEWADDR, message, messages)
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


@pytest.mark.xfail(strict=True, reason="a trip that holds the same pre-encoded unit twice "
                   "(a leader that flapped MASTER-BACKUP-MASTER while the previous trip ran) "
                   "sends the same sequence numbers twice: the batcher takes the first copy's "
                   "acknowledgement for the end of the send and loses the failures after it, "
                   "leaving their answers to be misread by the next trip")
def test_a_unit_repeated_in_one_trip_still_reports_every_failure(tmp_path, monkeypatch):
    import errno

    import hivrrp.kernel.addrbatch as addrbatch
    from helpers.plans import plan_of
    from hivrrp.daemon import reactor
    from hivrrp.kernel.addrbatch import AddressBatcher, Encoded
    from hivrrp.kernel.vipqueue import Batch

    monkeypatch.setattr(addrbatch, "ACK_TIMEOUT", 0.5)
    plan = plan_of(tmp_path, group_text(VIPS, head=""))
    leader, group = plan.instances["L"], plan.followers["L"]
    batch = Batch()
    # What the VIP queue holds when the leader went MASTER, BACKUP, MASTER
    # while the trip before ran (on_engine_events: the leader's own actions,
    # then its group's unit).
    for old, new in (("BACKUP", "MASTER"), ("MASTER", "BACKUP"), ("BACKUP", "MASTER")):
        for action in (reactor.transition(leader, old, new, "x")
                       + reactor.group_transition(group, old, new, len(VIPS))):
            batch.add(action)
    changes = batch.vips
    units = [c for c in changes if isinstance(c, Encoded)]
    assert len(units) == 3 and units[0] is units[2]      # the same unit, twice
    kernel = FakeKernel({(False, "192.0.2.11"): errno.EPERM})   # F1's VIP will not go
    batcher = AddressBatcher.__new__(AddressBatcher)
    batcher.sock, batcher.seq, batcher.stale = kernel, 1, False
    batcher.send_limit = addrbatch.ENCODED_SEND
    failures = batcher.apply(changes)
    assert [(c.address, c.add, why) for c, why in failures] == [
        ("192.0.2.11", False, "Operation not permitted")]
    assert kernel.answers == []          # nothing left for the next trip to misread


@pytest.mark.xfail(strict=True, reason="at SIGTERM the followers' STOP events are handed to "
                   "the notifier in slices scheduled after the leaders' release, and "
                   "shutdown() closes the notifier once the VIPs' trip is done, whether or "
                   "not the slices are: the later followers' STOP notify/FIFO lines are lost")
def test_shutdown_notifies_every_followers_stop_before_the_notifier_closes(
        tmp_path, monkeypatch):
    import hivrrp.daemon.wiring as wiring

    # 40 followers in slices of 4: as 10,000 in slices of 512 whose notify
    # work takes longer than the netlink trip that removes their VIPs.
    monkeypatch.setattr(wiring, "REPORT_SLICE", 4)
    names = {f"F{k}": f"192.0.2.{10 + k}" for k in range(40)}

    async def scenario():
        d = await started(tmp_path, group_text(names, head=""), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        await asyncio.sleep(0.05)                     # the MASTER reports are all out
        d.notifications.followers_silent = False      # as with a FIFO or notify scripts
        notifier = d.notifications.notifier
        seen = []
        real = notifier._event

        def event(kind, name, state, priority, scripts):
            seen.append((name, state, notifier._closed))
            return real(kind, name, state, priority, scripts)

        monkeypatch.setattr(notifier, "_event", event)
        await d.shutdown()
        stops = {name: closed for name, state, closed in seen if state == "STOP"}
        assert sorted(stops) == sorted(["L", *names])
        assert not any(stops.values())                # none after the notifier closed
    run(scenario())


@pytest.mark.xfail(strict=True, reason="followers_silent is worked out from the reloaded "
                   "file's notify_fifo, but the FIFO opened at start stays in use until a "
                   "restart: after a reload that drops the notify_fifo line the followers' "
                   "lines are discarded while every other instance's still reach the FIFO")
def test_followers_state_lines_reach_the_fifo_still_open_after_a_reload(tmp_path, monkeypatch):
    import os

    fifo = tmp_path / "notify.fifo"
    with_fifo = f"global_defs {{\n    notify_fifo {fifo}\n}}\n"

    async def scenario():
        d = await started(tmp_path, group_text(VIPS, head=with_fifo), LINKS, ADDRESSES,
                          monkeypatch)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        try:
            # The line goes: "take effect at the next restart; the FIFOs opened
            # at start stay in use" (Notifications.configure).
            await reload(d, group_text(VIPS, head=""))
            os.read(reader, 1 << 16)
            fire(d, "L")
            await settle(d)
            await asyncio.sleep(0.05)
            lines = os.read(reader, 1 << 16).decode().splitlines()
        finally:
            os.close(reader)
        assert 'INSTANCE "L" MASTER 200' in lines            # the leader's: written
        assert [line for line in lines if '"F' in line] == [
            f'INSTANCE "{name}" MASTER 200' for name in VIPS]
        d.driver.close()
        await d.notifications.close()
    run(scenario())


@pytest.mark.xfail(strict=True, reason="on a partial move followers_moved() reports the "
                   "followers' events before on_engine_events() notifies the leader's own: "
                   "notify scripts and the FIFO hear the followers become MASTER before "
                   "their leader, the reverse of the engine's order and of a whole move")
def test_a_partial_move_notifies_the_leader_before_its_followers(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        engine = d.plan.engine
        engine.set_fault(d.plan.index["F1"], FAULT_TRACKER, True, now_us(d.loop))
        d.driver.after_engine_work()
        await settle(d)
        d.notifications.followers_silent = False
        order = []
        real = d.notifications.event

        def event(name, old, new, reason, priority):
            if old != new:
                order.append((name, new))
            return real(name, old, new, reason, priority)

        monkeypatch.setattr(d.notifications, "event", event)
        fire(d, "L")                               # moves F0 and F2, not F1 (FAULT)
        await settle(d)
        assert order == [("L", "MASTER"), ("F0", "MASTER"), ("F2", "MASTER")]
        d.driver.close()
    run(scenario())


@pytest.mark.xfail(strict=True, reason="a reload that removes a leader and its followers "
                   "stops announcing each by name; the group's refresh chain, keyed by the "
                   "leader, runs on for ever with the removed instances' addresses")
def test_a_reload_that_removes_a_group_ends_its_refresh_chain(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS), LINKS, ADDRESSES, monkeypatch)
        fire(d, "L")
        await settle(d)
        assert (FOLLOWERS, "L") in d.garp.pending
        await reload(d, GARP_REFRESH + instance_text("OTHER", 99, ["192.0.2.99/24"]))
        assert list(d.plan.names) == ["OTHER"]
        assert (FOLLOWERS, "L") not in d.garp.pending
        d.driver.close()
    run(scenario())


@pytest.mark.xfail(strict=True, reason="a follower group's unit is never split: one larger "
                   "than the socket's send buffer goes out as one sendmsg, which netlink "
                   "refuses (EMSGSIZE), failing every VIP of the group")
def test_a_group_unit_larger_than_the_send_buffer_is_split(monkeypatch):
    import socket

    import hivrrp.kernel.addrbatch as addrbatch
    from hivrrp.kernel.addrbatch import ENCODED_SEQ, AddressBatcher, Change, encode_all

    def capped(receive, send=0, protocol=socket.NETLINK_ROUTE):
        # As test_addrbatch's: a send buffer the process could not force.
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, protocol)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
        return sock

    monkeypatch.setattr(addrbatch, "request_socket", capped)
    batcher = AddressBatcher()
    try:
        # One leader's 4,000 followers, a VIP each: one unit of 160,000 bytes.
        changes = [Change(True, 2, 4, f"10.1.{k // 250}.{k % 250 + 1}", 16) for k in range(4000)]
        unit = encode_all(changes, ENCODED_SEQ, key=object())
        assert len(unit.data) > batcher.send_limit
        sends = list(batcher._sends([unit]))
        assert all(sum(len(b) for b in buffers) <= batcher.send_limit
                   for buffers, _runs, _last in sends)
    finally:
        batcher.close()


@pytest.mark.xfail(strict=True, reason="a follower group's units are kept whole and only a "
                   "unit right after the same group's unit replaces it: a leader that goes "
                   "MASTER, BACKUP, MASTER within one trip sends the followers' VIPs add, "
                   "remove, add (the leader's own changes sit between the units), a real "
                   "removal where the last word is add")
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


@pytest.mark.xfail(strict=True, reason="the group's Announce runs when its trip is done and "
                   "reads the group from the plan running then: a follower that a reload "
                   "added meanwhile is announced before the trip that adds its VIP")
def test_a_follower_added_while_its_groups_trip_runs_is_announced_after_its_vip(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, group_text(VIPS, head=""), LINKS, ADDRESSES, monkeypatch)
        net = d.netlink
        gate = asyncio.Event()
        real_apply = net.apply

        async def slow_first_trip(changes, drop=(), undrop=()):
            if not gate.is_set():
                await gate.wait()                      # the takeover's trip, in flight
            return await real_apply(changes, drop, undrop)

        d.vips.apply_vips = slow_first_trip
        sent_while = []                                # (address, its VIP in place then)

        class Recorder:
            def sendto(self, frame, where):
                address = ".".join(str(b) for b in frame[-4:])
                held = {c.address: c.add for c in net.applied}
                sent_while.append((address, held.get(address, False)))

            def close(self):
                pass

        d.garp.announcer.packet_socket = Recorder()
        fire(d, "L")                                   # the group's unit goes out
        await asyncio.sleep(0.01)
        # Meanwhile a reload adds F3: it comes up MASTER with its leader.
        await reload_nowait(d, group_text({**VIPS, "F3": "192.0.2.13"}, head=""))
        assert d.plan.states()["F3"] == "MASTER"
        gate.set()
        await settle(d)
        await asyncio.sleep(0.05)
        f3 = [held for address, held in sent_while if address == "192.0.2.13"]
        assert f3 and all(f3)                          # never before its VIP is there
        d.driver.close()
    run(scenario())


async def reload_nowait(d, text: str) -> None:
    """reload() without waiting for the VIP queue (its trip is held)."""
    from helpers.conf import write
    write(d.directory, "keepalived.conf", text)
    d.lifecycle.request_reload()
    for _ in range(400):
        await asyncio.sleep(0.005)
        if d.lifecycle.task is None:
            return
    raise AssertionError("the reload did not finish")
