"""Followers' notifications (notify scripts, FIFO): in the engine's order, to the
FIFO that is open, and all of them before the notifier closes at shutdown."""

import asyncio

from hivrrp._engine import FAULT_TRACKER

from helpers.fakedaemon import reload, settle, started
from helpers.follow import VIPS, fire, group_text, run
from helpers.plans import ADDRESSES, LINKS
from hivrrp.daemon.driver import now_us


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
