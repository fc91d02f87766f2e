"""Keywords parsed into the model but not acted on by the daemon yet are warnings, never silent.

A config that tracks a script must not pass `hivrrp check` as "OK, 0 warnings" while the daemon
ignores the tracker: the router would keep the VIP with the application dead.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.conf import load_text, write
from hivrrp.config import keywords
from hivrrp.config.diagnostics import REPEATS_SHOWN

ARTICLE = Path(__file__).resolve().parents[2] / "conf" / "article"
TRACKER_IGNORED = "the tracker is ignored and the instance keeps its priority"


def hivrrp(*args):
    return subprocess.run([sys.executable, "-m", "hivrrp", *args], capture_output=True,
                          text=True, timeout=120)


def not_acted_on(warnings) -> list[tuple[int, str]]:
    return [(d.where.line, d.message.split(" ", 1)[0]) for d in warnings
            if " is not acted on yet: " in d.message]


def test_article_track_script_check_text_names_the_keyword_and_counts_it():
    path = ARTICLE / "track-script.conf"
    result = hivrrp("check", "-f", str(path))
    assert result.returncode == 0
    assert (f"{path}:23: warning: track_script is not acted on yet: {TRACKER_IGNORED}"
            in result.stderr.splitlines())
    assert f"{path}:2: warning: vrrp_script is not acted on yet: " in result.stderr
    # Host-dependent "interface eth0 does not exist" may add one; never 0.
    warnings = len(result.stderr.splitlines())
    assert warnings >= 2
    assert result.stdout.startswith(f"{path}: OK, {warnings} warnings\n")


def test_article_track_script_check_json():
    path = ARTICLE / "track-script.conf"
    report = json.loads(hivrrp("check", "--json", "-f", str(path)).stdout)
    assert {"file": str(path), "line": 23,
            "message": f"track_script is not acted on yet: {TRACKER_IGNORED}"} in report["warnings"]


def test_run_logs_the_warnings_before_refusing_a_bad_config(tmp_path):
    # An error keeps `run` from starting a daemon; the warnings are logged first all the same.
    path = write(tmp_path, "k.conf", (ARTICLE / "track-script.conf").read_text()
                 + "frobnicate\n")
    result = hivrrp("run", "-f", str(path))
    assert result.returncode == 1
    assert (f"WARNING hivrrp: {path}:23: warning: track_script is not acted on yet: "
            f"{TRACKER_IGNORED}") in result.stderr


# Small configs around one keyword; the numbers below are the keyword's line in them.
def glob(line: str) -> str:
    return f"global_defs {{\n    {line}\n}}\n"


def inst(line: str = "priority 100") -> str:
    return ("vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 1\n"
            f"    virtual_ipaddress {{\n        192.0.2.1\n    }}\n    {line}\n}}\n")


def sync(line: str = "") -> str:
    return f"vrrp_sync_group G {{\n    group {{\n        VI_1\n    }}\n    {line}\n}}\n" + inst()


SCRIPT = 'vrrp_script chk {\n    script "/bin/true"\n}\n'
PROCESS = "vrrp_track_process proc {\n    process httpd\n}\n"
FILE = "track_file f {\n    file /run/f\n}\n"
SAMPLES = {
    # keyword: (config text, line(s) of the keyword)
    "router_id": (glob("router_id lb1"), 2),
    "vrrp_check_unicast_src": (glob("vrrp_check_unicast_src"), 2),
    "vrrp_skip_check_adv_addr": (glob("vrrp_skip_check_adv_addr"), 2),
    "vrrp_owner_ignore_adverts": (glob("vrrp_owner_ignore_adverts"), 2),
    "vrrp_startup_delay": (glob("vrrp_startup_delay 5"), 2),
    "script_user": (glob("script_user nobody"), 2),
    "enable_script_security": (glob("enable_script_security"), 2),
    "notification_email": (glob("notification_email {\n root@example.com\n }"), 2),
    "notification_email_from": (glob("notification_email_from a@example.com"), 2),
    "smtp_server": (glob("smtp_server 127.0.0.1"), 2),
    "smtp_connect_timeout": (glob("smtp_connect_timeout 30"), 2),
    "smtp_helo_name": (glob("smtp_helo_name lb1"), 2),
    "smtp_alert": (glob("smtp_alert"), 2),
    "smtp_alert_vrrp": (glob("smtp_alert_vrrp"), 2),
    "notify_fifo": (glob("notify_fifo /run/k.fifo"), 2),
    "vrrp_notify_fifo": (glob("vrrp_notify_fifo /run/v.fifo"), 2),
    "vrrp_notify_priority_changes": (glob("vrrp_notify_priority_changes"), 2),
    "dynamic_interfaces": (glob("dynamic_interfaces"), 2),
    "log_unknown_vrids": (glob("log_unknown_vrids"), 2),
    "unicast_ttl": (inst("unicast_ttl 10"), 7),
    "min_ttl": (inst("unicast_peer {\n 192.0.2.9 min_ttl 250\n }"), 8),
    "max_ttl": (inst("unicast_peer {\n 192.0.2.9 max_ttl 255\n }"), 8),
    "check_unicast_src": (inst("check_unicast_src"), 7),
    "skip_check_adv_addr": (inst("skip_check_adv_addr"), 7),
    "dont_track_primary": (inst("dont_track_primary"), 7),
    "accept": (inst("accept"), 7),
    "track_interface": (inst("track_interface {\n eth1\n }"), 7),
    "track_script": (SCRIPT + inst("track_script {\n chk\n }"), 10),
    "track_process": (PROCESS + inst("track_process {\n proc\n }"), 10),
    "track_file": (FILE + inst("track_file {\n f\n }"), (1, 10)),  # definition and use
    "vrrp_script": (SCRIPT + inst("track_script {\n chk\n }"), 1),
    "vrrp_track_process": (PROCESS + inst("track_process {\n proc\n }"), 1),
    "vrrp_track_file": ("vrrp_" + FILE + inst("track_file {\n f\n }"), 1),
    "notify": (inst("notify /bin/true"), 7),
    "notify_master": (inst("notify_master /bin/true"), 7),
    "notify_backup": (inst("notify_backup /bin/true"), 7),
    "notify_fault": (inst("notify_fault /bin/true"), 7),
    "notify_stop": (inst("notify_stop /bin/true"), 7),
    "notify_deleted": (inst("notify_deleted /bin/true"), 7),
    "notify_master_rx_lower_pri": (inst("notify_master_rx_lower_pri /bin/true"), 7),
    "notify_priority_changes": (inst("notify_priority_changes"), 7),
    "vrrp_sync_group": (sync(), 1),
    "sync_group_tracking_weight": (sync("sync_group_tracking_weight"), 5),
}


def test_every_table_entry_has_a_sample():
    # Removing an entry (the keyword got implemented) means removing its sample here too.
    assert set(SAMPLES) == set(keywords.NOT_ACTED_ON)


@pytest.mark.parametrize("keyword", sorted(SAMPLES))
def test_each_keyword_warns_once_per_occurrence_with_its_consequence(tmp_path, keyword):
    text, lines = SAMPLES[keyword]
    result = load_text(tmp_path, text)
    assert result.ok, result.errors
    found = [d for d in result.warnings if d.message.startswith(f"{keyword} is not acted on yet")]
    message = f"{keyword} is not acted on yet: {keywords.NOT_ACTED_ON[keyword]}"
    assert [(d.where.line, d.message) for d in found] == [
        (line, message) for line in (lines if isinstance(lines, tuple) else (lines,))]


def test_keywords_inside_a_sync_group_warn_too(tmp_path):
    result = load_text(tmp_path, sync("notify_master /x\n    track_interface {\n eth1\n }"))
    assert not_acted_on(result.warnings) == [(1, "vrrp_sync_group"), (5, "notify_master"),
                                             (6, "track_interface")]


def test_unsupported_keywords_keep_their_own_warnings(tmp_path):
    result = load_text(tmp_path, glob("vrrp_strict") + inst(
        "use_vmac\n    no_accept\n    track_bfd {\n b\n }"))
    assert not_acted_on(result.warnings) == []
    assert [d.message.split(" ")[0] for d in result.warnings] == ["'vrrp_strict'", "use_vmac",
                                                                  "no_accept", "'track_bfd'"]


def test_acted_on_keywords_do_not_warn(tmp_path):
    result = load_text(tmp_path, glob("vrrp_garp_master_delay 1\n vrrp_version 3\n"
                                               " vrrp_lower_prio_no_advert")
                       + inst("priority 150\n    garp_master_repeat 2\n"
                                         "    preempt_delay 5\n    unicast_src_ip 192.0.2.2\n"
                                         "    unicast_peer {\n 192.0.2.9\n }"))
    assert result.ok and result.warnings == []


def test_check_summarises_thousands_of_repeats_but_counts_them_all(tmp_path):
    path = write(tmp_path, "k.conf", SCRIPT + """\
        $VI= \\
        vrrp_instance vi_${N} { \\
            interface lo \\
            virtual_router_id ${N} \\
            virtual_ipaddress { \\
                192.0.2.${N} \\
            } \\
            track_script { \\
                chk \\
            } \\
        }
        ~SEQ(N, 1, 200) $VI
        """.replace("        ", ""))
    result = hivrrp("check", "-f", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    tracked = [line for line in lines if "track_script is not acted on yet" in line]
    assert len(tracked) == REPEATS_SHOWN
    assert (f"{path}:11: warning: ... and {200 - len(tracked)} more track_script warnings "
            "like these (hivrrp check --json lists every one)") in lines
    assert result.stdout.startswith(f"{path}: OK, 201 warnings\n")
    report = json.loads(hivrrp("check", "--json", "-f", str(path)).stdout)
    assert len(report["warnings"]) == 201
