"""How long a mass failover takes to notify every instance: notify scripts
under several bounds on processes at once, and the notify FIFO for comparison.

    python bench/notify_throughput.py [--instances 4000] [--script-seconds 0.1]
                                      [--bounds 16,64,256] [--unpaced 64] [--rounds 3]
                                      [--json]

Not a whole daemon: it drives hivrrp.notify.notifier.Notifier, the daemon's notify
executor, on uvloop (the daemon's loop), with one burst of synthetic
BACKUP -> MASTER transitions, one per instance, as the reactor hands them over
when the peer of every instance dies at once. With scripts, each instance has
a notify_master script (/bin/sh running `sleep S`), run as the daemon runs it
(own process group, stdio on /dev/null, no timeout); with the FIFO, each
transition writes keepalived's line to a notify FIFO read by a
notify_fifo_script (a Python process counting lines). Measured from the first
transition to the end of the last script (the last line read): when the last
instance's notify is done, the longest stall of the event loop meanwhile (it
forks every script), and the most scripts running at once. --unpaced N
also runs bound N without the notifier's one-spawn-per-loop-turn pacing, as
before it (every slot freed in a turn spawned in that turn). Each round runs
every mode once, in turn; figures are medians over rounds, ratios are taken
within a round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import uvloop

from hivrrp.config.model import Script
from hivrrp.daemon.stall import StallProbe
from hivrrp.notify.notifier import Notifier

# A FIFO reader's run ends when it has read every line or this many seconds
# passed; a script run ends after every script or this long.
LIMIT = 600.0

READER = """\
#!{python}
import sys, time
n, last = 0, 0.0
with open(sys.argv[1], "rb") as fifo:
    open({ready!r}, "w").close()
    for line in fifo:
        n += 1
        last = time.monotonic()
with open({result!r}, "w") as out:
    out.write(f"{{n}} {{last}}")
"""


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _Unpaced:
    """Stands in for the notifier's spawn lock: every run passes at once."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc) -> None:
        return None


async def scripts_run(instances: int, bound: int, script: Script, paced: bool = True) -> dict:
    loop = asyncio.get_running_loop()
    notifier = Notifier(concurrency=bound)
    if not paced:
        notifier._spawning = _Unpaced()
    scripts = {"master": script}
    probe = StallProbe(loop).start()
    cpu, child_cpu, peak = time.process_time(), children_cpu(), 0
    begin = time.monotonic()
    for i in range(instances):
        notifier.instance(f"VI_{i}", "MASTER", 100, scripts)
    deadline = begin + LIMIT
    while (notifier.running or notifier.queued) and time.monotonic() < deadline:
        peak = max(peak, notifier.running)
        await asyncio.sleep(0.005)
    total = time.monotonic() - begin
    stall = probe.stop()
    cpu, child_cpu = time.process_time() - cpu, children_cpu() - child_cpu
    await notifier.close(5)
    if notifier.runs != {"ok": instances}:
        raise SystemExit(f"bound {bound}: runs {dict(notifier.runs)}, expected {instances} ok")
    return {"seconds": total, "stall_s": stall, "peak_running": peak, "cpu_s": cpu,
            "children_cpu_s": child_cpu}


async def fifo_run(instances: int, directory: Path) -> dict:
    loop = asyncio.get_running_loop()
    fifo, ready, result = directory / "notify.fifo", directory / "ready", directory / "result"
    for path in (ready, result):
        path.unlink(missing_ok=True)
    reader = directory / "reader.py"
    reader.write_text(READER.format(python=sys.executable, ready=str(ready), result=str(result)))
    reader.chmod(0o755)
    notifier = Notifier(fifo_paths=[str(fifo)],
                        fifo_script=Script(str(reader), (str(reader),)))
    deadline = time.monotonic() + 30
    while not ready.exists():
        if time.monotonic() > deadline:
            raise SystemExit("the FIFO reader did not start")
        await asyncio.sleep(0.005)
    probe = StallProbe(loop).start()
    cpu = time.process_time()
    begin = time.monotonic()
    for i in range(instances):
        notifier.instance(f"VI_{i}", "MASTER", 100, {})
    await asyncio.sleep(0.1)           # the reader drains what is left in the pipe
    stall = probe.stop()
    cpu = time.process_time() - cpu
    await notifier.close(5)            # EOF for the reader, which writes its count
    deadline = time.monotonic() + 10
    while not result.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    lines, last = result.read_text().split()
    if int(lines) + notifier.fifo_dropped != instances:
        raise SystemExit(f"FIFO: {lines} read + {notifier.fifo_dropped} dropped != {instances}")
    return {"seconds": float(last) - begin, "stall_s": stall, "lines_read": int(lines),
            "dropped": notifier.fifo_dropped, "cpu_s": cpu}


def _times(x: float) -> str:
    return f"{x:,.0f}x" if x >= 100 else f"{x:.3f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--instances", type=int, default=4000)
    parser.add_argument("--script-seconds", type=float, default=0.1)
    parser.add_argument("--bounds", default="16,64,256",
                        help="comma-separated bounds on notify processes at once")
    parser.add_argument("--unpaced", default="",
                        help="comma-separated bounds to run also without spawn pacing")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    bounds = [int(b) for b in args.bounds.split(",")]
    modes = (["fifo"] + [f"bound {b}" for b in bounds]
             + [f"bound {b} unpaced" for b in args.unpaced.split(",") if b])
    results: dict[str, list[dict]] = {mode: [] for mode in modes}

    with tempfile.TemporaryDirectory(prefix="hivrrp-notify-bench-") as tmp:
        directory = Path(tmp)
        script_path = directory / "notify_master.sh"
        script_path.write_text(f"#!/bin/sh\nsleep {args.script_seconds:g}\n")
        script_path.chmod(0o755)
        script = Script(str(script_path), (str(script_path),))

        async def one_round(round_: int) -> None:
            # Alternate the order: whatever warms up (page cache, CPU clock) favours no mode.
            for mode in (modes if round_ % 2 == 0 else modes[::-1]):
                if mode == "fifo":
                    figures = await fifo_run(args.instances, directory)
                else:
                    figures = await scripts_run(args.instances, int(mode.split()[1]), script,
                                                paced="unpaced" not in mode)
                results[mode].append(figures)
                print(f"  round {round_ + 1} {mode:>18}: {figures['seconds']:8.3f} s",
                      file=sys.stderr, flush=True)

        for round_ in range(args.rounds):
            uvloop.run(one_round(round_))

    def median(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in results[mode])

    print(f"{args.instances} instances fail over at once, each notified once; "
          f"notify_master = /bin/sh running sleep {args.script_seconds:g}; "
          f"medians of {args.rounds} rounds.")
    print("Drives hivrrp.notify.notifier.Notifier directly (synthetic transitions, no daemon, no "
          f"VRRP) on uvloop; {os.cpu_count()} CPUs; parent RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB.")
    print(f"{'mode':>18} {'last done':>10} {'ideal':>8} {'loop stall':>11} {'peak':>5} "
          f"{'loop CPU':>9} {'child CPU':>10}")
    for mode in modes:
        if mode == "fifo":
            print(f"{mode:>18} {median(mode, 'seconds') * 1000:>8.1f}ms {'':>8} "
                  f"{median(mode, 'stall_s') * 1000:>9.1f}ms {'':>5} "
                  f"{median(mode, 'cpu_s'):>8.2f}s {'':>10}  lines dropped (pipe full): "
                  f"{', '.join(str(r['dropped']) for r in results[mode])}")
            continue
        bound = int(mode.split()[1])
        ideal = args.instances * args.script_seconds / min(bound, args.instances)
        print(f"{mode:>18} {median(mode, 'seconds'):>9.3f}s {ideal:>7.2f}s "
              f"{median(mode, 'stall_s') * 1000:>9.1f}ms {median(mode, 'peak_running'):>5.0f} "
              f"{median(mode, 'cpu_s'):>8.2f}s {median(mode, 'children_cpu_s'):>9.2f}s")
    print("  last done: from the first transition to the end of the last script (last FIFO "
          "line read); ideal: instances x script time / bound (no fork cost); loop stall: "
          "longest lateness of a 1 ms timer; peak: most scripts running at once; CPU: this "
          "process / its children.")
    ratios: dict[str, list[float]] = {}

    def ratio(name: str, top: str, bottom: str) -> None:
        per_round = [t["seconds"] / b["seconds"] for t, b in zip(results[top], results[bottom])]
        ratios[name] = per_round
        print(f"  {name}: {_times(statistics.median(per_round))} "
              f"(rounds: {', '.join(_times(x) for x in per_round)})")

    print("Ratios of last-done times, median of the per-round ratios:")
    scripts = modes[1:]
    for mode in scripts:
        ratio(f"{mode} / fifo", mode, "fifo")
    for mode in scripts[1:]:
        ratio(f"{mode} / {scripts[0]}", mode, scripts[0])
    if args.json:
        print(json.dumps({"instances": args.instances, "script_seconds": args.script_seconds,
                          "rounds": results, "ratios": ratios}))


if __name__ == "__main__":
    main()
