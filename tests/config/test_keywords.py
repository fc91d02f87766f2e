"""Keywords, their values and keepalived's defaults."""

import pytest

from helpers.conf import load_text, messages, one_instance
from hivrrp.tracking.policy import Tracking, uses_of


def not_acted_on(result) -> list[str]:
    return [d.message.split(" ", 1)[0] for d in result.warnings
            if " is not acted on yet: " in d.message]


def test_defaults_of_a_minimal_instance(tmp_path):
    result, inst = one_instance(tmp_path)
    assert result.ok and not result.warnings
    assert (inst.priority, inst.state, inst.version, inst.family) == (100, None, 2, 4)
    assert (inst.advert_int, inst.nopreempt, inst.preempt_delay) == (1.0, False, 0.0)
    assert inst.as_dict()["state"] == "BACKUP"
    g = result.config.global_defs
    assert (str(g.mcast_group4), str(g.mcast_group6)) == ("224.0.0.18", "ff02::12")
    assert (g.garp_master_delay, g.garp_master_repeat, g.down_timer_adverts) == (5.0, 5, 3)


def test_state_master_without_priority_is_the_owner(tmp_path):
    _, inst = one_instance(tmp_path, "state MASTER\n")
    assert inst.priority == 255
    _, inst = one_instance(tmp_path, "state MASTER\npriority 150\n")
    assert inst.priority == 150


@pytest.mark.parametrize("version, written, used, said", [
    (2, "1", 1.0, None), (2, "3", 3.0, None),
    (2, "0.5", 1.0, "VRRPv2 advertisement interval 0.500000s must be an integer. rounding"),
    (2, "2.6", 3.0, "VRRPv2 advertisement interval 2.600000s must be an integer. rounding"),
    # keepalived rounds half up, where Python's round() would give 2.
    (2, "2.5", 3.0, "VRRPv2 advertisement interval 2.500000s must be an integer. rounding"),
    (3, "0.1", 0.1, None),
    (3, "0.015", 0.02, "VRRPv3 advertisement interval 0.015000s must be in units of 10ms - "
                       "rounding"),
    (3, "40.95", 40.95, None), (3, "1", 1.0, None),
    (3, "41", 40.95, "VRRPv3 advertisement interval 41.00s is out of range. Must be less than "
                     "40.96s. Setting to 40.95s"),
    (3, "40.955", 40.95, "VRRPv3 advertisement interval 40.955000s must be in units of 10ms - "
                         "rounding"),
])
def test_advert_int_rounding_per_version(tmp_path, version, written, used, said):
    # keepalived 2.2.7's corrections: config errors (-t exits 5) that it runs with.
    result, inst = one_instance(tmp_path, f"version {version}\nadvert_int {written}\n")
    assert inst.advert_int == used
    assert [(d.where.line, d.message) for d in result.errors] == (
        [(9, f"(VI_1) {said}")] if said else [])
    assert result.ok and result.warnings == []


@pytest.mark.parametrize("version, written", [(2, "256"), (3, "0.001"), (2, "0.009")])
def test_advert_int_out_of_range(tmp_path, version, written):
    result, _ = one_instance(tmp_path, f"version {version}\nadvert_int {written}\n")
    assert not result.ok


def test_global_version_and_ipv6_forces_v3(tmp_path):
    result, inst = one_instance(tmp_path, prefix="global_defs {\n vrrp_version 3\n}\n")
    assert inst.version == 3
    result = load_text(tmp_path, """
        vrrp_instance V6 {
            interface eth0
            virtual_router_id 9
            version 2
            virtual_ipaddress {
                fe80::9/64
                fd00::9/64 dev eth0
            }
        }
    """)
    [inst] = result.config.instances
    assert (inst.family, inst.version) == (6, 3)
    assert result.ok and [(d.where.line, d.message) for d in result.warnings] == [
        (5, "vrrp_instance V6: VRRPv2 is IPv4 only; hivrrp runs this IPv6 instance as VRRPv3 "
            "(keepalived 2.2.7 outside strict mode sends VRRPv2 over IPv6 when `version 2` "
            "comes before the VIPs)")]


def test_ipv6_takes_version_3_over_the_global_version_2_without_a_word(tmp_path):
    # keepalived 2.2.7: an IPv6 instance that does not say `version` is VRRPv3, silently.
    result = load_text(tmp_path, "global_defs {\n    vrrp_version 2\n}\n"
                                 "vrrp_instance V6 {\n    interface eth0\n"
                                 "    virtual_router_id 9\n    virtual_ipaddress {\n"
                                 "        fe80::9/64\n    }\n}\n")
    [inst] = result.config.instances
    assert (inst.family, inst.version) == (6, 3)
    assert result.clean and result.warnings == []


def test_authentication(tmp_path):
    result, inst = one_instance(tmp_path, """
        authentication {
            auth_type PASS
            auth_pass 1234
        }
    """)
    assert (inst.auth_type, inst.auth_pass) == ("PASS", "1234") and result.ok
    result, inst = one_instance(tmp_path, "authentication {\nauth_type PASS\n"
                                          "auth_pass longer_than_8\n}\n")
    assert inst.auth_pass == "longer_t" and result.warnings
    result, _ = one_instance(tmp_path, "version 3\nauthentication {\nauth_type PASS\n"
                                       "auth_pass x\n}\n")
    # keepalived runs it without authentication: an error `check` fails, the daemon runs.
    assert [(e.message, e.fatal) for e in result.errors] == [
        ("(VI_1) VRRP version 3 does not support authentication. Ignoring.", False)]
    result, _ = one_instance(tmp_path, "authentication {\nauth_type AH\nauth_pass x\n}\n")
    assert "AH" in result.errors[0].message and not result.ok


def test_vips_with_options_and_excluded(tmp_path):
    result, inst = one_instance(tmp_path, """
        virtual_ipaddress {
            192.0.2.27
            192.0.2.28/25 brd + dev eth0 scope global label eth0:vip
            192.0.2.29/24 peer 192.0.2.30 no_track home noprefixroute
        }
        virtual_ipaddress_excluded {
            fd00::1/64 -nodad preferred_lft 0
            198.51.100.1/24
        }
    """)
    assert result.ok, result.errors
    assert [v.text for v in inst.vips] == ["192.0.2.26/24", "192.0.2.27", "192.0.2.28/25",
                                           "192.0.2.29/24"]
    assert (inst.vips[1].address, inst.vips[1].prefixlen) == ("192.0.2.27", 32)
    assert inst.vips[2].options == {"brd": "+", "dev": "eth0", "scope": "global",
                                    "label": "eth0:vip"}
    assert inst.vips[3].options == {"peer": "192.0.2.30", "no_track": True, "home": True,
                                    "noprefixroute": True}
    assert [v.family for v in inst.excluded_vips] == [6, 4]  # mixing is fine here
    assert inst.excluded_vips[0].options == {"nodad": True, "preferred_lft": "0"}


@pytest.mark.parametrize("block, line, message", [
    ("virtual_ipaddress", "192.0.2.300/24", "is not an IP address"),
    ("virtual_ipaddress", "192.0.2.1/33", "is not an IP address"),
    ("virtual_ipaddress", "192.0.2", "is not an IP address"),
    ("virtual_ipaddress", "fd00::1/64", "must be of one family"),
    ("virtual_ipaddress", "192.0.2.1 scope galaxy", "scope 'galaxy'"),
    ("virtual_ipaddress", "192.0.2.1 label", "'label' needs a value"),
    ("virtual_ipaddress", "192.0.2.1 frobnicate", "unknown address option 'frobnicate'"),
    ("virtual_rules", "from 192.0.2.300 table 100", "rules: '192.0.2.300' is not a prefix"),
    ("virtual_rules", "from 192.0.2.0/24", "rules: a rule needs a table"),
    ("virtual_rules", "from 192.0.2.0/24 table blue", "rules: unknown table 'blue'"),
    ("virtual_rules", "from 192.0.2.0/24 table 7 fwmark 0xZZ", "rules: '0xZZ' is not a number"),
    ("virtual_rules", "from 192.0.2.0/24 table 7 ipproto gopher", "'gopher' is not a number"),
    ("virtual_rules", "from 192.0.2.0/24 table 7 via 192.0.2.1", "rules: unexpected 'via'"),
])
def test_bad_lines_in_blocks(tmp_path, block, line, message):
    result, _ = one_instance(tmp_path, f"{block} {{\n{line}\n}}\n")
    [error] = result.errors
    assert message in error.message


def test_routes_rules_and_unicast(tmp_path):
    result, inst = one_instance(tmp_path, """
        virtual_routes {
            src 192.0.2.26 to 198.51.100.0/24 via 192.0.2.1 dev eth0 table 100
            203.0.113.0/24 dev eth0 scope link
            blackhole 10.9.0.0/16
            default via 192.0.2.254 metric 5 no_track
        }
        virtual_rules {
            from 192.0.2.26 table 100 priority 50
            to 198.51.100.0/24 lookup main no_track
        }
        unicast_src_ip 192.0.2.10
        unicast_peer {
            192.0.2.11
            192.0.2.12 min_ttl 250 max_ttl 255
        }
        unicast_ttl 10
    """)
    assert result.ok, result.errors
    assert [r.destination for r in inst.routes] == ["198.51.100.0/24", "203.0.113.0/24",
                                                    "10.9.0.0/16", "default"]
    assert inst.routes[0].options["via"] == "192.0.2.1"
    assert inst.routes[2].options["type"] == "blackhole"
    assert inst.rules[0].options == {"from": "192.0.2.26", "table": "100", "priority": "50"}
    assert [str(p.address) for p in inst.unicast_peers] == ["192.0.2.11", "192.0.2.12"]
    assert (inst.unicast_peers[1].min_ttl, inst.unicast_peers[1].max_ttl) == (250, 255)
    assert (str(inst.unicast_src_ip), inst.unicast_ttl) == ("192.0.2.10", 10)
    assert inst.as_dict()["unicast_peers"] == ["192.0.2.11", "192.0.2.12"]
    assert not_acted_on(result) == ["min_ttl", "max_ttl", "unicast_ttl"]


def test_unicast_peer_of_the_wrong_family(tmp_path):
    result, _ = one_instance(tmp_path, "unicast_peer {\nfd00::2\n}\n")
    assert "unicast_peer fd00::2 is not IPv4" in result.errors[0].message


def test_preemption_keywords(tmp_path):
    _, inst = one_instance(tmp_path, "state BACKUP\nnopreempt\n")
    assert inst.nopreempt
    result, inst = one_instance(tmp_path, "state MASTER\npriority 100\nnopreempt\n")
    assert not inst.nopreempt and result.ok
    assert [d.message for d in result.errors] == [
        "(VI_1) Warning - nopreempt will not work with initial state MASTER - clearing"]
    _, inst = one_instance(tmp_path, "preempt_delay 5.5\npreempt\n")
    assert inst.preempt_delay == 5.5
    result, _ = one_instance(tmp_path, "preempt_delay 1001\n")
    assert "out of range 0..1000" in result.errors[0].message


def test_garp_and_protocol_options(tmp_path):
    result, inst = one_instance(tmp_path, """
        garp_master_delay 2
        garp_master_repeat 3
        garp_master_refresh 60
        garp_master_refresh_repeat 2
        garp_lower_prio_delay 1
        garp_lower_prio_repeat 1
        down_timer_adverts 5
        lower_prio_no_advert
        higher_prio_send_advert true
        skip_check_adv_addr off
        dont_track_primary
        accept
        debug 2
        notify_priority_changes yes
        smtp_alert no
        mcast_src_ip 192.0.2.10
        mcast_dst_ip 224.0.0.100
        check_unicast_src
    """)
    assert result.ok, result.errors
    assert inst.garp == {"master_delay": 2.0, "master_repeat": 3, "master_refresh": 60.0,
                         "master_refresh_repeat": 2, "lower_prio_delay": 1.0,
                         "lower_prio_repeat": 1}
    assert (inst.down_timer_adverts, inst.lower_prio_no_advert, inst.higher_prio_send_advert,
            inst.skip_check_adv_addr, inst.dont_track_primary, inst.accept) == (
        5, True, True, False, True, True)
    assert (inst.notify_priority_changes, inst.smtp_alert) == (True, False)
    assert str(inst.mcast_dst_ip) == "224.0.0.100"
    assert not_acted_on(result) == ["skip_check_adv_addr", "check_unicast_src"]
    assert len(result.warnings) == 2
    # smtp_alert has no effect on VRRP: the info line, not a warning.
    assert [d.message.split(":")[0] for d in result.infos] == ["smtp_alert"]


def test_trackers_weights_and_defaults(tmp_path):
    result = load_text(tmp_path, """
        vrrp_script chk {
            script "/usr/bin/check 'two words' x"
            interval 2.5
            timeout 1
            weight -20 reverse
            rise 3
            fall 2
            user nobody nogroup
            init_fail
        }
        vrrp_track_process proc {
            process httpd -DFOREGROUND
            weight 10
            quorum 2
            quorum_max 4
            delay 0.5
        }
        track_file health {
            file /run/health
            init_file 5 overwrite
        }
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 1
            virtual_ipaddress {
                192.0.2.1
            }
            track_script {
                chk
                chk weight 7 noreverse
            }
            track_process {
                proc
            }
            track_file {
                health weight -3 reverse
            }
            track_interface {
                eth1
                eth2 weight -30
            }
        }
    """)
    assert result.ok, result.errors
    script = result.config.scripts["chk"]
    assert script.script.argv == ["/usr/bin/check", "two words", "x"]
    assert (script.script.user, script.script.group) == ("nobody", "nogroup")
    assert (script.interval, script.timeout, script.weight, script.reverse) == (2.5, 1.0, -20,
                                                                                 True)
    assert (script.rise, script.fall, script.init_fail) == (3, 2, True)
    process = result.config.track_processes["proc"]
    assert (process.process, process.params, process.quorum, process.quorum_max) == (
        "httpd", ["-DFOREGROUND"], 2, 4)
    assert process.fork_delay == process.terminate_delay == 0.5
    tracked = result.config.track_files["health"]
    assert (tracked.path, tracked.weight, tracked.init_file, tracked.init_overwrite) == (
        "/run/health", 1, 5, True)
    [inst] = result.config.instances
    assert [t.as_dict() for t in inst.tracks] == [
        {"type": "script", "name": "chk", "weight": -20, "reverse": True},   # tracker's own
        {"type": "script", "name": "chk", "weight": 7, "reverse": False},    # overridden
        {"type": "process", "name": "proc", "weight": 10, "reverse": False},
        {"type": "file", "name": "health", "weight": -3, "reverse": True},
        {"type": "interface", "name": "eth1", "weight": 0, "reverse": False},
        {"type": "interface", "name": "eth2", "weight": -30, "reverse": False},
    ]


@pytest.mark.parametrize("block, message", [
    ("track_script {\nchk weight 254\n}", "out of range -253..253"),
    ("track_file {\nf weight -255\n}", "out of range -254..254"),
    ("track_interface {\neth1 weight\n}", "unexpected 'weight'"),
    ("track_script {\nmissing\n}", "no vrrp_script missing is defined"),
    ("track_process {\nnope\n}", "no vrrp_track_process nope is defined"),
])
def test_tracker_errors(tmp_path, block, message):
    prefix = 'vrrp_script chk {\nscript "/bin/true"\n}\ntrack_file f {\nfile /x\n}\n'
    result, _ = one_instance(tmp_path, block + "\n", prefix=prefix)
    assert any(message in e.message for e in result.errors), result.errors


TRACKERS = """
vrrp_script chk {
    script "/bin/true"
}
vrrp_script alive {
    script "/bin/true"
}
vrrp_track_process proc {
    process httpd
    weight 5
}
track_file f {
    file /run/f
}
track_file g {
    file /run/g
}
"""


def test_owner_ignores_tracker_weights(tmp_path):
    # keepalived vrrp_complete_instance(): the address owner's priority cannot move, so
    # weighted trackers go (with a warning each) and only the ones that fault stay.
    result, inst = one_instance(tmp_path, """
        priority 255
        track_script {
            chk weight -10
            alive
        }
        track_process {
            proc
        }
        track_interface {
            eth1 weight 5
            eth2
        }
        track_file {
            f
            g weight -5
        }
    """, prefix=TRACKERS)
    assert result.ok, result.errors
    assert [t.as_dict() for t in inst.tracks] == [
        {"type": "script", "name": "alive", "weight": 0, "reverse": False},
        {"type": "interface", "name": "eth2", "weight": 0, "reverse": False},
        {"type": "file", "name": "f", "weight": 0, "reverse": False},   # default weight 1
    ]
    assert messages(result.warnings) == [
        (28, "(VI_1) ignoring tracked script chk with weight -10 due to address owner"),
        (32, "(VI_1) ignoring tracked process proc with weight 5 due to address owner"),
        (35, "(VI_1) ignoring tracked interface eth1 with weight 5 due to address owner"),
        (39, ("(VI_1) default weight of tracked file f ignored due to address owner: "
              "specify weight 0")),
        (40, "(VI_1) ignoring tracked file g with weight -5 due to address owner"),
    ]
    # Dropped from the owner, but still defined and used: no "not used" warning.
    assert not_acted_on(result) == []


def test_owner_state_master_without_priority_is_an_owner_too(tmp_path):
    result, inst = one_instance(tmp_path, "state MASTER\ntrack_script {\nchk weight -10\n}\n",
                                prefix='vrrp_script chk {\nscript "/bin/true"\n}\n')
    assert inst.priority == 255 and inst.tracks == ()
    assert messages(result.warnings) == [
        (13, "(VI_1) ignoring tracked script chk with weight -10 due to address owner")]
    result, inst = one_instance(tmp_path, "priority 254\ntrack_script {\nchk weight -10\n}\n",
                                prefix='vrrp_script chk {\nscript "/bin/true"\n}\n')
    assert [t.weight for t in inst.tracks] == [-10] and result.warnings == []


def test_notify_scripts(tmp_path):
    result, inst = one_instance(tmp_path, """
        notify_master "/etc/keepalived/notify.sh master" keepalived_script
        notify_backup /etc/keepalived/backup.sh
        notify_fault "/x fault" user :group
        notify_stop /x
        notify_deleted /y
        notify "/usr/local/bin/keepalived_notify.sh"
        notify_master_rx_lower_pri /z
    """)
    assert result.ok, result.errors
    assert inst.notify["master"].argv == ("/etc/keepalived/notify.sh", "master")
    assert inst.notify["master"].user == "keepalived_script"
    assert (inst.notify["fault"].user, inst.notify["fault"].group) == ("user", "group")
    assert set(inst.notify) == {"master", "backup", "fault", "stop", "deleted", "any"}
    assert inst.notify_master_rx_lower_pri.argv == ("/z",)
    # The daemon runs them all: nothing to warn about.
    assert result.warnings == []


def test_global_defs(tmp_path):
    result = load_text(tmp_path, """
        global_defs {
            router_id lb1
            notification_email {
                root@example.com "Ops <ops@example.com>"
                other@example.com
            }
            notification_email_from noreply@example.com
            smtp_server 127.0.0.1 25
            smtp_connect_timeout 10
            smtp_helo_name lb1.example.com
            smtp_alert
            smtp_alert_vrrp off
            script_user keepalived_script :users
            enable_script_security
            vrrp_version 3
            vrrp_mcast_group4 224.0.0.100
            vrrp_mcast_group6 ff02::100
            vrrp_garp_master_delay 2
            vrrp_garp_master_repeat 1
            vrrp_garp_lower_prio_delay 1
            vrrp_garp_lower_prio_repeat 2
            vrrp_garp_master_refresh 30
            vrrp_garp_master_refresh_repeat 3
            vrrp_garp_interval 0.001
            vrrp_gna_interval 0.002
            vrrp_min_garp
            vrrp_down_timer_adverts 4
            vrrp_lower_prio_no_advert
            vrrp_higher_prio_send_advert
            vrrp_skip_check_adv_addr
            vrrp_check_unicast_src
            v3_checksum_as_v2
            vrrp_owner_ignore_adverts
            vrrp_startup_delay 5
            notify_fifo /run/k.fifo
            vrrp_notify_fifo /run/v.fifo
            vrrp_notify_fifo_script "/usr/bin/on-vrrp fifo"
            notify_fifo_script /usr/bin/on-any
            vrrp_notify_priority_changes
            dynamic_interfaces
            log_unknown_vrids
        }
    """)
    assert result.ok, result.errors
    g = result.config.global_defs
    assert g.router_id == "lb1" and g.notification_email == [
        "root@example.com", "Ops <ops@example.com>", "other@example.com"]
    assert (g.smtp_server, g.smtp_connect_timeout, g.smtp_alert, g.smtp_alert_vrrp) == (
        "127.0.0.1", 10, True, False)
    assert (g.script_user, g.script_group, g.enable_script_security) == ("keepalived_script",
                                                                         "users", True)
    assert (g.vrrp_version, str(g.mcast_group4), str(g.mcast_group6)) == (3, "224.0.0.100",
                                                                          "ff02::100")
    assert (g.garp_master_delay, g.garp_master_repeat, g.garp_lower_prio_delay,
            g.garp_lower_prio_repeat, g.garp_master_refresh, g.garp_master_refresh_repeat) == (
        2.0, 1, 1.0, 2, 30.0, 3)
    assert (g.garp_interval, g.gna_interval, g.min_garp, g.down_timer_adverts) == (
        0.001, 0.002, True, 4)
    assert all([g.lower_prio_no_advert, g.higher_prio_send_advert, g.skip_check_adv_addr,
                g.check_unicast_src, g.v3_checksum_as_v2, g.owner_ignore_adverts,
                g.notify_priority_changes, g.dynamic_interfaces, g.log_unknown_vrids])
    assert (g.startup_delay, g.notify_fifo, g.vrrp_notify_fifo) == (5.0, "/run/k.fifo",
                                                                    "/run/v.fifo")
    assert g.vrrp_notify_fifo_script.argv == ["/usr/bin/on-vrrp", "fifo"]
    assert g.notify_fifo_script.argv == ["/usr/bin/on-any"]
    # Scripts, script security, FIFOs and priority notifications are acted on; e-mail
    # and the advert-checking switches are not.
    assert not_acted_on(result) == [
        "vrrp_skip_check_adv_addr", "vrrp_check_unicast_src",
        "vrrp_startup_delay", "dynamic_interfaces", "log_unknown_vrids"]
    assert len(result.warnings) == 5
    # E-mail and router_id: one info line naming them all, in the order written.
    [info] = result.infos
    assert info.message.split(": no effect on VRRP")[0] == (
        "router_id, notification_email, notification_email_from, smtp_server, "
        "smtp_connect_timeout, smtp_helo_name, smtp_alert, smtp_alert_vrrp")


def test_sync_group(tmp_path):
    result = load_text(tmp_path, """
        vrrp_sync_group G1 {
            group {
                VI_1 VI_2
            }
            notify_master /bin/true
            track_interface {
                eth1
            }
        }
        vrrp_instance VI_1 {
            interface eth0
            virtual_router_id 1
            virtual_ipaddress {
                192.0.2.1
            }
        }
        vrrp_instance VI_2 {
            interface eth0
            virtual_router_id 2
            virtual_ipaddress {
                192.0.2.2
            }
        }
    """)
    assert result.ok, result.errors
    [group] = result.config.sync_groups
    assert group.members == ["VI_1", "VI_2"] and group.notify["master"].argv == ["/bin/true"]
    assert [i.sync_group for i in result.config.instances] == ["G1", "G1"]
    assert [t.as_dict() for t in group.tracks] == [
        {"type": "interface", "name": "eth1", "weight": 0, "reverse": False}]
    # The daemon syncs the members, runs the notify script and tracks eth1.
    assert result.warnings == []


SYNC_TRACKERS = """
vrrp_sync_group G1 {
    group {
        VI_1 VI_2
    }
    %s
    track_interface {
        eth1 weight -20
        eth2
    }
    track_script {
        chk weight -10
    }
    track_file {
        f
    }
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 1
    priority 150
    virtual_ipaddress {
        192.0.2.1
    }
    track_process {
        proc
    }
    track_script {
        alive
    }
}
vrrp_instance VI_2 {
    interface eth0
    virtual_router_id 2
    virtual_ipaddress {
        192.0.2.2
    }
    track_file {
        g weight -5
    }
}
"""


def tracks(owner) -> list[tuple[str, str, int]]:
    return [(t.kind, t.name, t.weight) for t in owner.tracks]


def test_sync_group_members_drop_weights_without_sync_group_tracking_weight(tmp_path):
    # keepalived: members move together, not by weight. A weighted interface faults
    # instead, a file's default weight 1 becomes 0, other weighted trackers go.
    result = load_text(tmp_path, TRACKERS + SYNC_TRACKERS % "")
    assert result.ok, result.errors
    [group] = result.config.sync_groups
    vi_1, vi_2 = result.config.instances
    assert tracks(group) == [("interface", "eth1", 0), ("interface", "eth2", 0),
                             ("file", "f", 0)]
    assert tracks(vi_1) == [("script", "alive", 0)]
    assert tracks(vi_2) == []
    assert messages(result.warnings) == [
        (43, "(VI_1) ignoring tracked process proc with weight 5 due to sync group G1"),
        (56, "(VI_2) ignoring tracked file g with weight -5 due to sync group G1"),
        (25, ("(G1) weight of tracked interface eth1 ignored due to sync group G1: "
              "it faults while down")),
        (29, "(G1) ignoring tracked script chk with weight -10 due to sync group G1"),
        (32, ("(G1) default weight of tracked file f ignored due to sync group G1: "
              "specify weight 0")),
    ]
    # Every member gets the group's trackers; none can move its priority.
    uses = uses_of(result.config)
    assert {(u.kind, u.tracker, u.weight) for u in uses["VI_2"]} == {
        ("interface", "eth1", 0), ("interface", "eth2", 0), ("file", "f", 0)}
    assert Tracking(uses).priority_range("VI_1") == Tracking(uses).priority_range("VI_2") == (0, 0)


def test_sync_group_tracking_weight_keeps_the_weights(tmp_path):
    result = load_text(tmp_path, TRACKERS + SYNC_TRACKERS % "sync_group_tracking_weight")
    assert result.ok, result.errors
    [group] = result.config.sync_groups
    vi_1, vi_2 = result.config.instances
    assert group.tracking_weight
    assert tracks(group) == [("interface", "eth1", -20), ("interface", "eth2", 0),
                             ("script", "chk", -10), ("file", "f", 1)]
    assert tracks(vi_1) == [("process", "proc", 5), ("script", "alive", 0)]
    assert tracks(vi_2) == [("file", "g", -5)]
    assert result.warnings == []
    uses = Tracking(uses_of(result.config))
    assert uses.priority_range("VI_1") == (-20 - 10 - 253, 5 + 253)
    assert uses.priority_range("VI_2") == (-20 - 10 - 2 * 253, 2 * 253)  # two files


@pytest.mark.parametrize("keyword", ["lvs_flush"])
def test_recognised_but_unsupported_global_keywords_are_warnings(tmp_path, keyword):
    result, _ = one_instance(tmp_path, prefix=f"global_defs {{\n{keyword}\n}}\n")
    assert result.ok
    assert messages(result.warnings) == [
        (2, f"'{keyword}' in global_defs is not supported by hivrrp and is ignored")]


def test_ipvs_sections_are_warnings(tmp_path):
    result, _ = one_instance(tmp_path, prefix="""
virtual_server 192.0.2.100 80 {
    delay_loop 6
    real_server 192.0.2.101 80 {
        TCP_CHECK {
            connect_timeout 3
        }
    }
}
""")
    assert result.ok
    assert "'virtual_server' is not supported by hivrrp" in result.warnings[0].message
    assert result.warnings[0].where.line == 2
