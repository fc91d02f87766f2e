"""Keywords parsed into the model but not acted on by the daemon are warnings, never silent.

A config that relies on one (e-mail alerts, `check_unicast_src`, a unicast TTL) must not
pass `hivrrp check` as "OK, 0 warnings" while the daemon does something else.
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


def hivrrp(*args):
    return subprocess.run([sys.executable, "-m", "hivrrp", *args], capture_output=True,
                          text=True, timeout=120)


def not_acted_on(warnings) -> list[tuple[int, str]]:
    return [(d.where.line, d.message.split(" ", 1)[0]) for d in warnings
            if " is not acted on yet: " in d.message]


EMAIL_INFO = ("notification_email, notification_email_from, smtp_server, smtp_connect_timeout, "
              "router_id: no effect on VRRP; hivrrp sends no e-mail alerts, so these are "
              "accepted and ignored")


def test_article_two_node_check_text_gives_one_info_line_for_the_email_settings():
    # Issue 18 point 9: five warnings on every start and reload of the article's own config
    # taught operators to skip warnings; the e-mail settings change nothing VRRP does.
    path = ARTICLE / "two-node-master.conf"
    result = hivrrp("check", "-f", str(path))
    assert result.returncode == 0
    lines = result.stderr.splitlines()
    assert f"{path}:3: info: {EMAIL_INFO}" in lines
    assert [line for line in lines if " is not acted on yet: " in line] == []
    # Besides it, only the host-dependent "interface ens160 does not exist" may show.
    warnings = [line for line in lines if ": warning: " in line]
    assert all("does not exist on this host" in line for line in warnings)
    assert len(lines) == 1 + len(warnings)
    assert result.stdout.startswith(f"{path}: OK, {len(warnings)} warning")


def test_article_two_node_check_json():
    path = ARTICLE / "two-node-master.conf"
    report = json.loads(hivrrp("check", "--json", "-f", str(path)).stdout)
    assert report["info"] == [{"file": str(path), "line": 3, "message": EMAIL_INFO}]
    assert [w for w in report["warnings"] if " is not acted on yet: " in w["message"]] == []


def test_run_logs_the_info_line_before_refusing_a_bad_config(tmp_path):
    # An error keeps `run` from starting a daemon; what was found is logged first all the same,
    # the e-mail settings as one line at INFO, not as five warnings.
    path = write(tmp_path, "k.conf", (ARTICLE / "two-node-master.conf").read_text()
                 + "frobnicate\n")
    result = hivrrp("run", "-f", str(path))
    assert result.returncode == 1
    assert f"INFO hivrrp: {path}:3: info: {EMAIL_INFO}" in result.stderr
    assert f"ERROR hivrrp: {path}:26: error: unknown keyword 'frobnicate'" in result.stderr
    assert result.stderr.count(": info: ") == 1
    assert " is not acted on yet: " not in result.stderr


# Small configs around one keyword; the numbers below are the keyword's line in them.
def glob(line: str) -> str:
    return f"global_defs {{\n    {line}\n}}\n"


def inst(line: str = "priority 100") -> str:
    return ("vrrp_instance VI_1 {\n    interface eth0\n    virtual_router_id 1\n"
            f"    virtual_ipaddress {{\n        192.0.2.1\n    }}\n    {line}\n}}\n")


def sync(line: str = "") -> str:
    return f"vrrp_sync_group G {{\n    group {{\n        VI_1\n    }}\n    {line}\n}}\n" + inst()


SAMPLES = {
    # keyword: (config text, line(s) of the keyword)
    "vrrp_check_unicast_src": (glob("vrrp_check_unicast_src"), 2),
    "vrrp_skip_check_adv_addr": (glob("vrrp_skip_check_adv_addr"), 2),
    "vrrp_startup_delay": (glob("vrrp_startup_delay 5"), 2),
    "dynamic_interfaces": (glob("dynamic_interfaces"), 2),
    "log_unknown_vrids": (glob("log_unknown_vrids"), 2),
    "unicast_ttl": (inst("unicast_ttl 10"), 7),
    "min_ttl": (inst("unicast_peer {\n 192.0.2.9 min_ttl 250\n }"), 8),
    "max_ttl": (inst("unicast_peer {\n 192.0.2.9 max_ttl 255\n }"), 8),
    "check_unicast_src": (inst("check_unicast_src"), 7),
    "skip_check_adv_addr": (inst("skip_check_adv_addr"), 7),
}

# Keywords the daemon acts on now (tracking, notify scripts and FIFOs, script
# security, sync groups): they were in the table and must not warn again.
SCRIPT = 'vrrp_script chk {\n    script "/bin/true"\n}\n'
PROCESS = "vrrp_track_process proc {\n    process httpd\n}\n"
FILE = "track_file f {\n    file /run/f\n}\n"
ACTED_ON = {
    "script_user": glob("script_user nobody"),
    "enable_script_security": glob("enable_script_security"),
    "notify_fifo": glob("notify_fifo /run/k.fifo"),
    "notify_fifo_script": glob("notify_fifo /run/k.fifo\n    notify_fifo_script /bin/true"),
    "vrrp_notify_fifo": glob("vrrp_notify_fifo /run/v.fifo"),
    "vrrp_notify_fifo_script": glob("vrrp_notify_fifo /run/v.fifo\n"
                                    "    vrrp_notify_fifo_script /bin/true"),
    "vrrp_notify_priority_changes": glob("vrrp_notify_priority_changes"),
    "vrrp_owner_ignore_adverts": glob("vrrp_owner_ignore_adverts"),
    "vrrp_strict": glob("vrrp_strict"),
    "strict_mode": inst("strict_mode"),
    "owner_ignore_adverts": inst("priority 255\n    owner_ignore_adverts"),
    "track_interface": inst("track_interface {\n eth1\n }"),
    "track_script": SCRIPT + inst("track_script {\n chk\n }"),
    "track_process": PROCESS + inst("track_process {\n proc\n }"),
    "track_file": FILE + inst("track_file {\n f\n }"),
    "vrrp_track_file": "vrrp_" + FILE + inst("track_file {\n f\n }"),
    "notify": inst("notify /bin/true"),
    "notify_master": inst("notify_master /bin/true"),
    "notify_backup": inst("notify_backup /bin/true"),
    "notify_fault": inst("notify_fault /bin/true"),
    "notify_stop": inst("notify_stop /bin/true"),
    "notify_deleted": inst("notify_deleted /bin/true"),
    "notify_master_rx_lower_pri": inst("notify_master_rx_lower_pri /bin/true"),
    "notify_priority_changes": inst("notify_priority_changes"),
    "vrrp_sync_group": sync("notify_master /bin/true\n    track_interface {\n eth1\n }"),
    "sync_group_tracking_weight": sync("sync_group_tracking_weight"),
    "use_vmac": inst("use_vmac"),
    "vmac_xmit_base": inst("use_vmac\n    vmac_xmit_base"),
    "vmac_prefix": glob("vmac_prefix vx") + inst("use_vmac"),
    "disable_local_igmp": glob("disable_local_igmp") + inst("use_vmac"),
    # The no_accept firewall (kernel/firewall.py).
    "accept": inst("accept"),
    "no_accept": inst("no_accept"),
    "nftables": glob("nftables"),
    "nftables_priority": glob("nftables_priority -5"),
    "nftables_counters": glob("nftables_counters"),
    "nftables_ifindex": glob("nftables_ifindex"),
}


def test_every_table_entry_has_a_sample():
    # Removing an entry (the keyword got implemented) means moving its sample to ACTED_ON.
    assert set(SAMPLES) == set(keywords.NOT_ACTED_ON)
    assert not set(ACTED_ON) & set(keywords.NOT_ACTED_ON)


@pytest.mark.parametrize("keyword", sorted(SAMPLES))
def test_each_keyword_warns_once_per_occurrence_with_its_consequence(tmp_path, keyword):
    text, lines = SAMPLES[keyword]
    result = load_text(tmp_path, text)
    assert result.ok, result.errors
    found = [d for d in result.warnings if d.message.startswith(f"{keyword} is not acted on yet")]
    message = f"{keyword} is not acted on yet: {keywords.NOT_ACTED_ON[keyword]}"
    assert [(d.where.line, d.message) for d in found] == [
        (line, message) for line in (lines if isinstance(lines, tuple) else (lines,))]
    assert all(d.key == keyword for d in found)


@pytest.mark.parametrize("keyword", sorted(ACTED_ON))
def test_keywords_the_daemon_acts_on_do_not_warn(tmp_path, keyword):
    result = load_text(tmp_path, ACTED_ON[keyword])
    assert result.ok, result.errors
    assert not_acted_on(result.warnings) == []
    # Besides a sync group of one, nothing to say about these samples.
    assert [d.message for d in result.warnings
            if "has only one member" not in d.message
            and "vrrp_track_file is deprecated" not in d.message] == []


def test_email_keywords_anywhere_make_one_info_line_and_no_warning(tmp_path):
    # smtp_alert is taken by global_defs, vrrp_sync_group and vrrp_instance alike.
    text = glob("router_id lb1\n    smtp_alert") + sync("smtp_alert\n    notify_master /x\n"
                                                         "    track_interface {\n eth1\n }")
    result = load_text(tmp_path, text.replace("priority 100", "smtp_alert"))
    assert result.ok, result.errors
    assert [d.message for d in result.warnings if "smtp" in d.message or "router" in d.message] \
        == []
    [info] = result.infos
    assert (info.where.line, info.severity) == (2, "info")
    assert info.message.startswith("router_id, smtp_alert: no effect on VRRP; ")


def test_no_email_keyword_no_info_line(tmp_path):
    assert load_text(tmp_path, inst()).infos == []


def test_unsupported_keywords_keep_their_own_warnings(tmp_path):
    result = load_text(tmp_path, glob("lvs_flush") + inst(
        "track_bfd {\n b\n }"))
    assert not_acted_on(result.warnings) == []
    assert [d.message.split(" ")[0] for d in result.warnings] == ["'lvs_flush'",
                                                                  "'track_bfd'"]


def test_acted_on_keywords_do_not_warn(tmp_path):
    result = load_text(tmp_path, glob("vrrp_garp_master_delay 1\n vrrp_version 3\n"
                                               " vrrp_lower_prio_no_advert")
                       + inst("priority 150\n    garp_master_repeat 2\n"
                                         "    preempt_delay 5\n    unicast_src_ip 192.0.2.2\n"
                                         "    unicast_peer {\n 192.0.2.9\n }"))
    assert result.ok and result.warnings == []


def test_check_summarises_thousands_of_repeats_but_counts_them_all(tmp_path):
    path = write(tmp_path, "k.conf", glob("vrrp_startup_delay 5") + """\
        $VI= \\
        vrrp_instance vi_${N} { \\
            interface eth0 \\
            virtual_router_id ${N} \\
            virtual_ipaddress { \\
                192.0.2.${N} \\
            } \\
            check_unicast_src \\
        }
        ~SEQ(N, 1, 200) $VI
        """.replace("        ", ""))
    result = hivrrp("check", "-f", str(path))
    assert result.returncode == 0, result.stderr
    # A host without eth0 adds one warning that it is missing.
    lines = [line for line in result.stderr.splitlines()
             if "does not exist on this host" not in line]
    host = len(result.stderr.splitlines()) - len(lines)
    repeated = [line for line in lines if "check_unicast_src is not acted on yet" in line]
    assert len(repeated) == REPEATS_SHOWN
    assert (f"{path}:11: warning: ... and {200 - len(repeated)} more check_unicast_src "
            "warnings like these (hivrrp check --json lists every one)") in lines
    # A keyword seen once is shown once, not condensed.
    assert lines.count(f"{path}:2: warning: vrrp_startup_delay is not acted on yet: "
                       f"{keywords.NOT_ACTED_ON['vrrp_startup_delay']}") == 1
    assert len(lines) == 1 + REPEATS_SHOWN + 1
    assert result.stdout.startswith(f"{path}: OK, {201 + host} warnings\n")
    report = json.loads(hivrrp("check", "--json", "-f", str(path)).stdout)
    assert len(report["warnings"]) == 201 + host
    assert sum("check_unicast_src is not acted on yet" in w["message"]
               for w in report["warnings"]) == 200
