"""Background tasks report how they ended; the VIP queue survives a failed trip."""

import asyncio

from hivrrp.daemon.reactor import Announce, SetRoutes, SetVips
from hivrrp.kernel.addrbatch import Change
from hivrrp.kernel.vipqueue import VipQueue
from hivrrp.util.tasks import spawn


def test_an_exception_in_a_task_nobody_awaits_is_logged(caplog):
    async def scenario():
        async def broken():
            raise IndexError("no instance 7")
        spawn(broken(), "announce")
        await asyncio.sleep(0.01)
    asyncio.run(scenario())
    assert "announce failed" in caplog.text and "IndexError: no instance 7" in caplog.text


def vip(address, add=True):
    return Change(add, 2, 4, address, 24)


def test_vip_queue_applies_the_net_effect_in_order_and_announces_after(caplog):
    trips, announced = [], []

    async def apply_vips(changes):
        trips.append(("vips", [(c.add, c.address) for c in changes]))
        await asyncio.sleep(0.01)
        return [(changes[0], "File exists")] if len(trips) == 1 else []

    async def apply_routes(add, entries):
        trips.append(("routes", add, [e[1]["dst"] for e in entries]))
        return []

    async def scenario():
        queue = VipQueue(apply_vips, apply_routes, announced.append)
        route = ("route", {"dst": "203.0.113.0/24"})
        queue.submit([SetVips((vip("192.0.2.1"),)), SetRoutes(True, (route,)),
                      Announce("A", "master")])
        await asyncio.sleep(0)  # the first trip is under way: these pile up
        queue.submit([SetVips((vip("192.0.2.2"),)), SetRoutes(True, (route,)),
                      Announce("B", "master")])
        queue.submit([SetRoutes(False, (route,)), SetVips((vip("192.0.2.2", False),))])
        queue.submit([SetVips((vip("192.0.2.3"),))])
        await asyncio.wait_for(queue.idle(), 5)
        return queue

    queue = asyncio.run(scenario())
    assert trips == [
        ("vips", [(True, "192.0.2.1")]), ("routes", True, ["203.0.113.0/24"]),
        # B flapped within one trip: only its last word counts, routes before VIPs.
        ("routes", False, ["203.0.113.0/24"]),
        ("vips", [(False, "192.0.2.2"), (True, "192.0.2.3")])]
    assert announced == [Announce("A", "master"), Announce("B", "master")]
    assert queue.failures == 1 and "cannot add 192.0.2.1/24: File exists" in caplog.text


def test_vip_queue_keeps_serving_after_a_trip_raises(caplog):
    calls = []

    async def apply_vips(changes):
        calls.append(len(calls))
        if len(calls) == 1:
            raise OSError("netlink socket closed")
        return []

    async def scenario():
        queue = VipQueue(apply_vips, None, lambda a: None)
        queue.submit([SetVips((vip("192.0.2.1"),))])
        await asyncio.wait_for(queue.idle(), 5)
        queue.submit([SetVips((vip("192.0.2.2"),))])
        await asyncio.wait_for(queue.idle(), 5)
    asyncio.run(scenario())
    assert calls == [0, 1] and "netlink socket closed" in caplog.text


def test_a_progressive_queue_announces_each_part_once_it_is_in_and_not_before():
    from hivrrp.kernel.addrbatch import ENCODED_SEQ, encode_all
    unit_a = encode_all([vip("192.0.2.10"), vip("192.0.2.11")], ENCODED_SEQ, key="a")
    unit_b = encode_all([vip("192.0.2.20")], ENCODED_SEQ + 2, key="b")
    events = []

    async def apply_vips(changes, progress=None):
        # The netlink thread's news, item by item, as its sends are answered.
        for done in range(1, len(changes) + 1):
            await asyncio.sleep(0)
            events.append(("in", done))
            if progress is not None:
                progress(done)
        events.append(("trip end",))
        return []

    async def apply_routes(add, entries):
        events.append(("routes", add))
        return []

    def actions(routes=()):
        return [SetVips((unit_a,)), Announce("A", "followers"),
                SetVips((vip("192.0.2.30"),)), SetRoutes(True, routes), Announce("S", "master"),
                SetVips((unit_b,)), Announce("B", "followers")]

    async def scenario(progressive, routes=()):
        events.clear()
        queue = VipQueue(apply_vips, apply_routes, lambda a: events.append(("announce", a.name)),
                         progressive=progressive)
        queue.submit(actions(routes))
        await asyncio.wait_for(queue.idle(), 5)
        return list(events)

    assert asyncio.run(scenario(True)) == [
        ("in", 1), ("announce", "A"), ("in", 2), ("announce", "S"), ("in", 3),
        ("announce", "B"), ("trip end",)]
    # keepalived announces after the routes: a trip that adds one announces at its end.
    route = ("route", {"dst": "203.0.113.0/24"})
    assert asyncio.run(scenario(True, (route,))) == [
        ("in", 1), ("in", 2), ("in", 3), ("trip end",), ("routes", True),
        ("announce", "A"), ("announce", "S"), ("announce", "B")]
    # Not progressive (an apply_vips without progress=): at the end, as always.
    assert asyncio.run(scenario(False))[-4:] == [
        ("trip end",), ("announce", "A"), ("announce", "S"), ("announce", "B")]


def test_an_announcement_waits_for_its_addresses_moved_later_in_the_trip_by_a_flap():
    from hivrrp.kernel.addrbatch import ENCODED_SEQ, encode_all
    unit = encode_all([vip("192.0.2.10")], ENCODED_SEQ, key="a")
    gone = encode_all([vip("192.0.2.10", add=False)], ENCODED_SEQ + 1, key="a")
    events = []

    async def apply_vips(changes, progress=None):
        events.append(("trip", [c.key if hasattr(c, "key") else c.address for c in changes]))
        for done in range(1, len(changes) + 1):
            await asyncio.sleep(0)
            events.append(("in", done))
            progress(done)
        return []

    async def scenario():
        queue = VipQueue(apply_vips, None, lambda a: events.append(("announce", a.name)),
                         progressive=True)
        # The group comes, X comes, the group leaves and comes back: its last
        # word on its addresses is now after X's.
        queue.submit([SetVips((unit,)), Announce("A", "followers"),
                      SetVips((vip("192.0.2.30"),)), Announce("X", "master"),
                      SetVips((gone,)), SetVips((unit,)), Announce("A", "followers")])
        await asyncio.wait_for(queue.idle(), 5)

    asyncio.run(scenario())
    assert events == [("trip", ["192.0.2.30", "a"]), ("in", 1), ("in", 2),
                      ("announce", "A"), ("announce", "X"), ("announce", "A")]
