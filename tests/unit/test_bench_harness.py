"""The pure parts of `python -m bench`: run planning, ping gaps, the report."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import e2e  # noqa: E402
import report  # noqa: E402


def test_the_run_matrix_adds_the_extra_mode_only_for_sizes_asked_for():
    modes = [(2, 1.0), (3, 0.1)]
    runs = e2e.plan_runs([100, 10000], modes, [(10000, 3, 1.0), (4000, 3, 1.0)])
    assert runs == [(100, 2, 1.0), (100, 3, 0.1), (10000, 2, 1.0), (10000, 3, 0.1),
                    (10000, 3, 1.0)]
    assert e2e.plan_runs([100], modes, [(100, 3, 0.1)]) == [(100, 2, 1.0), (100, 3, 0.1)]


def test_the_ping_gap_is_the_longest_silence_around_the_event():
    replies = [10.00, 10.01, 10.02, 10.40, 10.41, 10.90, 10.91]
    # The silence that spans the event (10.02 -> 10.40) and a later one (10.41 -> 10.90).
    assert e2e.longest_gap_ms(replies, 10.03) == pytest.approx(490.0)
    assert e2e.longest_gap_ms(replies[:4], 10.03) == pytest.approx(380.0)
    assert e2e.longest_gap_ms(replies[:3], 10.03) is None       # nothing answered after it


def test_the_ping_output_parser_takes_replies_only(tmp_path):
    pinger = e2e.Pinger.__new__(e2e.Pinger)
    pinger.path = tmp_path / "ping.txt"
    pinger.path.write_text(
        "PING 10.100.1.1 (10.100.1.1) 56(84) bytes of data.\n"
        "[1700000000.100000] 64 bytes from 10.100.1.1: icmp_seq=1 ttl=64 time=0.1 ms\n"
        "[1700000000.500000] From 10.100.0.100 icmp_seq=2 Destination Host Unreachable\n"
        "[1700000000.610000] 64 bytes from 10.100.1.1: icmp_seq=3 ttl=64 time=0.1 ms\n")

    class Done:
        def poll(self):
            return 0

        def wait(self, _timeout):
            return 0

    pinger.proc, pinger.out = Done(), open(tmp_path / "unused", "w")
    assert pinger.stop() == [1700000000.1, 1700000000.61]


def run(daemon, n, version, interval, **figures):
    return {"daemon": daemon, "instances": n, "version": version, "advert_int": interval,
            "master_down_interval_s": 0.361, **figures}


def test_the_report_puts_both_daemons_side_by_side_with_their_ratios():
    runs = [run("keepalived", 4000, 3, 0.1, start_s=20.0, master_cpu_percent=40.0,
                backup_cpu_percent=20.0, master_rss_mib=10.0, kill_failover_s=2.0,
                term_failover_s=1.0),
            run("hivrrp", 4000, 3, 0.1, start_s=2.0, master_cpu_percent=10.0,
                backup_cpu_percent=2.0, master_rss_mib=40.0, kill_failover_s=0.45,
                term_failover_s=0.2, kill_ping_gap_ms=480.0),
            run("keepalived", 10000, 3, 0.1, note="skipped: could not keep up at N=4000")]
    document = {"command": "python -m bench", "date": "today", "quick": False,
                "machine": {"cpu": "Test CPU", "cpus": 2},
                "benchmarks": {"e2e": {"results": [{"runs": runs, "window_s": 10}]}},
                "plots": ["cpu.png"]}
    text = report.markdown(document)
    lines = text.splitlines()
    hivrrp_row = next(line for line in lines if line.startswith("| 4,000 | v3 0.1 s | hivrrp"))
    assert "| 10.00 | 2.00 | 40.0 |" in hivrrp_row
    # hivrrp's row first, then keepalived's, in each (N, mode).
    assert lines.index(hivrrp_row) + 1 == lines.index(next(
        line for line in lines if line.startswith("| 4,000 | v3 0.1 s | keepalived")))
    assert "| 4,000 | v3 0.1 s | 0.25x | 0.10x | 4.00x | 0.23x | 0.20x |" in text
    assert "skipped: could not keep up at N=4000" in text
    assert "0.450 s after SIGKILL of the master (within 0.5 s" in text
    assert "2.000 s after SIGKILL of the master (not within 0.5 s" in text
    assert "![cpu.png](cpu.png)" in text


def test_a_failed_benchmark_is_reported_not_dropped():
    document = {"command": "python -m bench --quick", "date": "today", "quick": True,
                "machine": {}, "benchmarks": {"vips": {"error": "exit status 1, no figures",
                                                       "results": []}}}
    assert "| vips | failed: exit status 1, no figures |" in report.markdown(document)


def test_the_footprint_report_prints_every_part(capsys):
    import footprint

    result = {"runs": [{"instances": 100, "rss_kib": 35000, "peak_kib": 36000},
                       {"instances": 10000, "error": "not every VIP up within 120 s"}],
              "bytes_per_instance": 2500,
              "allocator": {"instances": 10000, "pymalloc": {
                  "arenas": 27, "allocated_bytes": 24_800_000, "free_in_pools_bytes": 400_000},
                  "malloc": {"in_use_bytes": 17_600_000, "free_bytes": 7_000_000,
                             "heap_bytes": 23_800_000, "mmapped_bytes": 800_000}},
              "traced": {"instances": 4000, "rss_kib": 80000, "traced_bytes": 20_700_000,
                         "owners": {"imports": {"bytes": 14_500_000, "blocks": 100_000},
                                    "hivrrp/daemon/plan.py": {"bytes": 1_600_000, "blocks": 16_000}},
                         "imports": {"pyroute2": {"bytes": 3_100_000, "blocks": 22_000}}}}
    footprint.print_report(result)
    out = capsys.readouterr().out
    assert "RSS per instance (slope): 2500 bytes" in out
    assert "27 arenas of 1 MiB, 24.8 MB in live blocks" in out
    assert "17.6 MB in use" in out and "not every VIP up within 120 s" in out
    assert "400 B/inst" in out and "pyroute2" in out


def test_the_config_load_row_says_what_a_daemon_keeps_when_measured():
    load = {"instances": 10000, "load_s_median": 1.7, "rounds": 5, "us_per_instance": 170.0}
    row = "\n".join(report.micro({"config_load": {"results": [
        {**load, "kept_bytes_per_instance": 1416}]}}))
    assert "10,000 instances in 1.7 s" in row and "1,416 bytes of RSS per instance" in row
    older = "\n".join(report.micro({"config_load": {"results": [load]}}))  # an older results.json
    assert "10,000 instances in 1.7 s" in older and "kept" not in older
