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
