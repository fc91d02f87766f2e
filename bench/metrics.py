"""What a Prometheus scrape costs the daemon at N instances (default 10,000).

    python bench/metrics.py [--instances 10000] [--rounds 5]

Builds a plan of N instances (40 interfaces x 250 VRIDs, no network: the
engine and the config only), then per round renders the scrape the way the
daemon does (hivrrp.ops.metrics.Metrics.render, on a thread) and the way a plain
prometheus-client custom collector would (one sample object per series,
rendered by generate_latest), and prints the CPU seconds of each (thread
time, medians), their ratio measured in the same run, the size of the text,
and the event loop's longest stall while scrapes run on another thread.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from types import SimpleNamespace

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from hivrrp._engine import COUNTERS
from hivrrp.config.model import Config, GlobalDefs, Instance, Vip
from hivrrp.config.diagnostics import Where
from hivrrp.ops.metrics import INSTANCE_COUNTERS, RECEIVE_ERRORS, Metrics
from hivrrp.kernel.netlink import Address, Link
from hivrrp.daemon.plan import build
from hivrrp.daemon.stall import StallProbe
from hivrrp.tracking.policy import Tracking

PER_INTERFACE = 250


def plan_of(instances: int):
    interfaces = (instances + PER_INTERFACE - 1) // PER_INTERFACE
    links = {f"vlan{k}": Link(k + 2, f"vlan{k}", bytes(6), True) for k in range(interfaces)}
    addresses = [Address(k + 2, 4, f"10.{k // 250}.{k % 250}.1", 16, 0)
                 for k in range(interfaces)]
    where = Where("bench.conf", 1)
    config = Config(global_defs=GlobalDefs())
    for n in range(instances):
        k, vrid = divmod(n, PER_INTERFACE)
        vip = f"10.{100 + k // 250}.{k % 250}.{vrid}"
        config.instances.append(Instance(
            name=f"vi_{k}_{vrid + 1}", where=where, interface=f"vlan{k}", vrid=vrid + 1,
            version=3, advert_int=1.0, priority=100,
            vips=[Vip(f"{vip}/16", vip, 16, 4, where)]))
    plan = build(config, links, addresses, 0)
    plan.engine.start_all(0)
    plan.links = links        # what the daemon's link table would hold
    return plan


def fake_daemon(plan, loop):
    return SimpleNamespace(
        plan=plan, loop=loop, lifecycle=SimpleNamespace(reloads={"ok": 0}),
        driver=SimpleNamespace(wakeups={"work": 0, "empty": 0}),
        notifications=SimpleNamespace(notifier=SimpleNamespace(runs={})),
        vips=SimpleNamespace(changes={"add": 0, "remove": 0}, failures=0),
        trackers=SimpleNamespace(policy=Tracking({})),
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
    plan = plan_of(args.instances)

    async def measure():
        loop = asyncio.get_running_loop()
        metrics = Metrics(fake_daemon(plan, loop))
        registry = CollectorRegistry()
        registry.register(PlainCollector(plan))
        ours, plain, stalls, sizes = [], [], [], {}
        for _ in range(args.rounds):
            for label, fn, into in (("hivrrp", metrics.render, ours),
                                    ("plain", lambda: generate_latest(registry), plain)):
                result = {}

                def work():
                    result["cpu"], result["size"] = cpu_of(fn)

                probe = StallProbe(loop).start()
                thread = threading.Thread(target=work)
                thread.start()
                while thread.is_alive():
                    await asyncio.sleep(0.001)
                worst = probe.stop()
                into.append(result["cpu"])
                sizes[label] = result["size"]
                if label == "hivrrp":
                    stalls.append(worst)
        return ours, plain, stalls, sizes

    ours, plain, stalls, sizes = asyncio.run(measure())
    ratios = [o / p for o, p in zip(ours, plain)]
    print(f"{args.instances} instances, {args.rounds} rounds (thread CPU seconds per scrape)")
    print(f"  hivrrp render        median {statistics.median(ours):.3f} s "
          f"({sizes['hivrrp'] / 1e6:.1f} MB, all families and the process metrics)")
    print(f"  plain collector      median {statistics.median(plain):.3f} s "
          f"({sizes['plain'] / 1e6:.1f} MB, the per-instance counters only)")
    print(f"  ratio hivrrp/plain   median {statistics.median(ratios):.2f}x "
          f"({', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"  loop stall while a scrape renders on its thread: median "
          f"{statistics.median(stalls) * 1000:.1f} ms, worst {max(stalls) * 1000:.1f} ms")
    print(json.dumps({"instances": args.instances, "hivrrp_cpu_s": ours, "plain_cpu_s": plain,
                      "stall_s": stalls, "bytes": sizes}))


if __name__ == "__main__":
    main()
