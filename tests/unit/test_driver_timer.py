"""The daemon's one loop timer on uvloop: no busy re-arming (driver.py)."""

import asyncio

import uvloop
from hivrrp._engine import Engine

from hivrrp.daemon.driver import Driver, now_us, timer_when

MASTERS = 200


def test_timer_when_is_the_next_whole_millisecond():
    assert timer_when(1_234_000) == 1.234
    assert timer_when(1_234_001) == 1.235
    assert timer_when(1_234_999) == 1.235


class MillisecondClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def time(self) -> float:
        return self.ms / 1000     # what uvloop's time() returns


def test_now_us_is_exact_on_whole_milliseconds():
    clock = MillisecondClock(0)
    for ms in range(1_083_000_000, 1_083_020_000):
        clock.ms = ms
        assert now_us(clock) == ms * 1000


def test_two_hundred_v3_masters_wake_the_loop_only_when_a_timer_is_due():
    """Timers armed at sub-millisecond deadlines fired early under uvloop's
    millisecond clock and re-armed in a busy loop (25,038 of 26,513 wake-ups
    empty in 3 s). The count of empty wake-ups must stay near zero."""

    async def scenario():
        loop = asyncio.get_running_loop()
        engine = Engine(MASTERS, now=now_us(loop))
        for i in range(MASTERS):
            engine.add_instance(vrid=i % 255 + 1, ifindex=2 + i // 255, src="192.0.2.1",
                                version=3, priority=255, interval_cs=10,
                                addresses=[f"10.0.{i // 250}.{i % 250 + 1}"])
        events = []
        driver = Driver(loop, events.extend)   # no sockets: adverts are dropped
        driver.use(engine)
        start = now_us(loop)
        for i in range(MASTERS):
            # Deadlines spread over sub-millisecond offsets, as real start-up gives.
            engine.start(i, start + i * 37)
        driver.after_engine_work()
        await asyncio.sleep(1.0)
        driver.close()
        return driver.wakeups, len(events)

    wakeups, transitions = uvloop.run(scenario())
    assert transitions == MASTERS                       # every one became master
    assert wakeups["work"] >= 10 * 5                    # at least 10 adverts' rounds
    assert wakeups["empty"] <= max(5, wakeups["work"] // 20), wakeups
