"""Time to load a generated keepalived.conf of N instances (default 10,000),
and the memory the daemon keeps of it.

    python bench/config_load.py [--instances 10000] [--rounds 5]

The config is what large sites write: one multi-line $INSTANCE definition
expanded by ~SEQ over interfaces x VRIDs (250 per interface), with a tracker
and two VIPs per instance. Prints the median load time and a JSON line.

Then, in a fresh interpreter, the file is loaded the daemon's way (parsed in
a child process, hivrrp.config.isolated) and the plan built on made-up links
and addresses: the RSS that stays, after malloc_trim, per instance. This is
the configuration's and plan's share of a daemon's memory (no engine
started, no sockets): bench/footprint.py measures whole daemons, on the
lab's plainer configuration.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hivrrp.config import load
from scale import rss_kib

TEMPLATE = """\
global_defs {{
    router_id bench
}}
vrrp_script chk {{
    script "/bin/true"
    interval 2
    weight -20
}}
$INSTANCE= \\
vrrp_instance vi_${{IF}}_${{ID}} {{ \\
    state BACKUP \\
    interface bench${{IF}} \\
    virtual_router_id ${{ID}} \\
    priority 100 \\
    advert_int 1 \\
    authentication {{ \\
        auth_type PASS \\
        auth_pass secret \\
    }} \\
    virtual_ipaddress {{ \\
        10.${{IF}}.${{ID}}.1/24 \\
        10.${{IF}}.${{ID}}.2/24 dev bench${{IF}} label bench${{IF}}:vip \\
    }} \\
    track_script {{ \\
        chk \\
    }} \\
}}
~SEQ(IF, 1, {interfaces}) ~SEQ(ID, 1, {per_interface}) $INSTANCE
"""


def kept_bytes(path: str, interfaces: int) -> None:
    """Run in a fresh interpreter: print the RSS a daemon keeps per instance
    of `path`, loaded and built as `hivrrp run` does (the load here, through
    the child process; the build on a worker thread made for it), then trimmed."""
    import asyncio

    from hivrrp.config.isolated import load_isolated
    from hivrrp.daemon.memory import release_free_memory
    from hivrrp.daemon.plan import build_off_loop
    from hivrrp.kernel.netlink import Address, Link

    links = {f"bench{k}": Link(100 + k, f"bench{k}", bytes(6), True)
             for k in range(1, interfaces + 1)}
    addresses = [Address(100 + k, 4, f"10.{k}.0.250", 16, 0) for k in range(1, interfaces + 1)]
    gc.collect()
    before = rss_kib([os.getpid()])
    result = load_isolated(path, config_id="bench")
    if not result.ok or not result.config.instances:
        sys.exit(f"--kept: {path} did not load: {[str(d) for d in result.errors[:3]]}")
    plan, _ = asyncio.run(build_off_loop(result.config, links, addresses, 0))
    del result
    gc.collect()
    if not release_free_memory():      # what the daemon does once start-up is over
        sys.exit("--kept: no malloc_trim here (not glibc): the figure would be the peak")
    count = len(plan.names)
    kept = (rss_kib([os.getpid()]) - before) * 1024 / count
    print(json.dumps({"instances": count, "kept_bytes_per_instance": round(kept)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kept", nargs=2, metavar=("PATH", "INTERFACES"),
                        help=argparse.SUPPRESS)   # the fresh interpreter's part
    args = parser.parse_args()
    if args.kept:
        kept_bytes(args.kept[0], int(args.kept[1]))
        return
    per_interface = min(250, args.instances)
    interfaces = -(-args.instances // per_interface)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "keepalived.conf"
        path.write_text(TEMPLATE.format(interfaces=interfaces, per_interface=per_interface))
        samples, result = [], None
        for _ in range(args.rounds):
            start = time.perf_counter()
            result = load(str(path), check_host=False)
            samples.append(time.perf_counter() - start)
        assert result is not None and result.ok, result.errors[:3]
        kept = subprocess.run([sys.executable, __file__, "--kept", str(path), str(interfaces)],
                              capture_output=True, text=True, check=False)
    if kept.returncode != 0:
        sys.exit(f"the --kept run failed (exit {kept.returncode}): {kept.stderr.strip()[-2000:]}")
    kept_per_instance = json.loads(kept.stdout.splitlines()[-1])["kept_bytes_per_instance"]
    loaded = len(result.config.instances)
    median = statistics.median(samples)
    print(f"{loaded} instances ({interfaces} interfaces x {per_interface} VRIDs): "
          f"median {median * 1000:.0f} ms over {args.rounds} loads "
          f"(min {min(samples) * 1000:.0f}, max {max(samples) * 1000:.0f}); "
          f"{median / loaded * 1e6:.1f} us per instance")
    print(f"kept by a daemon (loaded in a child process, plan built, heap trimmed): "
          f"{kept_per_instance} bytes of RSS per instance")
    print(json.dumps({"instances": loaded, "load_s_median": round(median, 4),
                      "load_s_min": round(min(samples), 4), "rounds": args.rounds,
                      "us_per_instance": round(median / loaded * 1e6, 1),
                      "kept_bytes_per_instance": kept_per_instance}))


if __name__ == "__main__":
    main()
