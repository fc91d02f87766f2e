"""The daemon's loop timer on uvloop: wake-ups and CPU with masters whose
deadlines are spread over sub-millisecond offsets (as real start-ups give).

    python bench/loop_timer.py [--masters 200] [--seconds 3] [--rounds 3]

Runs the real Driver and Engine (no sockets: adverts are dropped) twice per
round, once arming the timer as before the fix (at the exact microsecond
deadline, now truncated) and once as now (the next whole millisecond, now
rounded), and prints timer wake-ups with and without work and the process
CPU time, medians over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import uvloop
from hivrrp._engine import Engine

import hivrrp.daemon.driver as driver_module
from hivrrp.daemon.driver import Driver

ARMING = {
    "before": (lambda deadline: deadline / 1_000_000,
               lambda loop: int(loop.time() * 1_000_000)),
    "now": (driver_module.timer_when, driver_module.now_us),
}


def one_run(masters: int, seconds: float, arming: str) -> dict:
    driver_module.timer_when, driver_module.now_us = ARMING[arming]

    async def scenario():
        loop = asyncio.get_running_loop()
        now_us = driver_module.now_us
        engine = Engine(masters, now=now_us(loop))
        for i in range(masters):
            engine.add_instance(vrid=i % 255 + 1, ifindex=2 + i // 255, src="192.0.2.1",
                                version=3, priority=255, interval_cs=10,
                                addresses=[f"10.0.{i // 250}.{i % 250 + 1}"])
        driver = Driver(loop, lambda events: None)
        driver.use(engine)
        start = now_us(loop)
        for i in range(masters):
            engine.start(i, start + i * 37)
        driver.after_engine_work()
        cpu = time.process_time()
        await asyncio.sleep(seconds)
        cpu = time.process_time() - cpu
        driver.close()
        return {**driver.wakeups, "cpu_s": cpu}

    try:
        return uvloop.run(scenario())
    finally:
        driver_module.timer_when, driver_module.now_us = ARMING["now"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--masters", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {"before": [], "now": []}
    for round_ in range(args.rounds):
        for arming in (("before", "now") if round_ % 2 == 0 else ("now", "before")):
            results[arming].append(one_run(args.masters, args.seconds, arming))
    print(f"{args.masters} v3 masters at 0.1 s for {args.seconds} s, medians of {args.rounds} "
          f"rounds")
    print(f"{'timer':>8} {'work':>8} {'empty':>8} {'CPU s':>7}")
    medians = {}
    for arming, runs in results.items():
        medians[arming] = {k: statistics.median(r[k] for r in runs)
                           for k in ("work", "empty", "cpu_s")}
        m = medians[arming]
        print(f"{arming:>8} {m['work']:>8.0f} {m['empty']:>8.0f} {m['cpu_s']:>7.3f}")
    ratios = [n["cpu_s"] / b["cpu_s"] for n, b in zip(results["now"], results["before"])]
    print(f"CPU now/before, median of per-round ratios: {statistics.median(ratios):.2f}x "
          f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})")


if __name__ == "__main__":
    main()
