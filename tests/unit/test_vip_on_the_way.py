"""VipQueue.on_the_way(): the VIP additions queued or in flight and not in
the kernel yet, which announcements leave out around a reload."""

from __future__ import annotations

import asyncio
import socket

from hivrrp.daemon.reactor import SetVips
from hivrrp.kernel.addrbatch import Change
from hivrrp.kernel.vipqueue import VipQueue


class FakePlan:
    def unit_key(self, change):
        return None


def add(address: str) -> Change:
    return Change(True, 2, 4, address, 24)


def packed(address: str) -> tuple[int, bytes]:
    return (2, socket.inet_aton(address))


def queue(gates: list[asyncio.Event], plan: list):
    """A VipQueue whose trips each wait for the next of `gates`."""
    trips = iter(gates)

    async def apply(changes, **kw):
        await next(trips).wait()
        return []

    async def routes(add, entries):
        return []
    return VipQueue(apply, routes, lambda action: None, lambda: plan[0], progressive=True)


def test_a_resync_during_a_reloads_trip_does_not_hide_addresses_already_in():
    # A resync re-adds every master's VIPs after lost netlink news: they are
    # in already, and counting them on their way silenced their announcements.
    async def scenario():
        plan, gate = [FakePlan()], asyncio.Event()
        q = queue([gate, asyncio.Event()], plan)
        q.submit([SetVips((add("192.0.2.10"),))])          # a trip, held
        await asyncio.sleep(0)
        plan[0] = FakePlan()                               # a reload installed ...
        q.submit([SetVips((add("192.0.2.11"),))])          # ... its new master's VIP
        q.submit([SetVips((add("192.0.2.99"),), reassert=True)])
        away = q.on_the_way()
        assert packed("192.0.2.11") in away and packed("192.0.2.10") in away
        assert packed("192.0.2.99") not in away
        gate.set()
        q.pending.reasserted.clear()     # (the next trip's gate is never set: end here)
        q.task.cancel()
    asyncio.run(scenario())


def test_each_trip_is_seen_afresh_not_through_the_last_ones_set():
    # A cache keyed by id() saw a freed list's reused address as the old trip.
    async def scenario():
        plan, gates = [FakePlan()], [asyncio.Event() for _ in range(4)]
        q = queue(gates, plan)
        q.submit([SetVips((add("192.0.2.2"),))])         # the first plan's (no mark)
        gates[0].set()
        await q.idle()
        seen = []
        for k, address in enumerate(("192.0.2.20", "192.0.2.21", "192.0.2.22")):
            plan[0] = FakePlan()                           # a reload around each trip
            q.submit([SetVips((add(address),))])
            await asyncio.sleep(0)
            seen.append(q.on_the_way())
            gates[k + 1].set()
            await q.idle()
        assert seen == [frozenset({packed(a)}) for a in ("192.0.2.20", "192.0.2.21", "192.0.2.22")]
    asyncio.run(scenario())


def test_a_reload_during_a_trip_with_nothing_to_queue_leaves_no_mark():
    # Its mark would keep the next plain takeover off its fast path.
    async def scenario():
        plan, gate = [FakePlan()], asyncio.Event()
        q = queue([gate], plan)
        q.submit([SetVips((add("192.0.2.30"),))])
        await asyncio.sleep(0)
        plan[0] = FakePlan()
        q.submit([])                                       # the reload's (no VIP change)
        assert q.pending.marks
        gate.set()
        await q.idle()
        assert not q.pending.marks and q.on_the_way() == frozenset()
    asyncio.run(scenario())


def test_the_first_plan_leaves_no_mark():
    # No reload made it: the daemon's first takeover keeps its fast path.
    async def scenario():
        plan, gate = [FakePlan()], asyncio.Event()
        q = queue([gate], plan)
        q.submit([SetVips((add("192.0.2.40"),))])
        await asyncio.sleep(0)
        assert q.on_the_way() == frozenset() and not q.inflight_marked
        gate.set()
        await q.idle()
    asyncio.run(scenario())
