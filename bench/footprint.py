"""Where hivrrp's memory goes, and its RSS per instance.

    python bench/footprint.py [--sizes 100,4000,10000] [--traced 4000] [--json]

For each size, one hivrrp master (priority 200, no peer: every instance
becomes master) on the lab's namespace topology with the generated config;
once it holds every VIP and a few seconds have passed, its RSS (VmRSS) and
peak (VmHWM) are read from /proc. RSS per instance is the slope between the
smallest and the largest size. Then, at --traced instances, the same daemon
runs under tracemalloc (bench/traced_daemon.py) and the traced bytes are
printed by owner: the hivrrp module that allocated them, "imports" for
module code and objects, or the library. Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from cleanup import ignoring_signals  # noqa: E402
from hivrrp.tools.lab import Lab

HERE = Path(__file__).resolve().parent
SETTLE = 8.0             # seconds after the last VIP: start-up bursts over, the heap trimmed
START_TIMEOUT = 120.0
TRACED_SETTLE = 20.0


def status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split(f"{field}:")[1].split()[0])


def one_master(instances: int, traced: bool, progress=lambda _: None,
               allocator: bool = False) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="hivrrp-footprint-"))
    lab = Lab(instances, "hivrrp", workdir, out=lambda *_: None)
    result: dict = {"instances": instances}
    try:
        progress(f"footprint: {instances} instances{' (traced)' if traced else ''}: topology")
        lab.build()
        conf = workdir / "r1.conf"
        from hivrrp.tools.lab import HIGH, keepalived_conf
        conf.write_text(keepalived_conf(lab.segments, instances, HIGH))
        args = ["run", "-f", str(conf), "--log-level", "warning", "--control",
                str(workdir / "r1.sock")]
        out, trigger = workdir / "traced.json", workdir / "snapshot-now"
        if traced or allocator:
            cmd = [sys.executable, str(HERE / "traced_daemon.py"), str(out), str(trigger), *args]
            if allocator:
                cmd = ["env", "HIVRRP_UNTRACED=1", *cmd]
        else:
            cmd = [sys.executable, "-m", "hivrrp", *args]
        progress(f"footprint: {instances} instances: waiting for every VIP")
        proc = lab.topology.start(lab.ns["r1"], *cmd, log_path=str(workdir / "r1.log"))
        up = lab.until(lambda: lab.vip_count("r1") >= instances or proc.poll() is not None,
                       START_TIMEOUT)
        if proc.poll() is not None:
            result["error"] = f"the daemon exited at start (status {proc.returncode})"
            return result
        if up is None:
            result["error"] = f"not every VIP up within {START_TIMEOUT:g} s"
            return result
        time.sleep(SETTLE)
        # `ip netns exec` execs into the daemon: proc.pid is the daemon itself.
        result["rss_kib"] = status_kib(proc.pid, "VmRSS")
        result["peak_kib"] = status_kib(proc.pid, "VmHWM")
        if traced or allocator:
            # Tracing slows the daemon tenfold: let its start-up announcements drain.
            time.sleep(TRACED_SETTLE if traced else 0)
            trigger.touch()
            if lab.until(out.exists, 300) is None:
                result["error"] = "no tracemalloc snapshot within 300 s"
            else:
                result.update(json.loads(out.read_text()))
        return result
    finally:
        with ignoring_signals():
            lab.close()
            shutil.rmtree(workdir, ignore_errors=True)


def measure(sizes: list[int], traced: int | None, progress=lambda _: None,
            allocator: bool = False) -> dict:
    runs = [one_master(n, False, progress) for n in sizes]
    result: dict = {"runs": runs}
    ok = [r for r in runs if "rss_kib" in r]
    if len(ok) >= 2:
        small, large = ok[0], ok[-1]
        result["bytes_per_instance"] = round(
            (large["rss_kib"] - small["rss_kib"]) * 1024
            / (large["instances"] - small["instances"]))
    if allocator and sizes:
        result["allocator"] = one_master(sizes[-1], False, progress, allocator=True)
    if traced:
        result["traced"] = one_master(traced, True, progress)
    return result


def print_report(result: dict, top: int = 15) -> None:
    print(f"{'instances':>10}{'RSS MiB':>10}{'peak MiB':>10}")
    for r in result["runs"]:
        if "rss_kib" in r:
            print(f"{r['instances']:>10}{r['rss_kib'] / 1024:>10.1f}{r['peak_kib'] / 1024:>10.1f}")
        else:
            print(f"{r['instances']:>10}  {r['error']}")
    if "bytes_per_instance" in result:
        print(f"RSS per instance (slope): {result['bytes_per_instance']} bytes")
    pm = (result.get("allocator") or {}).get("pymalloc")
    if pm:
        n = result["allocator"]["instances"]
        print(f"pymalloc at {n} instances (untraced): {pm['arenas']} arenas of 1 MiB, "
              f"{pm['allocated_bytes'] / 1e6:.1f} MB in live blocks, "
              f"{pm['free_in_pools_bytes'] / 1e6:.1f} MB free inside used pools")
        ma = result["allocator"].get("malloc")
        if ma:
            print(f"malloc: {ma['in_use_bytes'] / 1e6:.1f} MB in use, {ma['free_bytes'] / 1e6:.1f} MB "
                  f"free in its heaps ({ma['heap_bytes'] / 1e6:.1f} MB of heap, "
                  f"{ma['mmapped_bytes'] / 1e6:.1f} MB mmapped)")
    traced = result.get("traced")
    if traced and "error" in traced:
        print(f"tracemalloc at {traced['instances']} instances: {traced['error']}")
    elif traced:
        n = traced["instances"]
        print(f"tracemalloc at {n} instances: {traced['traced_bytes'] / 1e6:.1f} MB traced "
              f"(RSS {traced['rss_kib'] / 1024:.1f} MiB under tracing)")
        for name, entry in list(traced["owners"].items())[:top]:
            print(f"  {entry['bytes'] / 1e6:8.2f} MB {entry['bytes'] / n:8.0f} B/inst "
                  f"{entry['blocks']:>9} blocks  {name}")
        print("  imports by package:")
        for name, entry in list(traced["imports"].items())[:top]:
            print(f"  {entry['bytes'] / 1e6:8.2f} MB {entry['blocks']:>9} blocks  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,4000,10000")
    parser.add_argument("--traced", type=int, default=4000, help="0: no tracemalloc run")
    parser.add_argument("--allocator", action="store_true",
                        help="also CPython's allocator figures at the largest size (one more run)")
    parser.add_argument("--top", type=int, default=15, help="owners shown (default 15)")
    parser.add_argument("--json", action="store_true", help="one JSON line at the end")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/footprint.py needs root (network namespaces)")
    # SIGTERM unwinds like Ctrl-C, through the finally blocks that stop the
    # daemon and delete the namespaces.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        sizes = sorted(int(s) for s in args.sizes.split(","))
    except ValueError:
        sys.exit("--sizes: comma-separated instance counts")
    if not sizes or sizes[0] < 1 or sizes[-1] > 20000 or not 0 <= args.traced <= 20000:
        sys.exit("sizes and --traced must be within 1..20000")
    result = measure(sizes, args.traced or None,
                     lambda line: print(line, file=sys.stderr, flush=True), args.allocator)
    print_report(result, max(1, args.top))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
