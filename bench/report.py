"""The markdown tables of one `python -m bench` run (results.md)."""

from __future__ import annotations

import statistics

from hivrrp.util.text import plural

HEADLINE = (4000, 3, 0.1)          # N, version, advert_int of the fast-failover figure
HEADLINE_LIMIT_S = 0.5
# Issue 21's targets, each beside its median (follower instances; the send path).
FOLLOW_TARGETS = {"kill_all_vips_s": 0.1, "kill_ping_gap_max_ms": 100.0,
                  "master_cpu_percent": 5.0, "backup_cpu_percent": 3.0}
SENDPATH_TARGETS = {"master_cpu_percent": 20.0, "kill_all_vips_s": 0.45}
SENDPATH_KEEPALIVED_RATIO = 0.25


def cell(value, digits: int | None = None) -> str:
    if value is None:
        return "-"
    if digits is not None and isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def mode(run: dict) -> str:
    return f"v{run['version']} {run['advert_int']:g} s"


def e2e_rows(runs: list[dict]) -> list[list[str]]:
    rows = []
    for r in sorted(runs, key=lambda r: (r["instances"], r["version"], -r["advert_int"],
                                         r["daemon"] != "hivrrp")):
        rows.append([f"{r['instances']:,}", mode(r), r["daemon"], cell(r.get("start_s"), 2),
                     cell(r.get("master_cpu_percent"), 2), cell(r.get("backup_cpu_percent"), 2),
                     cell(r.get("master_rss_mib"), 1), cell(r.get("backup_rss_mib"), 1),
                     cell(r.get("master_pps")), cell(r.get("kill_failover_s"), 3),
                     cell(r.get("kill_ping_gap_ms"), 0), cell(r.get("term_failover_s"), 3),
                     cell(r.get("term_ping_gap_ms"), 0), cell(r.get("term_exit_s"), 2),
                     r.get("note", "")])
    return rows


def pairs(runs: list[dict]) -> dict[tuple, dict[str, dict]]:
    out: dict[tuple, dict[str, dict]] = {}
    for r in runs:
        out.setdefault((r["instances"], r["version"], r["advert_int"]), {})[r["daemon"]] = r
    return out


def ratio(ours: dict, theirs: dict, key: str) -> str:
    a, b = ours.get(key), theirs.get(key)
    if a is None or not b:
        return "-"
    return f"{a / b:.2f}x"


def ratio_rows(runs: list[dict]) -> list[list[str]]:
    rows = []
    for (n, version, interval), by in sorted(pairs(runs).items(), key=lambda kv: (
            kv[0][0], kv[0][1], -kv[0][2])):
        if "hivrrp" not in by or "keepalived" not in by:
            continue
        h, k = by["hivrrp"], by["keepalived"]
        if "start_s" not in h or "start_s" not in k:
            continue             # one of them has no figures: its note says why
        rows.append([f"{n:,}", f"v{version} {interval:g} s",
                     ratio(h, k, "master_cpu_percent"), ratio(h, k, "backup_cpu_percent"),
                     ratio(h, k, "master_rss_mib"), ratio(h, k, "kill_failover_s"),
                     ratio(h, k, "term_failover_s")])
    return rows


def headline(runs: list[dict]) -> list[str]:
    n, version, interval = HEADLINE
    by = pairs(runs).get((n, version, interval))
    if not by:
        return []
    lines = [f"## Fast failover at scale: {n:,} instances, VRRPv{version}, "
             f"{interval:g} s adverts", ""]
    for daemon in ("hivrrp", "keepalived"):
        r = by.get(daemon)
        if r is None:
            continue
        if r.get("kill_failover_s") is None:
            lines.append(f"- **{daemon}**: {r.get('note') or 'no failover figure'}")
            continue
        verdict = ("within" if r["kill_failover_s"] <= HEADLINE_LIMIT_S else "not within")
        lines.append(
            f"- **{daemon}**: every VIP on the backup {r['kill_failover_s']:.3f} s after SIGKILL "
            f"of the master ({verdict} {HEADLINE_LIMIT_S} s; Master_Down_Interval "
            f"{r['master_down_interval_s']:.3f} s); client ping gap "
            f"{cell(r.get('kill_ping_gap_ms'), 0)} ms; steady CPU master "
            f"{r['master_cpu_percent']:.2f} %, backup {r['backup_cpu_percent']:.2f} % of a core")
    return lines + [""]


def footprint(result: dict) -> list[str]:
    lines = ["## Footprint (hivrrp master alone, every instance master)", ""]
    rows = [[f"{r['instances']:,}", cell(r.get("rss_kib") and r["rss_kib"] / 1024, 1),
             cell(r.get("peak_kib") and r["peak_kib"] / 1024, 1), r.get("error", "")]
            for r in result.get("runs", [])]
    lines += table(["instances", "RSS MiB", "peak RSS MiB", "note"], rows)
    if "bytes_per_instance" in result:
        lines += [f"RSS per instance (slope between the smallest and largest size): "
                  f"{result['bytes_per_instance']:,} bytes.", ""]
    allocator = result.get("allocator") or {}
    pm, ma = allocator.get("pymalloc"), allocator.get("malloc")
    if pm and ma:
        lines += [f"Inside the daemon at {allocator['instances']:,} instances (untraced run): "
                  f"Python objects {pm['allocated_bytes'] / 1e6:.1f} MB in {pm['arenas']} "
                  f"arenas of 1 MiB ({pm['free_in_pools_bytes'] / 1e6:.1f} MB free in them); "
                  f"C heap {ma['in_use_bytes'] / 1e6:.1f} MB in use, "
                  f"{ma['free_bytes'] / 1e6:.1f} MB free (trimmed pages included); the rest of "
                  "RSS is the interpreter's and libraries' code.", ""]
    traced = result.get("traced") or {}
    if "owners" in traced:
        n = traced["instances"]
        lines += [f"tracemalloc at {n:,} instances: {traced['traced_bytes'] / 1e6:.1f} MB "
                  "traced, by owner (the hivrrp module that allocated it, `imports` for "
                  "module code and objects):", ""]
        owners = list(traced["owners"].items())[:10]
        lines += table(["owner", "MB", "bytes per instance"],
                       [[f"`{name}`", f"{e['bytes'] / 1e6:.2f}",
                         "-" if name == "imports" else f"{e['bytes'] / n:.0f}"]
                        for name, e in owners])
    return lines


def verdict(value, target: float) -> str:
    if value is None:
        return "no figure"
    return f"{'within' if value <= target else 'NOT within'} {target:g}"


def case_rows(summary: list[dict], first: tuple[str, ...]) -> list[list[str]]:
    """The medians of bench/cases.py, one row per case, `first` its leading keys."""
    rows = []
    for r in summary:
        rows.append([*(cell(r.get(k)) if k != "instances" else f"{r[k]:,}" for k in first),
                     cell(r.get("master_down_interval_s"), 3), cell(r.get("start_s"), 2),
                     cell(r.get("master_cpu_percent"), 2), cell(r.get("backup_cpu_percent"), 2),
                     cell(r.get("master_rss_mib"), 1), cell(r.get("backup_rss_mib"), 1),
                     cell(r.get("master_pps")), cell(r.get("kill_first_vip_s"), 3),
                     cell(r.get("kill_all_vips_s"), 3),
                     *([cell(r.get("kill_ping_gap_max_ms"), 0),
                        cell(r.get("kill_ping_gap_median_ms"), 0)] if "case" in first else []),
                     f"{r.get('complete', 0)}/{r.get('rounds', 0)}", r.get("note", "")])
    return rows


CASE_HEADER = ["MDI s", "start s", "CPU master %", "CPU backup %", "RSS master MiB",
               "RSS backup MiB", "adverts/s", "SIGKILL: first VIP s", "SIGKILL: all VIPs s"]


def ratio_lines(ratios: dict) -> list[str]:
    rows = [[name, f"{r['median']:.3f}x", ", ".join(f"{x:.3f}" for x in r["rounds"])]
            for name, r in ratios.items() if r.get("median") is not None]
    return table(["within each round", "median", "rounds"], rows) if rows else []


def follow(result: dict) -> list[str]:
    n, summary = result["instances"], result["summary"]
    lines = [f"## Follower instances: {n:,} VIPs, one leader per segment at VRRPv3 "
             f"{result['leader_int']:g} s, the rest following (medians of "
             f"{plural(result['rounds'], 'round')}, {result['window_s']:g} s window)", ""]
    features = result.get("features") or {}
    if not features.get("follow", True):
        lines += [f"This build does not support `follow`: {features.get('follow_reason')}.", ""]
    ours = next((r for r in summary if r["case"] == "follow"), None)
    if ours and ours.get("kill_all_vips_s") is not None:
        lines += [
            f"- every VIP on the backup {ours['kill_all_vips_s']:.3f} s after SIGKILL of the "
            f"master ({verdict(ours['kill_all_vips_s'], FOLLOW_TARGETS['kill_all_vips_s'])} s; "
            f"the first {cell(ours.get('kill_first_vip_s'), 3)} s; the leaders' "
            f"Master_Down_Interval {ours['master_down_interval_s']:.3f} s)",
            f"- client ping gap: longest {cell(ours.get('kill_ping_gap_max_ms'), 0)} ms "
            f"({verdict(ours.get('kill_ping_gap_max_ms'), FOLLOW_TARGETS['kill_ping_gap_max_ms'])}"
            f" ms), median over the pinged VIPs {cell(ours.get('kill_ping_gap_median_ms'), 0)} ms",
            f"- steady CPU: master {cell(ours.get('master_cpu_percent'), 2)} % "
            f"({verdict(ours.get('master_cpu_percent'), FOLLOW_TARGETS['master_cpu_percent'])}), "
            f"backup {cell(ours.get('backup_cpu_percent'), 2)} % "
            f"({verdict(ours.get('backup_cpu_percent'), FOLLOW_TARGETS['backup_cpu_percent'])}) "
            "of a core", ""]
    lines += table(["case", "daemon", *CASE_HEADER, "ping gap max ms", "ping gap median ms",
                    "rounds complete", "note"], case_rows(summary, ("case", "daemon")))
    lines += ratio_lines(result.get("ratios") or {})
    lines += [f"follow: leaders at v3 {result['leader_int']:g} s, every other instance "
              f"following its segment's leader; independent: every instance at v3 "
              f"{result['independent_int']:g} s. SIGKILL is a power cut (the master's switch "
              "ports go down with it); first/all VIPs are stamped by a netlink address monitor "
              "in the backup's namespace; the ping gap is the longest silence per pinged VIP "
              "(leader, first and last follower of segments spread over the lab).", ""]
    return lines


def sendpath(result: dict) -> list[str]:
    summary = result["summary"]
    lines = [f"## Advert send path: VRRPv3 {result['interval']:g} s, `--send-path raw` and "
             f"`auto` (medians of {plural(result['rounds'], 'round')}, {result['window_s']:g} s "
             "window)", ""]
    features = result.get("features") or {}
    if not features.get("send_path", True):
        lines += [f"This build has no `--send-path` ({features.get('send_path_reason')}): its "
                  "default path only.", ""]
    for r in summary:
        if (r.get("topology") == "p2p" and r.get("send_path") in ("auto", "default")
                and r.get("instances", 0) >= 10000):
            cpu, moved = r.get("master_cpu_percent"), r.get("kill_all_vips_s")
            lines.append(
                f"- p2p {r['instances']:,}, {r['send_path']} path: master {cell(cpu, 2)} % of a "
                f"core ({verdict(cpu, SENDPATH_TARGETS['master_cpu_percent'])}), every VIP on "
                f"the peer {cell(moved, 3)} s after SIGKILL "
                f"({verdict(moved, SENDPATH_TARGETS['kill_all_vips_s'])} s)")
    for name, r in (result.get("ratios") or {}).items():
        if "/keepalived master" in name and r.get("median") is not None:
            lines.append(f"- {name}: {r['median']:.3f}x "
                         f"({verdict(r['median'], SENDPATH_KEEPALIVED_RATIO)})")
    if lines[-1]:
        lines.append("")
    lines += table(["topology", "N", "daemon", "send path", *CASE_HEADER, "rounds complete",
                    "note"], case_rows(summary, ("topology", "instances", "daemon", "send_path")))
    lines += ratio_lines(result.get("ratios") or {})
    lines += ["p2p: r1 and r2 joined by one veth pair per 250 instances (the kill is the "
              "daemon's alone); bridge: the lab's bridged segments with a client (the kill is a "
              "power cut). First/all VIPs are stamped by a netlink address monitor in the peer's "
              "namespace.", ""]
    return lines


def micro(benchmarks: dict) -> list[str]:
    lines = ["## Micro-benchmarks", ""]
    rows = []
    codec = first(benchmarks, "codec")
    if codec:
        rows.append(["codec", f"decode+validate {codec['decode_ns']} ns/packet, advert refresh "
                     f"{codec['refresh_ns']} ns ({codec['decode_speedup_vs_py']}x and "
                     f"{codec['refresh_speedup_vs_py']}x pure Python; scapy decode "
                     f"{cell(codec.get('scapy_decode_ns'), 0)} ns)"])
    for r in results(benchmarks, "engine"):
        rows.append([f"engine {r['instances']:,} v{r['version']}",
                     f"{r['engine_ns_per_advert']} ns per advert (send {r['send_ns_per_advert']}, "
                     f"receive {r['receive_ns_per_advert']})"])
    load = first(benchmarks, "config_load")
    if load:
        kept = load.get("kept_bytes_per_instance")
        rows.append(["config load", f"{load['instances']:,} instances in {load['load_s_median']} s "
                     f"(median of {load['rounds']}; {load['us_per_instance']} us per instance)"
                     + (f"; kept by a daemon with its plan: {kept:,} bytes of RSS per instance"
                        if kept is not None else "")])
    vips = first(benchmarks, "vips")
    if vips:
        rows.append(["VIP batches", f"{vips['vips']:,} VIPs: add {vips['hivrrp_add_s_median']} s, "
                     f"remove {vips['hivrrp_remove_s_median']} s (pyroute2 in batches of 128: "
                     f"{vips['pyroute2_add_s_median']} s, {vips['pyroute2_remove_s_median']} s)"])
    metrics = first(benchmarks, "metrics")
    if metrics:
        ours, plain = (statistics.median(metrics["hivrrp_cpu_s"]),
                       statistics.median(metrics["plain_cpu_s"]))
        rows.append(["metrics scrape", f"{metrics['instances']:,} instances: {ours:.3f} s CPU "
                     f"per scrape, a plain prometheus-client collector {plain:.3f} s "
                     f"({ours / plain:.2f}x); loop stall median "
                     f"{statistics.median(metrics['stall_s']) * 1000:.1f} ms"])
    for name, bench in benchmarks.items():
        if bench.get("error"):
            rows.append([name, f"failed: {bench['error']}"])
    return lines + table(["benchmark", "result"], rows)


def results(benchmarks: dict, name: str) -> list[dict]:
    return (benchmarks.get(name) or {}).get("results") or []


def first(benchmarks: dict, name: str) -> dict | None:
    found = results(benchmarks, name)
    return found[-1] if found else None


def markdown(document: dict) -> str:
    m = document["machine"]
    lines = ["# hivrrp benchmarks", "",
             f"`{document['command']}` on {document['date']}"
             + (" (--quick: a check, not figures to quote)" if document.get("quick") else ""), "",
             f"Machine: {m.get('cpu')}, {m.get('cpus')} CPUs, {m.get('memory')} RAM; "
             f"{m.get('os')}, kernel {m.get('kernel')}; Python {m.get('python')}; "
             f"{m.get('keepalived') or 'keepalived not installed'}; hivrrp "
             f"{m.get('hivrrp_commit') or '(no git)'}", ""]
    benchmarks = document["benchmarks"]
    e2e = first(benchmarks, "e2e")
    if e2e:
        runs = e2e["runs"]
        lines += headline(runs)
        lines += [f"## End to end, hivrrp and keepalived on the same configuration "
                  f"({e2e['window_s']:g} s steady window)", ""]
        lines += table(["N", "mode", "daemon", "start s", "CPU master %", "CPU backup %",
                        "RSS master MiB", "RSS backup MiB", "adverts/s", "SIGKILL: all VIPs s",
                        "ping gap ms", "SIGTERM: all VIPs s", "ping gap ms", "exit s", "note"],
                       e2e_rows(runs))
        ratios = ratio_rows(runs)
        if ratios:
            lines += ["hivrrp / keepalived, same run:", ""]
            lines += table(["N", "mode", "CPU master", "CPU backup", "RSS master",
                            "SIGKILL failover", "SIGTERM failover"], ratios)
        lines += ["CPU is % of one core over the window (whole process trees); start is from "
                  "the master's daemon starting until it holds every VIP; SIGKILL is a power "
                  "cut (the master's switch ports go down with it), SIGTERM a clean stop; the "
                  "ping gap is the longest silence seen by a client pinging the last instance's "
                  "VIP every 10 ms.", ""]
    plots = document.get("plots")   # a list of files, or a note why none were drawn
    for plot in plots if isinstance(plots, list) else []:
        lines += [f"![{plot}]({plot})", ""]
    found = first(benchmarks, "follow")
    if found:
        lines += follow(found)
    found = first(benchmarks, "sendpath")
    if found:
        lines += sendpath(found)
    fp = first(benchmarks, "footprint")
    if fp:
        lines += footprint(fp)
    lines += micro(benchmarks)
    return "\n".join(lines)
