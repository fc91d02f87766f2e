"""keepalived 2.2.7's SIGUSR2 stats file and SIGUSR1 data file, and ours, read by one parser.

The real keepalived runs in a namespace with TMPDIR pointing at this test's
directory: 2.2.7 has no *_file_location keywords, but set_tmp_dir()
(lib/utils.c:1300) takes an absolute $TMPDIR for both files, so nothing is
written to /tmp and parallel runs cannot read each other's files.
"""

import os
import shutil
import signal
import subprocess
import time

import pytest
from netns_conf import FAST, VIP, conf

from helpers.keepalived_files import parse_data, parse_stats
from helpers.netns import wait_for
from helpers.topology import KEEPALIVED_ARGS
from hivrrp.ops.dumpfiles import data_text, stats_text

pytestmark = pytest.mark.netns

# vrrp_print_stats() (keepalived/vrrp/vrrp_print.c:76-101): label -> hivrrp counter.
LABELS = {
    "Advertisements/Received": "adverts_received",
    "Advertisements/Sent": "adverts_sent",
    "Became master": "became_master",
    "Released master": "released_master",
    "Packet Errors/Length": "packet_length_errors",
    "Packet Errors/TTL": "ip_ttl_errors",
    "Packet Errors/Invalid Type": "invalid_type_received",
    "Packet Errors/Advertisement Interval": "advert_interval_errors",
    "Packet Errors/Address List": "address_list_errors",
    "Authentication Errors/Invalid Type": "auth_invalid_type",
    "Authentication Errors/Type Mismatch": "auth_type_mismatch",
    "Authentication Errors/Failure": "auth_failure",
    "Priority Zero/Received": "priority_zero_received",
    "Priority Zero/Sent": "priority_zero_sent",
}


def read_complete(path, parse, complete, timeout=5.0):
    """keepalived renames its file into place before it writes it (fopen_safe,
    lib/utils.c:967): read until the parser accepts a complete file."""
    found = {}

    def attempt():
        try:
            parsed = parse(path.read_text())
        except (OSError, ValueError):
            return False
        found["parsed"] = parsed
        return complete(parsed)

    assert wait_for(attempt, timeout), f"{path}: never complete ({found.get('parsed')})"
    return found["parsed"]


def test_keepalived_files_and_ours_parse_alike(lan, tmp_path):
    if shutil.which("keepalived") is None:
        pytest.fail("keepalived is missing: tests/run.sh installs it")
    ns = lan.node("ka", ipv4="192.0.2.1/24")
    files = tmp_path / "ka-tmp"
    files.mkdir()
    # `state MASTER`: master one advert interval after start, not Master_Down_Interval.
    config = lan.write("ka.conf", conf(200, extra="    state MASTER\n"))
    with open(tmp_path / "ka-keepalived.log", "ab") as log:     # lan.log() reads it
        ka = lan.popen(ns, "keepalived", *KEEPALIVED_ARGS, "--use-file", str(config),
                       "--pid", str(tmp_path / "ka.pid"),
                       "--vrrp_pid", str(tmp_path / "vrrp.pid"),
                       "--checkers_pid", str(tmp_path / "chk.pid"),
                       env={**os.environ, "TMPDIR": str(files)},
                       stdout=log, stderr=subprocess.STDOUT)
    assert lan.wait_owner(VIP, "ka", 8), lan.log("ka", "keepalived")
    time.sleep(1.5)                               # a few adverts
    # The parent (`ip netns exec` execs keepalived: same PID) passes both on.
    os.kill(ka.pid, signal.SIGUSR2)
    os.kill(ka.pid, signal.SIGUSR1)

    theirs = read_complete(files / "keepalived.stats", parse_stats,
                           lambda s: len(s.get("VI_1", {})) == len(LABELS))
    data = read_complete(files / "keepalived.data", parse_data,
                         lambda d: "Notify priority changes" in d.get("VI_1", {}))
    lan.stop_keepalived(ka)
    assert sorted(os.listdir(files)) == ["keepalived.data", "keepalived.stats",
                                         "keepalived_parent.data"]

    # The parser finds keepalived's instance with plausible counters.
    assert list(theirs) == ["VI_1"]
    stats = theirs["VI_1"]
    assert list(stats) == list(LABELS)
    assert stats["Advertisements/Sent"] > 0
    assert stats["Became master"] == 1
    assert stats["Released master"] == 0
    assert all(v == 0 for k, v in stats.items()
               if k.startswith(("Packet Errors/", "Authentication Errors/", "Priority Zero/")))
    topo = data["VI_1"]
    assert topo["State"] == "MASTER"

    # The same instance as hivrrp's rows: ours parse to the same labels, the same
    # nesting and the same values.
    counters = {key: stats[label] for label, key in LABELS.items()}
    counters |= {"checksum_pseudo_header_received": 0, "checksum_no_pseudo_header_received": 0}
    row = {
        "instance": "VI_1", "interface": topo["Interface"],
        "vrid": int(topo["Virtual Router ID"]), "family": "ipv4",
        "version": int(topo["VRRP Version"]), "state": topo["State"],
        "base_priority": int(topo["Priority"]), "priority": int(topo["Effective priority"]),
        "priority_delta": int(topo["Total priority"]) - int(topo["Priority"]),
        "master": None, "vips": [f"{VIP}/24"],
        "last_transition": float(topo["Last transition"].split()[0]), "advert_int": 1.0,
        "counters": counters, "fault_reasons": [], "trackers": [], "sync_group": None,
    }
    ours = parse_stats(stats_text([row]))
    assert ours == theirs
    assert list(ours["VI_1"]) == list(stats)

    mine = parse_data(data_text([row]))["VI_1"]
    assert set(mine) <= set(topo)
    assert list(mine) == [k for k in topo if k in mine]      # keepalived's order
    assert {k: topo[k] for k in mine} == mine                 # and its values
    assert mine["Virtual IP (1)"] == [f"{VIP}/24 dev eth1 scope global set"]


def test_the_running_daemon_writes_them_on_sigusr1_and_sigusr2(lan, tmp_path):
    """hivrrp's own files, where the config says, read by the same parser and
    agreeing with `hivrrp dump` over the control socket."""
    import json
    import sys

    lan.node("r1", ipv4="192.0.2.1/24")
    stats_path, data_path = tmp_path / "r1.stats", tmp_path / "r1.data"
    text = (f"global_defs {{\n    stats_file_location {stats_path}\n"
            f"    state_file_location {data_path}\n}}\n" + conf(200, **FAST))
    daemon = lan.hivrrp("r1", lan.write("r1.conf", text))
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    time.sleep(1.5)
    daemon.send_signal(signal.SIGUSR2)
    daemon.send_signal(signal.SIGUSR1)
    stats = read_complete(stats_path, parse_stats, lambda s: "VI_1" in s)["VI_1"]
    data = read_complete(data_path, parse_data, lambda d: "VI_1" in d)["VI_1"]
    assert oct(os.stat(stats_path).st_mode & 0o777) == "0o600"
    assert list(stats) == list(LABELS)
    dumped = json.loads(subprocess.run(
        [sys.executable, "-m", "hivrrp", "dump", "--socket", str(lan.workdir / "r1.sock")],
        capture_output=True, text=True, timeout=30, check=True).stdout)
    counters = dumped["instances"][0]["counters"]
    assert stats["Became master"] == counters["became_master"] == 1
    # Sent keeps counting between the signal and the dump: never backwards.
    assert 0 < stats["Advertisements/Sent"] <= counters["adverts_sent"]
    assert data["State"] == "MASTER" and data["Priority"] == "200"
    assert daemon.poll() is None
