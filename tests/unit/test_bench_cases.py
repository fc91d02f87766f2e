"""The pure parts of bench/follow.py and bench/sendpath.py: the follower
configuration, the ping targets and gaps, the netlink address monitor's
parsing and timeline, feature detection, the medians and ratios, the report."""

from __future__ import annotations

import json
import socket
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import addrmon  # noqa: E402
import cases  # noqa: E402
import follow  # noqa: E402
import report  # noqa: E402
import rig  # noqa: E402
import sendpath  # noqa: E402
from hivrrp.config import load  # noqa: E402
from hivrrp.kernel.rtnl import RTM_DELADDR, RTM_NEWADDR, RTM_NEWLINK, attr, message  # noqa: E402
from hivrrp.tools.lab import Segment, keepalived_conf  # noqa: E402


def segments(count: int) -> list[Segment]:
    return [Segment(k, f"10.{100 + k}") for k in range(count)]


# -- the follower configuration ------------------------------------------------------------

def test_each_segment_has_one_leader_and_the_rest_follow_it():
    text = follow.follow_conf(segments(3), 600, 200, leader_int=0.01, follower_int=1.0)
    blocks = text.split("vrrp_instance ")[1:]
    assert len(blocks) == 600
    leaders = [b for b in blocks if "follow " not in b]
    assert [b.split()[0] for b in leaders] == ["seg0_vr1", "seg1_vr1", "seg2_vr1"]
    assert all("advert_int 0.01\n" in b for b in leaders)
    followers = [b for b in blocks if "follow " in b]
    assert len(followers) == 597                  # 249 + 249 + the partial segment's 99
    # Every follower follows the leader of its own segment, at its own interval.
    for block in followers:
        name = block.split()[0]
        segment = name.split("_")[0]
        assert f"    follow {segment}_vr1\n" in block and "advert_int 1\n" in block
    assert "follow_refresh" not in text            # the daemon's default unless asked
    refreshed = follow.follow_conf(segments(1), 3, 100, leader_int=0.01, follower_int=1.0,
                                   follow_refresh=30)
    assert refreshed.count("    follow_refresh 30\n") == 2
    assert "vrrp_version 3" in text


def test_the_follower_config_reads_like_the_independent_one_but_for_follow(tmp_path):
    """Same names, VRIDs, interfaces and VIPs as the lab's independent config;
    the reader's only complaints (a build without `follow`) are about follow."""
    ours, theirs = tmp_path / "follow.conf", tmp_path / "plain.conf"
    ours.write_text(follow.follow_conf(segments(2), 300, 200, leader_int=0.01,
                                       follower_int=1.0, follow_refresh=60))
    theirs.write_text(keepalived_conf(segments(2), 300, 200, version=3, advert_int=0.1))
    a, b = load(str(ours), check_host=False), load(str(theirs), check_host=False)
    assert all("follow" in e.message for e in a.errors), [e.message for e in a.errors]
    assert not b.errors
    key = [(i.name, i.vrid, i.interface, [v.text for v in i.vips]) for i in b.config.instances]
    assert [(i.name, i.vrid, i.interface, [v.text for v in i.vips])
            for i in a.config.instances] == key
    assert {i.version for i in a.config.instances} == {3}


def test_ping_targets_are_leader_first_and_last_follower_of_spread_segments():
    segs = segments(40)
    targets = follow.ping_targets(segs, 10000, 4)
    # Segments 0, 13, 26 and 39: the first, the last and two between.
    assert targets[:3] == ["10.100.1.1", "10.100.2.1", "10.100.250.1"]
    assert targets[-3:] == ["10.139.1.1", "10.139.2.1", "10.139.250.1"]
    assert len(targets) == 12 and "10.113.1.1" in targets and "10.126.1.1" in targets
    # A partial last segment: its last follower is its last instance.
    assert follow.ping_targets(segments(2), 260, 2)[-3:] == [
        "10.101.1.1", "10.101.2.1", "10.101.10.1"]
    # More segments asked for than there are; a lone leader; none asked for.
    assert len(follow.ping_targets(segments(2), 500, 8)) == 6
    assert follow.ping_targets(segments(1), 1, 1) == ["10.100.1.1"]
    assert follow.ping_targets(segs, 10000, 0) == []


# -- the netlink address monitor ----------------------------------------------------------

def address_message(kind: int, address: str, *, ifindex: int = 3, prefixlen: int = 16,
                    flags: int = addrmon.IFA_F_SECONDARY, scope: int = 0,
                    family: int = socket.AF_INET) -> bytes:
    raw = socket.inet_pton(family, address)
    body = struct.pack("=BBBBi", family, prefixlen, flags, scope, ifindex)
    body += attr(addrmon.IFA_ADDRESS, raw) + attr(addrmon.IFA_LOCAL, raw)
    body += attr(8, struct.pack("=I", flags))        # IFA_FLAGS, as the kernel adds it
    return message(kind, 0, 0, body)


def test_the_monitor_reads_every_address_change_of_a_datagram():
    datagram = b"".join([
        address_message(RTM_NEWADDR, "10.100.1.1"),
        message(RTM_NEWLINK, 0, 0, b"\0" * 16),                      # not an address
        address_message(RTM_NEWADDR, "fd00::1", family=socket.AF_INET6, prefixlen=64),
        address_message(RTM_DELADDR, "10.101.7.1", ifindex=4),
        address_message(RTM_NEWADDR, "10.100.0.2", flags=0),          # the primary
    ])
    found = list(addrmon.changes(datagram))
    assert found == [
        addrmon.Change(True, 3, "10.100.1.1", 16, addrmon.IFA_F_SECONDARY, 0),
        addrmon.Change(False, 4, "10.101.7.1", 16, addrmon.IFA_F_SECONDARY, 0),
        addrmon.Change(True, 3, "10.100.0.2", 16, 0, 0)]
    assert [addrmon.is_vip(c) for c in found] == [True, True, False]
    # A truncated datagram yields what is whole and stops.
    assert len(list(addrmon.changes(datagram[:-10]))) == 2


def test_the_timeline_gives_the_first_new_vip_and_the_moment_all_were_held():
    def add(address):
        return addrmon.Change(True, 3, address, 16, 1, 0)

    def remove(address):
        return addrmon.Change(False, 3, address, 16, 1, 0)

    events = [(9.0, add("10.100.9.1")),       # before the kill: already held, not "first"
              (10.30, add("10.100.1.1")),
              (10.31, add("10.100.1.1")),     # a repeated notification counts once
              (10.32, remove("10.100.9.1")),
              (10.35, add("10.100.2.1")),
              (10.36, add("10.100.9.1"))]
    assert addrmon.timeline(events, 10.0, 3) == pytest.approx(
        {"first_s": 0.30, "all_s": 0.36, "held": 3})
    assert addrmon.timeline(events, 10.0, 4) == {"first_s": 0.3, "all_s": None, "held": 3}
    assert addrmon.timeline([], 10.0, 1) == {"first_s": None, "all_s": None, "held": 0}


# -- ping gaps ----------------------------------------------------------------------------

def test_a_ping_gap_needs_replies_before_and_after_the_kill():
    replies = [10.000, 10.002, 10.004, 10.090, 10.092]
    assert rig.ping_gap_ms(replies, 10.005) == pytest.approx(86.0)
    # The pinger was not up yet: no gap rather than one measured from its first reply.
    assert rig.ping_gap_ms([10.090, 10.092], 10.005) is None
    assert rig.ping_gap_ms([10.000], 10.005) is None


def test_the_gap_summary_gives_max_median_and_the_silent_vips():
    summary = rig.gap_summary({"a": 40.0, "b": 90.0, "c": 60.0, "d": None})
    assert summary == {"ping_gap_max_ms": 90.0, "ping_gap_median_ms": 60.0,
                       "ping_silent": ["d"]}
    assert rig.gap_summary({"a": None})["ping_gap_max_ms"] is None


# -- what the build supports -----------------------------------------------------------------

def test_follow_support_is_read_from_the_checks_errors():
    today = {"errors": [{"message": "unknown keyword 'follow' in vrrp_instance probe_follower"},
                        {"message": "interface x: something else"}]}
    assert rig.follow_refused(json.dumps(today)) == (
        "unknown keyword 'follow' in vrrp_instance probe_follower")
    assert rig.follow_refused(json.dumps({"errors": []})) is None
    not_fatal = {"errors": [{"message": "follow: rounding", "fatal": False}]}
    assert rig.follow_refused(json.dumps(not_fatal)) is None
    assert "no JSON" in rig.follow_refused("Traceback (most recent call last):")


def test_the_probe_config_has_a_leader_and_its_follower(tmp_path):
    conf = tmp_path / "probe.conf"
    conf.write_text(rig.probe_follow_conf())
    result = load(str(conf), check_host=False)
    assert [i.name for i in result.config.instances] == ["probe_leader", "probe_follower"]
    assert all("follow" in e.message for e in result.errors)


def test_without_send_path_the_groups_run_the_default_path_only():
    class Args:
        daemons, topologies = "hivrrp,keepalived", "p2p,bridge"
        instances, compare_instances, compare_topology = 10000, 4000, "p2p"

    both = sendpath.plan(Args, {"send_path": True})
    assert both == [("p2p", 10000, [("hivrrp", "raw"), ("hivrrp", "auto")]),
                    ("bridge", 10000, [("hivrrp", "raw"), ("hivrrp", "auto")]),
                    ("p2p", 4000, [("hivrrp", "raw"), ("hivrrp", "auto"), ("keepalived", None)])]
    assert sendpath.plan(Args, {"send_path": False})[0] == ("p2p", 10000, [("hivrrp", "default")])
    Args.daemons, Args.compare_instances = "keepalived", 4000
    assert sendpath.plan(Args, {"send_path": True}) == [("p2p", 4000, [("keepalived", None)])]
    Args.daemons, Args.compare_instances = "hivrrp", 0
    assert [g[1] for g in sendpath.plan(Args, {"send_path": True})] == [10000, 10000]


# -- medians, ratios, report ----------------------------------------------------------------

def run(case, daemon, round_, **figures):
    return {"case": case, "daemon": daemon, "round": round_, "instances": 10000,
            "master_down_interval_s": 0.0361 if case == "follow" else 0.3609, **figures}


RUNS = [run("follow", "hivrrp", 0, master_cpu_percent=2.0, backup_cpu_percent=1.0,
            kill_all_vips_s=0.08, kill_first_vip_s=0.03, kill_ping_gap_max_ms=70.0),
        run("independent", "hivrrp", 0, master_cpu_percent=40.0, backup_cpu_percent=8.0,
            kill_all_vips_s=1.1),
        run("independent", "keepalived", 0, note="held 3 of 10000 VIPs after 160 s"),
        run("independent", "hivrrp", 1, master_cpu_percent=50.0, backup_cpu_percent=10.0,
            kill_all_vips_s=1.3),
        run("follow", "hivrrp", 1, master_cpu_percent=4.0, backup_cpu_percent=2.0,
            kill_all_vips_s=0.12, kill_first_vip_s=0.04, kill_ping_gap_max_ms=110.0),
        run("independent", "keepalived", 1, note="skipped: could not hold it in round 1"),
        run("follow", "hivrrp", 2, master_cpu_percent=3.0, kill_all_vips_s=None,
            note="r2 held 9000 of 10000 VIPs 30 s after the kill")]


def test_medians_are_per_case_over_the_rounds_that_have_the_figure():
    rows = cases.medians(RUNS, follow.KEYS)
    assert [(r["case"], r["daemon"]) for r in rows] == [
        ("follow", "hivrrp"), ("independent", "hivrrp"), ("independent", "keepalived")]
    ours = rows[0]
    assert ours["master_cpu_percent"] == 3.0                  # of 2, 4 and 3
    assert ours["kill_all_vips_s"] == pytest.approx(0.10)     # of 0.08 and 0.12
    assert ours["backup_cpu_percent"] == 1.5
    assert (ours["rounds"], ours["complete"]) == (3, 2)
    assert "9000 of 10000" in ours["note"]
    assert ours["master_down_interval_s"] == 0.0361
    keepalived = rows[2]
    assert keepalived["master_cpu_percent"] is None and keepalived["complete"] == 0
    assert "held 3 of 10000" in keepalived["note"] and "skipped" in keepalived["note"]


def test_ratios_are_taken_within_each_round():
    ratios = cases.round_ratios(RUNS, follow.KEYS, ("follow", "hivrrp"),
                                ("independent", "hivrrp"), "master_cpu_percent")
    assert ratios == [0.05, 0.08]             # round 2 has no independent run
    assert cases.ratio_summary(ratios)["median"] == pytest.approx(0.065)
    assert cases.round_ratios(RUNS, follow.KEYS, ("follow", "hivrrp"),
                              ("independent", "keepalived"), "master_cpu_percent") == []


def test_the_text_table_shows_a_dash_for_no_figure():
    lines = cases.text_table(cases.medians(RUNS, follow.KEYS), follow.COLUMNS)
    assert lines[0].split()[:3] == ["case", "daemon", "MDI"]
    keepalived = lines[3]
    assert keepalived.split()[:4] == ["independent", "keepalived", "0.3609", "-"]
    assert keepalived.rstrip().endswith("skipped: could not hold it in round 1")


def follow_document(features=None) -> dict:
    summary = cases.medians(RUNS, follow.KEYS)
    result = {"runs": RUNS, "summary": summary, "instances": 10000, "leader_int": 0.01,
              "independent_int": 0.1, "window_s": 10.0, "rounds": 3,
              "features": features or {"follow": True, "send_path": True},
              "ratios": {"follow/independent hivrrp master CPU": cases.ratio_summary(
                  [0.05, 0.08])}}
    return {"command": "python -m bench", "date": "today", "quick": False, "machine": {},
            "benchmarks": {"follow": {"results": [result]}}}


def test_the_report_gives_the_follower_table_and_its_targets():
    text = report.markdown(follow_document())
    assert "## Follower instances: 10,000 VIPs" in text
    assert ("every VIP on the backup 0.100 s after SIGKILL of the master (within 0.1 s; the "
            "first 0.035 s; the leaders' Master_Down_Interval 0.036 s)") in text
    assert "longest 90 ms (within 100 ms)" in text
    assert "master 3.00 % (within 5)" in text and "backup 1.50 % (within 3)" in text
    row = next(line for line in text.splitlines() if line.startswith("| follow | hivrrp |"))
    assert "| 0.036 | - | 3.00 | 1.50 |" in row and "| 2/3 |" in row
    assert "| follow/independent hivrrp master CPU | 0.065x | 0.050, 0.080 |" in text
    unsupported = report.markdown(follow_document(
        {"follow": False, "follow_reason": "hivrrp check: unknown keyword 'follow'"}))
    assert "This build does not support `follow`: hivrrp check: unknown keyword" in unsupported


def test_the_report_gives_the_send_path_table_ratios_and_targets():
    def sp(topology, n, daemon, path, round_, **figures):
        return {"topology": topology, "instances": n, "daemon": daemon, "send_path": path,
                "round": round_, "master_down_interval_s": 0.3609, **figures}

    runs = [sp("p2p", 10000, "hivrrp", "raw", 0, master_cpu_percent=44.0, kill_all_vips_s=0.6),
            sp("p2p", 10000, "hivrrp", "auto", 0, master_cpu_percent=22.0, kill_all_vips_s=0.4),
            sp("p2p", 4000, "hivrrp", "auto", 0, master_cpu_percent=10.0),
            sp("p2p", 4000, "keepalived", None, 0, master_cpu_percent=80.0)]
    summary = cases.medians(runs, sendpath.KEYS)
    ratios = sendpath.all_ratios(runs)
    assert ratios["p2p N=10000: auto/raw master_cpu_percent"]["rounds"] == [0.5]
    assert ratios["p2p N=4000: hivrrp auto/keepalived master_cpu_percent"]["median"] == 0.125
    result = {"runs": runs, "summary": summary, "ratios": ratios, "interval": 0.1,
              "window_s": 10.0, "rounds": 1, "features": {"send_path": True}}
    text = "\n".join(report.sendpath(result))
    assert ("p2p 10,000, auto path: master 22.00 % of a core (NOT within 20), every VIP on the "
            "peer 0.400 s after SIGKILL (within 0.45 s)") in text
    assert "hivrrp auto/keepalived master_cpu_percent: 0.125x (within 0.25)" in text
    assert "| p2p | 4,000 | keepalived | - |" in text
    without = "\n".join(report.sendpath({**result, "features": {
        "send_path": False, "send_path_reason": "`hivrrp run --help` has no --send-path"}}))
    assert "This build has no `--send-path`" in without


def test_the_case_plots_are_drawn(tmp_path):
    pytest.importorskip("matplotlib")
    import plots

    rows = cases.medians(RUNS, follow.KEYS)
    written = plots.draw_cases([("followers", rows), ("send path", [])], tmp_path)
    assert written == ["cases_cpu.png", "cases_failover.png"]
    assert all((tmp_path / name).stat().st_size > 1000 for name in written)
    assert plots.draw_cases([("followers", [])], tmp_path) == []


def test_a_follower_run_whose_followers_advertise_gets_a_note():
    quiet = {"leaders": 40, "master_pps": 4100}
    follow.check_followers_quiet(quiet, 0.01)        # 40 leaders at 10 ms: 4,000 a second
    assert "note" not in quiet
    loud = {"leaders": 40, "master_pps": 14000, "note": "earlier"}
    follow.check_followers_quiet(loud, 0.01)
    assert loud["note"] == ("earlier; r1 sent 14000 packets/s, its leaders' adverts are "
                            "4000/s: the followers advertise")
    follow.check_followers_quiet({"leaders": 40}, 0.01)   # no figure (it failed earlier)


def test_a_kill_stops_the_whole_tree_before_the_first_sigkill(monkeypatch):
    """keepalived's VRRP child takes its parent's death as a SIGTERM
    (PR_SET_PDEATHSIG) and began a clean shutdown, priority-0 adverts and all,
    when the parent was killed first: no process may see a death before every
    one is stopped."""
    import signal

    import scale

    calls = []

    def kill(pid, signum):
        calls.append((pid, signum))
        if pid == 12:
            raise ProcessLookupError      # gone already: the others are still killed

    monkeypatch.setattr(scale, "tree", lambda pid: [pid, 11, 12])
    monkeypatch.setattr(scale.os, "kill", kill)
    scale.kill_tree(10)
    assert calls == [(10, signal.SIGSTOP), (11, signal.SIGSTOP), (12, signal.SIGSTOP),
                     (10, signal.SIGKILL), (11, signal.SIGKILL), (12, signal.SIGKILL)]
