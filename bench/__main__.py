"""Every benchmark from one command: `python -m bench` (from the repository root).

    python -m bench [--quick] [--only NAMES] [--skip NAMES] [--out DIR]
                    [--sizes 100,1000,4000,10000] [--modes 2:1,3:0.1]
                    [--extra 10000:3:1] [--daemons hivrrp,keepalived]
                    [--window 10] [--no-plots] [--merge]

Runs each benchmark script under bench/ in a process of its own (a fresh
interpreter each: no benchmark's garbage or warm caches in another's
figures), echoes its report, and collects the JSON it prints. Writes
DIR/results.json (every figure, the machine, the command), DIR/results.md
(the tables) and, with matplotlib installed (`pip install '.[bench]'`),
DIR/cpu.png, DIR/failover.png and DIR/rss.png. The end-to-end and footprint
runs print their progress as they go.

--quick runs everything small (3-6 minutes; keepalived's time-outs decide): for a check, not for
figures to quote. Names: codec, engine, config_load, vips, metrics,
footprint, e2e, follow, sendpath. vips, footprint, e2e, follow and sendpath
need root (network namespaces); follow and sendpath also draw
DIR/cases_cpu.png and DIR/cases_failover.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import report  # noqa: E402
from cleanup import ignoring_signals  # noqa: E402


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    needs_root: bool = False


BENCHMARKS = (
    Benchmark("codec", "codec.py", ("--rounds", "9"), ("--rounds", "3")),
    Benchmark("engine", "engine.py", ("--instances", "1000", "10000", "100000", "--seconds", "10"),
              ("--instances", "1000", "--seconds", "5")),
    Benchmark("config_load", "config_load.py", ("--instances", "10000", "--rounds", "5"),
              ("--instances", "4000", "--rounds", "2")),
    Benchmark("vips", "vips.py", ("--vips", "4000", "--rounds", "5"),
              ("--vips", "1000", "--rounds", "2"), needs_root=True),
    Benchmark("metrics", "metrics.py", ("--instances", "10000", "--rounds", "5"),
              ("--instances", "1000", "--rounds", "2")),
    Benchmark("footprint", "footprint.py",
              ("--sizes", "100,1000,4000,10000", "--traced", "4000", "--allocator", "--json"),
              ("--sizes", "100,1000", "--traced", "0", "--json"), needs_root=True),
    Benchmark("e2e", "e2e.py", ("--json",), ("--json",), needs_root=True),
    Benchmark("follow", "follow.py",
              ("--instances", "10000", "--rounds", "3", "--window", "10", "--json"),
              ("--instances", "500", "--rounds", "1", "--window", "3", "--json"), needs_root=True),
    Benchmark("sendpath", "sendpath.py",
              ("--instances", "10000", "--compare-instances", "4000", "--rounds", "3",
               "--window", "10", "--json"),
              ("--instances", "1000", "--compare-instances", "500", "--rounds", "1",
               "--window", "3", "--json"), needs_root=True),
)
CASE_BENCHMARKS = ("follow", "sendpath")     # bar charts per case, not curves against N
NAMES = tuple(b.name for b in BENCHMARKS)
CLEANUP_WAIT = 120.0     # seconds a benchmark gets to clean up after Ctrl-C or SIGTERM
QUICK_E2E = {"sizes": "100,1000", "modes": "3:0.1", "extra": "", "window": 3.0}
FULL_E2E = {"sizes": "100,1000,4000,10000", "modes": "2:1,3:0.1", "extra": "10000:3:1",
            "window": 10.0}


def machine() -> dict:
    def first(path: str, key: str, separator: str = ":") -> str | None:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(key) and separator in line:
                    return line.split(separator, 1)[1].strip().strip('"')
        except OSError:
            pass
        return None

    def command(*argv: str) -> str | None:
        """The first line of its output, "" for none, None if it failed."""
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=HERE)
        except (OSError, subprocess.TimeoutExpired):
            return None
        if out.returncode != 0:
            return None
        text = (out.stdout + out.stderr).strip().splitlines()
        return text[0] if text else ""

    dirty = command("git", "status", "--porcelain", "--untracked-files=no")

    return {"cpu": first("/proc/cpuinfo", "model name"), "cpus": os.cpu_count(),
            "memory": first("/proc/meminfo", "MemTotal"), "kernel": platform.release(),
            "os": first("/etc/os-release", "PRETTY_NAME", "="), "python": platform.python_version(),
            "keepalived": command("keepalived", "--version"),
            "hivrrp_commit": command("git", "rev-parse", "--short", "HEAD"),
            # None: no git, not a repository, or git refused (root in a user's clone).
            "hivrrp_tree_clean": None if dirty is None else dirty == ""}


def run_one(bench: Benchmark, args: tuple[str, ...]) -> dict:
    """The benchmark's JSON lines, with its report echoed; an error note if it failed."""
    cmd = [sys.executable, str(HERE / bench.script), *args]
    print(f"\n== {bench.name}: {' '.join(['python', 'bench/' + bench.script, *args])}", flush=True)
    started = time.monotonic()
    # stderr passes through: the long benchmarks print their progress there.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        stdout, _ = proc.communicate()
    except KeyboardInterrupt:
        # A Ctrl-C reached the benchmark too (same process group); a SIGTERM sent
        # to us alone is passed on, once. Either way it stops its daemons and
        # deletes its namespaces in its finally blocks: wait for that (reading
        # its output meanwhile) rather than kill it half way.
        if TERMINATED:
            proc.send_signal(signal.SIGTERM)
        with ignoring_signals():
            try:
                proc.communicate(timeout=CLEANUP_WAIT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        raise
    results = []
    for line in stdout.splitlines():
        if line.startswith("{"):
            try:
                results.append(json.loads(line))
                continue
            except json.JSONDecodeError:
                pass
        print(f"   {line}")
    out: dict = {"command": " ".join(["python", "bench/" + bench.script, *args]),
                 "seconds": round(time.monotonic() - started, 1)}
    if proc.returncode != 0 or not results:
        out["error"] = f"exit status {proc.returncode}" + ("" if results else ", no figures")
    out["results"] = results
    return out


TERMINATED: list[int] = []     # SIGTERM came to us (rather than a Ctrl-C to the group)


def on_sigterm(signum, frame):
    TERMINATED.append(signum)
    raise KeyboardInterrupt


def draw_plots(plotting, benchmarks: dict, out_dir: Path) -> list[str]:
    """The e2e curves and the case bars, from whichever of them ran."""
    written = []
    e2e_results = (benchmarks.get("e2e") or {}).get("results")
    if "e2e" in benchmarks:
        written += plotting.draw(e2e_results[-1]["runs"] if e2e_results else [], out_dir)
    cases = []
    for name, title in (("follow", "followers"), ("sendpath", "send path")):
        results = (benchmarks.get(name) or {}).get("results")
        if results:
            cases.append((title, results[-1].get("summary") or []))
    written += plotting.draw_cases(cases, out_dir)
    return written


def main() -> None:
    # SIGTERM unwinds like Ctrl-C: run_one() passes it on and waits for the cleanup.
    signal.signal(signal.SIGTERM, on_sigterm)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="everything small, 3-6 minutes")
    parser.add_argument("--only", default="", help=f"comma-separated, of {','.join(NAMES)}")
    parser.add_argument("--skip", default="", help="comma-separated names to leave out")
    parser.add_argument("--out", default=None, help="directory (default bench/results/DATE-TIME)")
    parser.add_argument("--sizes", help="e2e instance counts (default 100,1000,4000,10000)")
    parser.add_argument("--modes", help="e2e version:advert_int list (default 2:1,3:0.1)")
    parser.add_argument("--extra", help="e2e further N:version:advert_int (default 10000:3:1)")
    parser.add_argument("--daemons", default="hivrrp,keepalived")
    parser.add_argument("--window", type=float, help="e2e steady window, seconds (default 10)")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--merge", action="store_true",
                        help="keep the figures of the benchmarks not run now from an earlier "
                             "DIR/results.json (to re-run one into an existing report)")
    args = parser.parse_args()
    only = {n for n in args.only.split(",") if n} or set(NAMES)
    skip = {n for n in args.skip.split(",") if n}
    unknown = (only | skip) - set(NAMES)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; names: {', '.join(NAMES)}")
    e2e = dict(QUICK_E2E if args.quick else FULL_E2E)
    for key in ("sizes", "modes", "extra", "window"):
        if getattr(args, key) is not None:
            e2e[key] = getattr(args, key)
    chosen = [b for b in BENCHMARKS if b.name in only - skip]
    if os.geteuid() != 0:
        for b in chosen:
            if b.needs_root:
                print(f"{b.name}: skipped (needs root)", file=sys.stderr)
        chosen = [b for b in chosen if not b.needs_root]
    out_dir = Path(args.out) if args.out else HERE / "results" / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {"command": " ".join(["python -m bench", *sys.argv[1:]]), "quick": args.quick,
                "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
                "benchmarks": {}}
    previous = out_dir / "results.json"
    if args.merge and previous.exists():
        earlier = json.loads(previous.read_text())
        document["benchmarks"] = earlier["benchmarks"]
        document["command"] = f"{earlier['command']}, then {document['command']}"
        document["date"] = f"{earlier['date']}, then {document['date']}"
        if isinstance(earlier.get("plots"), list):
            # Still in DIR, and still of the e2e figures kept: unless drawn again below.
            document["plots"] = [p for p in earlier["plots"] if (out_dir / p).exists()]
    started = time.monotonic()
    for number, bench in enumerate(chosen, 1):
        print(f"\n[{number}/{len(chosen)}] {bench.name}", file=sys.stderr, flush=True)
        extra: tuple[str, ...] = ()
        if bench.name == "e2e":
            extra = ("--sizes", e2e["sizes"], "--modes", e2e["modes"], "--extra", e2e["extra"],
                     "--window", str(e2e["window"]), "--daemons", args.daemons)
        elif bench.name in CASE_BENCHMARKS:
            extra = ("--daemons", args.daemons)
        document["benchmarks"][bench.name] = run_one(
            bench, (bench.quick if args.quick else bench.full) + extra)
        # Written after every benchmark: an interrupted run keeps what it measured.
        (out_dir / "results.json").write_text(json.dumps(document, indent=1) + "\n")
    document["seconds"] = round(time.monotonic() - started, 1)
    drawn = [n for n in ("e2e", *CASE_BENCHMARKS) if n in document["benchmarks"]]
    if not args.no_plots and drawn:
        try:
            import plots as plotting
        except ImportError:
            document["plots"] = "not drawn: matplotlib is missing (pip install '.[bench]')"
        else:
            document["plots"] = draw_plots(plotting, document["benchmarks"], out_dir)
    (out_dir / "results.json").write_text(json.dumps(document, indent=1) + "\n")
    (out_dir / "results.md").write_text(report.markdown(document))
    plots = document.get("plots")
    print(f"\nall done in {document['seconds']:.0f} s: {out_dir}/results.json, results.md"
          + (f", {', '.join(plots)}" if isinstance(plots, list) and plots else ""))


if __name__ == "__main__":
    main()
