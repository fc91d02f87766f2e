"""Engine cost per advert: two simulated routers, one all-master, one all-backup.

    python bench/engine.py --instances 10000 --seconds 60 [--version 2|3|both]

v2 runs at advert_int 1 s, v3 at 0.1 s. After the initial election (not
measured) the routers exchange adverts for --seconds virtual seconds. Engine
time is measured inside the engine calls (send side: timer expiry and advert
building; receive side: batch decode, checks, timer reschedule); the
simulator's own work (moving packets, the Python step loop) is reported
separately. Prints a table, then one JSON line per version.
"""

from __future__ import annotations

import argparse
import json
import time

from hivrrp.tools.sim import MILLISECOND, SECOND, Simulation

VRIDS_PER_INTERFACE = 250


def build(instances: int, version: int) -> Simulation:
    sim = Simulation()
    interfaces = (instances + VRIDS_PER_INTERFACE - 1) // VRIDS_PER_INTERFACE
    for ifindex in range(1, interfaces + 1):
        sim.segment(f"if{ifindex}")
    for n, (name, priority) in enumerate((("master", 200), ("backup", 100))):
        r = sim.router(name)
        for ifindex in range(1, interfaces + 1):
            r.attach(f"if{ifindex}", ifindex=ifindex,
                     ipv4=f"10.{ifindex >> 8}.{ifindex & 255}.{n + 1}")
        for i in range(instances):
            ifindex, vrid = i // VRIDS_PER_INTERFACE + 1, i % VRIDS_PER_INTERFACE + 1
            r.instance(f"vi{i}", ifindex=ifindex, vrid=vrid, version=version,
                       interval_cs=100 if version == 2 else 10, priority=priority,
                       addresses=[f"10.{128 + (i >> 16)}.{(i >> 8) & 255}.{i & 255}"])
    return sim


def run(instances: int, seconds: float, version: int, quantum_us: int) -> dict:
    sim = build(instances, version)
    sim.start()
    warmup = 5 * SECOND if version == 2 else SECOND
    sim.run_until(warmup, quantum=quantum_us)
    master, backup = sim.engine("master"), sim.engine("backup")
    assert master.count_in_state("MASTER") == instances, "election did not complete"
    sent_before = sum(master.counters(i)["adverts_sent"] for i in range(instances))
    settled = sim.now
    sim.lan.reset_timing()
    cpu_start = time.process_time()
    sim.run_until(settled + int(seconds * SECOND), quantum=quantum_us)
    cpu = time.process_time() - cpu_start
    adverts = sum(master.counters(i)["adverts_sent"] for i in range(instances)) - sent_before
    engine_ns = sim.lan.engine_tx_ns + sim.lan.engine_rx_ns
    return {
        "instances": instances,
        "version": version,
        "advert_int": 1.0 if version == 2 else 0.1,
        "virtual_seconds": seconds,
        "adverts": adverts,
        "engine_cpu_s": round(engine_ns / 1e9, 4),
        "engine_ns_per_advert": round(engine_ns / adverts, 1),
        "send_ns_per_advert": round(sim.lan.engine_tx_ns / adverts, 1),
        "receive_ns_per_advert": round(sim.lan.engine_rx_ns / adverts, 1),
        "simulator_cpu_s": round(max(0.0, cpu - engine_ns / 1e9), 4),
        "simulator_ns_per_advert": round(max(0.0, cpu * 1e9 - engine_ns) / adverts, 1),
        "quantum_ms": quantum_us / MILLISECOND,
        "transitions": len(sim.transitions(since=settled + 1)),
        "backup_received": sum(backup.counters(i)["adverts_received"] for i in range(instances)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, nargs="+", default=[10000])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--version", choices=["2", "3", "both"], default="both")
    parser.add_argument("--quantum-ms", type=float, default=1.0,
                        help="simulator step: how often a daemon would wake up")
    args = parser.parse_args()
    versions = [2, 3] if args.version == "both" else [int(args.version)]
    results = [run(n, args.seconds, v, int(args.quantum_ms * MILLISECOND))
               for n in args.instances for v in versions]
    print(f"{'instances':>9} {'ver':>3} {'int':>5} {'adverts':>10} {'engine ns/adv':>13} "
          f"{'send':>6} {'recv':>6} {'sim ns/adv':>10} {'transitions':>11}")
    for r in results:
        print(f"{r['instances']:>9} {r['version']:>3} {r['advert_int']:>5} {r['adverts']:>10} "
              f"{r['engine_ns_per_advert']:>13} {r['send_ns_per_advert']:>6} "
              f"{r['receive_ns_per_advert']:>6} {r['simulator_ns_per_advert']:>10} "
              f"{r['transitions']:>11}")
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
