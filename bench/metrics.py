"""What a Prometheus scrape costs the daemon at N instances (default 10,000).

    python bench/metrics.py [--instances 10000] [--rounds 5]

Builds a plan of N instances with two VIPs each (40 interfaces x 250 VRIDs,
no network: the engine and the config only), then per round renders the
scrape the way the daemon does (hivrrp.ops.metrics.Metrics.render, on a
thread), the same with `--metrics-compat keepalived-exporter`'s families
added (budget: under 0.5 s at 10,000 instances), and the way a plain
prometheus-client custom collector would (one sample object per series,
rendered by generate_latest), and prints the CPU seconds of each (thread
time, medians), the ratio ours/plain measured in the same run, the size of
the text, and the event loop's longest stall while scrapes run on another
thread. Then it times whole HTTP GETs of /metrics from the real server on
127.0.0.1, with and without the compat families.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
import urllib.request
from types import SimpleNamespace

from hivrrp._engine import COUNTERS
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from hivrrp.config.diagnostics import Where
from hivrrp.config.model import Config, GlobalDefs, Instance, Vip
from hivrrp.daemon.plan import build
from hivrrp.daemon.stall import StallProbe
from hivrrp.kernel.netlink import Address, Link
from hivrrp.ops.metrics import INSTANCE_COUNTERS, RECEIVE_ERRORS, Metrics, MetricsServer
from hivrrp.tracking.policy import Tracking

PER_INTERFACE = 250
VIPS = 2          # per instance here; bench/control.py's plans keep one


def plan_of(instances: int, vips: int = 1):
    interfaces = (instances + PER_INTERFACE - 1) // PER_INTERFACE
    links = {f"vlan{k}": Link(k + 2, f"vlan{k}", bytes(6), True) for k in range(interfaces)}
    addresses = [Address(k + 2, 4, f"10.{k // 250}.{k % 250}.1", 16, 0)
                 for k in range(interfaces)]
    where = Where("bench.conf", 1)
    config = Config(global_defs=GlobalDefs())
    for n in range(instances):
        k, vrid = divmod(n, PER_INTERFACE)
        vip_addresses = [f"10.{100 + j * 50 + k // 250}.{k % 250}.{vrid}" for j in range(vips)]
        config.instances.append(Instance(
            name=f"vi_{k}_{vrid + 1}", where=where, interface=f"vlan{k}", vrid=vrid + 1,
            version=3, advert_int=1.0, priority=100,
            vips=[Vip(f"{vip}/16", vip, 16, 4, where) for vip in vip_addresses]))
    plan = build(config, links, addresses, 0)
    plan.engine.start_all(0)
    plan.links = links        # what the daemon's link table would hold
    return plan


def fake_daemon(plan, loop):
    return SimpleNamespace(
        plan=plan, loop=loop, lifecycle=SimpleNamespace(reloads={"ok": 0}),
        driver=SimpleNamespace(wakeups={"work": 0, "empty": 0}),
        notifications=SimpleNamespace(notifier=SimpleNamespace(runs={}, running=0, queued=0)),
        vips=SimpleNamespace(changes={"add": 0, "remove": 0}, failures=0),
        trackers=SimpleNamespace(policy=Tracking({})), metrics=None,
        links=SimpleNamespace(table=SimpleNamespace(
            links={link.name: link for link in plan.links.values()})))


class PlainCollector:
    """The same families as a textbook prometheus-client custom collector."""

    def __init__(self, plan) -> None:
        self.plan = plan

    def collect(self):
        plan, engine = self.plan, self.plan.engine
        names = ["vrrp_instance", "interface", "vrid", "family"]
        label_values = [[n, plan.instances[n].config.interface, str(plan.instances[n].config.vrid),
                         "ipv4"] for n in plan.names]
        counters = engine.counters_array().tolist()
        for name, getter in (("hivrrp_instance_state", engine.states_array().tolist()),
                             ("hivrrp_instance_priority", engine.priorities_array().tolist())):
            g = GaugeMetricFamily(name, name, labels=names)
            for values, v in zip(label_values, getter):
                g.add_metric(values, v)
            yield g
        for name, counter, _ in INSTANCE_COUNTERS:
            c = CounterMetricFamily(name[:-6], name, labels=names)
            k = COUNTERS.index(counter)
            for values, row in zip(label_values, counters):
                c.add_metric(values, row[k])
            yield c
        c = CounterMetricFamily("hivrrp_instance_receive_errors", "errors",
                                labels=names + ["reason"])
        for reason, counter in RECEIVE_ERRORS:
            k = COUNTERS.index(counter)
            for values, row in zip(label_values, counters):
                c.add_metric(values + [reason], row[k])
        yield c


def cpu_of(fn) -> tuple[float, int]:
    started = time.thread_time()
    body = fn()
    size = len(body) if isinstance(body, bytes) else sum(map(len, body))
    return time.thread_time() - started, size


def http_scrapes(plan, compat: str | None, rounds: int) -> list[float]:
    """Wall seconds of whole GETs of /metrics from the real server on 127.0.0.1
    (the client reads the body in this process, as Prometheus would elsewhere)."""
    loop = asyncio.new_event_loop()
    server = MetricsServer(fake_daemon(plan, loop), "127.0.0.1", 0, compat)
    server.start()
    url = f"http://127.0.0.1:{server.server.server_address[1]}/metrics"
    seconds = []
    try:
        for _ in range(rounds):
            started = time.perf_counter()
            with urllib.request.urlopen(url, timeout=30) as response:
                response.read()
            seconds.append(time.perf_counter() - started)
    finally:
        server.close()
        loop.close()
    return seconds


async def stall_while(loop, work) -> float:
    """The loop's longest stall (seconds) while `work` runs on a thread of its
    own: this bench's and bench/control.py's measure."""
    probe = StallProbe(loop).start()
    thread = threading.Thread(target=work)
    thread.start()
    while thread.is_alive():
        await asyncio.sleep(0.001)
    return probe.stop()


def instances_and_rounds(description: str) -> argparse.Namespace:
    """--instances and --rounds, checked: this bench's and bench/control.py's."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--instances", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not 1 <= args.instances <= 100000 or not 1 <= args.rounds <= 50:
        raise SystemExit("--instances 1..100000, --rounds 1..50")
    return args


def main() -> None:
    args = instances_and_rounds(__doc__.splitlines()[0])
    plan = plan_of(args.instances, VIPS)

    async def measure():
        loop = asyncio.get_running_loop()
        metrics = Metrics(fake_daemon(plan, loop))
        compat = Metrics(fake_daemon(plan, loop), "keepalived-exporter")
        registry = CollectorRegistry()
        registry.register(PlainCollector(plan))
        ours, with_compat, plain, stalls, sizes = [], [], [], [], {}
        walls: dict[str, list[float]] = {"hivrrp": [], "compat": [], "plain": []}
        for _ in range(args.rounds):
            for label, fn, into in (("hivrrp", metrics.render, ours),
                                    ("compat", compat.render, with_compat),
                                    ("plain", lambda: generate_latest(registry), plain)):
                result = {}

                def work():
                    try:
                        started = time.perf_counter()
                        result["cpu"], result["size"] = cpu_of(fn)
                        result["wall"] = time.perf_counter() - started
                    except BaseException as exc:      # reported below, not a KeyError
                        result["error"] = exc

                worst = await stall_while(loop, work)
                if "error" in result:
                    raise SystemExit(f"{label} render failed: {result['error']!r}")
                into.append(result["cpu"])
                walls[label].append(result["wall"])
                sizes[label] = result["size"]
                if label != "plain":
                    stalls.append(worst)
        return ours, with_compat, plain, stalls, sizes, walls

    ours, with_compat, plain, stalls, sizes, walls = asyncio.run(measure())
    http = {"hivrrp": http_scrapes(plan, None, args.rounds),
            "compat": http_scrapes(plan, "keepalived-exporter", args.rounds)}
    ratios = [o / p for o, p in zip(ours, plain)]
    print(f"{args.instances} instances with {VIPS} VIPs each, {args.rounds} rounds "
          "(thread CPU seconds per scrape)")
    print(f"  hivrrp render        median {statistics.median(ours):.3f} s "
          f"({sizes['hivrrp'] / 1e6:.1f} MB, all families and the process metrics)")
    print(f"  + keepalived compat  median {statistics.median(with_compat):.3f} s "
          f"({sizes['compat'] / 1e6:.1f} MB, the same plus keepalived-exporter's families; "
          f"{', '.join(f'{c:.3f}' for c in with_compat)})")
    print(f"  wall clock per scrape, median: hivrrp {statistics.median(walls['hivrrp']):.3f} s, "
          f"with compat {statistics.median(walls['compat']):.3f} s "
          f"(worst {max(walls['compat']):.3f} s, the first builds the labels)")
    print(f"  HTTP GET /metrics, whole body, median: hivrrp "
          f"{statistics.median(http['hivrrp']):.3f} s, with compat "
          f"{statistics.median(http['compat']):.3f} s "
          f"(worst {max(http['compat']):.3f} s)")
    print(f"  plain collector      median {statistics.median(plain):.3f} s "
          f"({sizes['plain'] / 1e6:.1f} MB, the per-instance counters only)")
    print(f"  ratio hivrrp/plain   median {statistics.median(ratios):.2f}x "
          f"({', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"  loop stall while a scrape renders on its thread: median "
          f"{statistics.median(stalls) * 1000:.1f} ms, worst {max(stalls) * 1000:.1f} ms")
    print(json.dumps({"instances": args.instances, "vips_per_instance": VIPS,
                      "hivrrp_cpu_s": ours, "compat_cpu_s": with_compat, "plain_cpu_s": plain,
                      "wall_s": walls, "http_s": http, "stall_s": stalls, "bytes": sizes}))


if __name__ == "__main__":
    main()
