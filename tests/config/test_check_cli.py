"""`hivrrp check` (and keepalived's spelling `hivrrp -t -f FILE`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.conf import write

CONF = Path(__file__).resolve().parents[2] / "conf"
ARTICLE = sorted((CONF / "article").glob("*.conf"))


def hivrrp(*args):
    return subprocess.run([sys.executable, "-m", "hivrrp", *args], capture_output=True,
                          text=True, timeout=120)


def check_json(path, *extra):
    result = hivrrp("check", "--json", "-f", str(path), *extra)
    return result.returncode, json.loads(result.stdout)


def test_the_article_configs_are_all_there():
    assert {p.stem for p in ARTICLE} == {"two-node-master", "two-node-backup", "track-process",
                                         "track-file", "track-interface", "track-script",
                                         "notify"}


# The article's scripts, which this host does not have: keepalived -t fails track-script.conf
# for it (exit 5, "Disabling track script keepalived_check since not found/accessible"), and
# hivrrp check fails both (the daemon would never run them).
ARTICLE_SCRIPTS = {
    "notify": (16, "notify: /usr/local/bin/keepalived_notify.sh not found; it would never run"),
    "track-script": (3, "vrrp_script keepalived_check: /usr/local/bin/keepalived_check.sh not "
                        "found; it would be disabled and the instances tracking it would "
                        "ignore it"),
}


@pytest.mark.parametrize("path", ARTICLE, ids=lambda p: p.stem)
def test_article_configs_load_as_written(path):
    code, report = check_json(path)
    script = ARTICLE_SCRIPTS.get(path.stem)
    if script is not None and not os.path.exists(script[1].split(" not found")[0].split()[-1]):
        assert code == 1 and [(e["line"], e["message"]) for e in report["errors"]] == [script]
    else:
        assert code == 0 and report["errors"] == []
    [instance] = report["instances"]
    assert (instance["name"], instance["vrid"], instance["family"], instance["version"]) == (
        "VI_1", 51, "ipv4", 2)
    assert instance["vips"] == ["192.0.2.26/24"] and instance["advert_int"] == 1
    expected_priority = {"two-node-master": 255, "two-node-backup": 254, "notify": 255}
    assert instance["priority"] == expected_priority.get(path.stem, 244)
    assert instance["state"] == ("BACKUP" if path.stem == "two-node-backup" else "MASTER")
    # The daemon acts on the articles' tracking and notify keywords. The e-mail settings
    # of the two-node configs have no effect on VRRP: one info line, no warning. Besides,
    # only interfaces this test machine lacks, or the deprecated vrrp_track_file.
    assert [(i["line"], i["message"]) for i in report["info"]] == (
        [(3, EMAIL_INFO)] if path.stem.startswith("two-node") else [])
    for warning in report["warnings"]:
        assert "does not exist on this host" in warning["message"] or \
            "vrrp_track_file is deprecated" in warning["message"]
    assert ("vrrp_track_file is deprecated" in str(report["warnings"])) == (
        path.stem == "track-file")


EMAIL_INFO = ("notification_email, notification_email_from, smtp_server, smtp_connect_timeout, "
              "router_id: no effect on VRRP; hivrrp sends no e-mail alerts, so these are "
              "accepted and ignored")


def test_article_trackers_have_the_articles_weights():
    tracks = {p.stem: check_json(p)[1]["instances"][0]["tracks"] for p in ARTICLE}
    assert tracks["track-process"] == [{"type": "process", "name": "track_httpd", "weight": 10,
                                        "reverse": False}]
    assert tracks["track-file"] == [{"type": "file", "name": "track_app_file", "weight": 1,
                                     "reverse": False}]
    assert tracks["track-interface"] == [{"type": "interface", "name": "ens160", "weight": 5,
                                          "reverse": False}]
    assert tracks["track-script"] == [{"type": "script", "name": "keepalived_check",
                                       "weight": 0, "reverse": False}]


def test_large_generated_example():
    code, report = check_json(CONF / "large-4000.conf", "--config-id", "lb1")
    assert code == 0
    instances = report["instances"]
    assert len(instances) == 4000
    assert {i["priority"] for i in instances} == {200}
    assert len({i["interface"] for i in instances}) == 16
    assert len({(i["interface"], i["vrid"]) for i in instances}) == 4000
    _, other = check_json(CONF / "large-4000.conf", "-i", "lb2")
    assert {i["priority"] for i in other["instances"]} == {100}


def test_text_output_and_exit_codes(tmp_path):
    bad = write(tmp_path, "bad.conf", """\
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 51
            priority 300
            virtual_ipaddress {
                192.0.2.1
            }
        }
        """)
    result = hivrrp("check", "-f", str(bad))
    assert result.returncode == 1
    assert f"{bad}:4: error: priority: 300 is out of range 1..255" in result.stderr
    assert "FAILED: 1 error" in result.stdout and "Traceback" not in result.stderr
    good = write(tmp_path, "good.conf", bad.read_text().replace("300", "100"))
    result = hivrrp("check", "-t", str(good))
    assert result.returncode == 0 and "OK" in result.stdout
    assert "1 instance on 1 interface" in result.stdout
    keepalived_style = hivrrp("-t", "-f", str(good))
    assert keepalived_style.returncode == 0 and keepalived_style.stdout == result.stdout


def test_json_errors_and_warnings_have_file_and_line(tmp_path):
    path = write(tmp_path, "k.conf", """\
        global_defs {
            lvs_flush
        }
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 0
        }
        """)
    code, report = check_json(path)
    assert code == 1
    assert report["errors"] == [{"file": str(path), "line": 6,
                                 "message": "virtual_router_id: 0 is out of range 1..255"}]
    assert report["warnings"][0]["line"] == 2 and "lvs_flush" in report["warnings"][0]["message"]
    assert report["instances"] == []


def test_missing_file():
    result = hivrrp("check", "-f", "/nonexistent/keepalived.conf")
    assert result.returncode == 1
    assert "/nonexistent/keepalived.conf:0: error: cannot read" in result.stderr


# ------------------------------------------------------------ tracker summary

TRACKED = """\
    vrrp_script chk_http {
        script "/bin/true"
    }
    vrrp_script chk_db {
        script "/bin/true"
        weight 20 reverse
    }
    vrrp_track_process nginx {
        process nginx
        weight -10
    }
    track_file health {
        file /run/health
        weight -1
    }
    vrrp_sync_group G {
        group {
            VI_4 VI_5
        }
        track_interface {
            eth2 weight -20
        }
    }
    vrrp_instance VI_1 {
        interface eth0
        virtual_router_id 1
        priority 244
        virtual_ipaddress {
            192.0.2.1
        }
        track_process {
            nginx
        }
        track_file {
            health
        }
        track_interface {
            eth1
        }
        track_script {
            chk_http
        }
    }
    vrrp_instance VI_2 {
        interface eth0
        virtual_router_id 2
        virtual_ipaddress {
            192.0.2.2
        }
        track_script {
            chk_db
        }
        track_interface {
            eth3 reverse
        }
    }
    vrrp_instance VI_3 {
        interface eth0
        virtual_router_id 3
        virtual_ipaddress {
            192.0.2.3
        }
    }
    vrrp_instance VI_4 {
        interface eth0
        virtual_router_id 4
        priority 150
        virtual_ipaddress {
            192.0.2.4
        }
    }
    vrrp_instance VI_5 {
        interface eth0
        virtual_router_id 5
        priority 150
        virtual_ipaddress {
            192.0.2.5
        }
    }
    """


def tracker_lines(stdout: str) -> list[str]:
    # The summary's first three lines are the verdict and the counts.
    return stdout.splitlines()[3:]


def test_check_summarises_trackers_per_instance(tmp_path):
    path = write(tmp_path, "k.conf", TRACKED)
    result = hivrrp("check", "-f", str(path))
    assert result.returncode == 0, result.stderr
    # Interfaces count as trackers too (eth1 and eth3 of instances, eth2 of the group).
    assert ("7 trackers (scripts 2, processes 1, files 1, interfaces 3)"
            in result.stdout.splitlines()[2])
    assert tracker_lines(result.stdout) == [
        # Clamped to 1..254: the file alone can add -253..253.
        ("  VI_1 (priority 244): process nginx weight -10, file health weight -1, "
         "interface eth1 -> FAULT when down, script chk_http -> FAULT when failing; "
         "priority 1..254 possible (-19..497 before clamping)"),
        # reverse: the weight applies while the script succeeds, the fault while eth3 is up.
        ("  VI_2 (priority 100): script chk_db weight 20 reverse, interface eth3 -> FAULT when up;"
         " priority 80..100 possible"),
        # VI_3 tracks nothing. The group's weighted interface faults its members instead
        # (no sync_group_tracking_weight).
        ("  VI_4, VI_5 (2 instances, priority 150): interface eth2 -> FAULT when down; "
         "priority stays 150"),
    ]


def test_check_json_has_each_instances_trackers(tmp_path):
    path = write(tmp_path, "k.conf", TRACKED)
    code, report = check_json(path)
    assert code == 0
    tracking = {i["name"]: i["tracking"] for i in report["instances"]}
    assert tracking["VI_1"] == {
        "priority": 244, "owner": False,
        "trackers": [
            {"type": "process", "name": "nginx", "weight": -10, "reverse": False,
             "effect": "weight"},
            {"type": "file", "name": "health", "weight": -1, "reverse": False, "effect": "weight"},
            {"type": "interface", "name": "eth1", "weight": 0, "reverse": False,
             "effect": "fault"},
            {"type": "script", "name": "chk_http", "weight": 0, "reverse": False,
             "effect": "fault"},
        ],
        "priority_range": [1, 254], "unclamped_range": [-19, 497],
        "summary": "process nginx weight -10, file health weight -1, interface eth1 -> FAULT "
                   "when down, script chk_http -> FAULT when failing; priority 1..254 possible "
                   "(-19..497 before clamping)",
    }
    assert tracking["VI_2"]["priority_range"] == tracking["VI_2"]["unclamped_range"] == [80, 100]
    assert tracking["VI_3"] is None
    # Members carry their sync group's trackers, as the daemon applies them.
    for member in ("VI_4", "VI_5"):
        assert tracking[member]["trackers"] == [{"type": "interface", "name": "eth2", "weight": 0,
                                                 "reverse": False, "effect": "fault"}]
        assert tracking[member]["priority_range"] == [150, 150]


def test_check_sync_group_tracking_weight_moves_the_members(tmp_path):
    text = TRACKED.replace("        track_interface {\n            eth2 weight -20",
                           "        sync_group_tracking_weight\n"
                           "        track_interface {\n            eth2 weight -20")
    assert text != TRACKED
    path = write(tmp_path, "k.conf", text)
    result = hivrrp("check", "-f", str(path))
    assert result.returncode == 0, result.stderr
    assert tracker_lines(result.stdout)[2] == (
        "  VI_4, VI_5 (2 instances, priority 150): interface eth2 weight -20; "
        "priority 130..150 possible")


def test_check_owner_trackers_cannot_change_its_priority(tmp_path):
    path = write(tmp_path, "k.conf", """\
        vrrp_script chk {
            script "/bin/true"
        }
        vrrp_script heavy {
            script "/bin/true"
            weight -50
        }
        vrrp_instance VI_1 {
            state MASTER
            interface eth0
            virtual_router_id 1
            virtual_ipaddress {
                192.0.2.1
            }
            track_script {
                chk
                heavy
            }
        }
        """)
    result = hivrrp("check", "-f", str(path))
    assert result.returncode == 0, result.stderr
    # The weighted script is dropped (keepalived's rule for the address owner).
    assert (f"{path}:17: warning: (VI_1) ignoring tracked script heavy with weight -50 due to "
            "address owner") in result.stderr.splitlines()
    assert tracker_lines(result.stdout) == [
        ("  VI_1 (priority 255): script chk -> FAULT when failing; "
         "priority 255, trackers cannot change it")]
    _, report = check_json(path)
    [instance] = report["instances"]
    assert instance["tracking"]["owner"] is True
    assert instance["tracking"]["priority_range"] == instance["tracking"]["unclamped_range"] == [
        255, 255]
    assert [t["name"] for t in instance["tracking"]["trackers"]] == ["chk"]


def test_check_groups_thousands_of_instances_with_the_same_trackers(tmp_path):
    path = write(tmp_path, "k.conf", """\
        vrrp_script chk {
            script "/bin/true"
            weight -10
        }
        $VI= \\
        vrrp_instance vlan${IF}_vrid${ID} { \\
            interface eth0 \\
            virtual_router_id ${ID} \\
            @lb1 priority 100 \\
            @^lb1 priority 90 \\
            mcast_dst_ip 224.0.0.${IF} \\
            virtual_ipaddress { \\
                10.${IF}.${ID}.1/24 \\
            } \\
            track_script { \\
                chk \\
            } \\
        }
        ~SEQ(IF, 1, 16) ~SEQ(ID, 1, 250) $VI
        vrrp_instance untracked {
            interface eth0
            virtual_router_id 251
            virtual_ipaddress {
                192.0.2.1
            }
        }
        """)
    result = hivrrp("check", "-f", str(path), "-i", "lb1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1].startswith("  4001 instances on 1 interface")
    assert tracker_lines(result.stdout) == [
        ("  vlan1_vrid1 .. vlan16_vrid250 (4000 instances, priority 100): script chk "
         "weight -10; priority 90..100 possible")]
    code, report = check_json(path, "-i", "lb2")
    assert code == 0
    tracking = [i["tracking"] for i in report["instances"]]
    assert len(tracking) == 4001 and tracking[-1] is None
    assert all(t["priority_range"] == [80, 90] and t["trackers"] == [
        {"type": "script", "name": "chk", "weight": -10, "reverse": False, "effect": "weight"}]
        for t in tracking[:-1])


def test_check_caps_the_tracker_lines_and_says_how_many_are_left(tmp_path):
    # 30 instances, each with its own base priority: 30 different lines, 20 printed.
    path = write(tmp_path, "k.conf", """\
        vrrp_script chk {
            script "/bin/true"
            weight 10
        }
        $VI= \\
        vrrp_instance vi_${N} { \\
            interface eth0 \\
            virtual_router_id ${N} \\
            priority ${N} \\
            virtual_ipaddress { \\
                192.0.2.${N} \\
            } \\
            track_script { \\
                chk \\
            } \\
        }
        ~SEQ(N, 1, 30) $VI
        """)
    result = hivrrp("check", "-f", str(path))
    assert result.returncode == 0, result.stderr
    lines = tracker_lines(result.stdout)
    assert len(lines) == 20
    assert lines[0] == "  vi_1 (priority 1): script chk weight 10; priority 1..11 possible"
    assert lines[18] == "  vi_19 (priority 19): script chk weight 10; priority 19..29 possible"
    assert lines[19] == ("  ... 11 more tracker lines for 11 instances "
                         "(hivrrp check --json lists every one)")
    _, report = check_json(path)
    assert [i["tracking"]["priority_range"] for i in report["instances"]] == [
        [n, n + 10] for n in range(1, 31)]


def test_check_condenses_a_missing_script_repeated_by_thousands_of_instances(tmp_path):
    # One macro line, 300 instances: 300 errors counted, REPEATS_SHOWN printed, then one line.
    path = write(tmp_path, "k.conf", """\
        $VI= \\
        vrrp_instance vi_${N} { \\
            interface eth0 \\
            virtual_router_id ${N} \\
            virtual_ipaddress { \\
                10.0.${N}.1 \\
            } \\
            notify_master "/nonexistent/hivrrp-notify.sh ${N}" \\
        }
        ~SEQ(N, 1, 250) $VI
        """)
    result = hivrrp("check", "-f", str(path))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if ": error: " in line]
    message = "notify_master: /nonexistent/hivrrp-notify.sh not found; it would never run"
    # Line 8 of the macro, each with its expansion ("N=1; $VI expanded at k.conf:10").
    assert [e.split(" (N=")[0] for e in errors[:5]] == [f"{path}:8: error: {message}"] * 5
    assert errors[5:] == [f"{path}:8: error: ... and 245 more notify_master errors like these "
                          "(hivrrp check --json lists every one)"]
    assert "FAILED: 250 errors" in result.stdout
    _, report = check_json(path)
    assert len(report["errors"]) == 250
