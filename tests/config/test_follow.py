"""`follow NAME` / `follow_refresh SECONDS`: hivrrp's follower instances in the
configuration, what is refused, what is warned about, what `check` says."""

import json
import subprocess
import sys

import pytest

from helpers.conf import load_text, messages, write


def instance(name, vrid, body="", vip=None):
    vip = vip or f"192.0.2.{100 + vrid}/24"
    return (f"vrrp_instance {name} {{\n    interface eth0\n    virtual_router_id {vrid}\n"
            f"{body}    virtual_ipaddress {{\n        {vip}\n    }}\n}}\n")


def test_a_follower_names_its_leader_and_refreshes_every_60_s_by_default(tmp_path):
    result = load_text(tmp_path, instance("LEAD", 1) + instance("F1", 2, "    follow LEAD\n")
                       + instance("F2", 3, "    follow LEAD\n    follow_refresh 0\n"))
    assert result.clean, result.errors
    by_name = {i.name: i for i in result.config.instances}
    assert by_name["LEAD"].follow is None
    assert (by_name["F1"].follow, by_name["F1"].follow_refresh) == ("LEAD", 60.0)
    assert (by_name["F2"].follow, by_name["F2"].follow_refresh) == ("LEAD", 0.0)


@pytest.mark.parametrize("value, message", [
    ("0.5", "follow_refresh: 0.5 s is below 1 s: a follower refreshes, it does not advertise "
            "(0 turns the refresh off)"),
    ("-1", "follow_refresh: -1 is out of range 0..86400"),
    ("86401", "follow_refresh: 86401 is out of range 0..86400"),
    ("soon", "follow_refresh: 'soon' is not a number of seconds"),
])
def test_a_refresh_period_out_of_bounds_is_refused_at_its_line(tmp_path, value, message):
    result = load_text(tmp_path, instance("LEAD", 1)
                       + instance("F1", 2, f"    follow LEAD\n    follow_refresh {value}\n"))
    assert messages(result.errors) == [(12, message)]
    assert not result.ok


def test_what_the_daemon_could_not_run_is_refused_at_the_follow_line(tmp_path):
    text = (instance("LEAD", 1)                                       # lines 1-7
            + instance("F1", 2, "    follow LEAD\n")                  # 8-15
            + instance("CHAIN", 3, "    follow F1\n")                 # 16-23
            + instance("LOST", 4, "    follow NOPE\n")                # 24-31
            + instance("SELF", 5, "    follow SELF\n")                # 32-39
            + instance("GROUPED", 6, "    follow LEAD\n")             # 40-47
            + "vrrp_sync_group G {\n    group {\n        LEAD\n        GROUPED\n    }\n}\n")
    result = load_text(tmp_path, text)
    assert messages(result.errors) == [
        (19, "(CHAIN) follow F1: F1 follows LEAD itself: a leader elects, so follow LEAD "
             "instead (no chains)"),
        (27, "(LOST) follow NOPE: no vrrp_instance NOPE"),
        (35, "(SELF) follow SELF: an instance cannot follow itself"),
        (43, "(GROUPED) follow LEAD: GROUPED is in vrrp_sync_group G: its state would be both "
             "its group's and its leader's (put the leader in the group)"),
    ]
    assert all(e.fatal for e in result.errors)
    # Nothing downstream meets a reference that was refused; the leader may be in a group.
    assert {i.name: i.follow for i in result.config.instances} == {
        "LEAD": None, "F1": "LEAD", "CHAIN": None, "LOST": None, "SELF": None, "GROUPED": None}


def test_a_leader_that_is_itself_invalid_is_named_as_such(tmp_path):
    text = ("vrrp_instance LEAD {\n    interface eth0\n    virtual_ipaddress {\n"
            "        192.0.2.1/24\n    }\n}\n" + instance("F1", 2, "    follow LEAD\n"))
    result = load_text(tmp_path, text)
    assert (10, "(F1) follow LEAD: vrrp_instance LEAD is not valid (see its errors)") \
        in messages(result.errors)


def test_keywords_that_do_nothing_on_a_follower_are_warned_about(tmp_path):
    text = ("vrrp_script chk {\n    script /bin/true\n    weight 10\n}\n"       # 1-4
            + instance("LEAD", 1)                                              # 5-11
            + instance("F1", 2, "    follow LEAD\n    state MASTER\n    priority 255\n"
                                "    track_script {\n        chk\n    }\n"
                                "    track_interface {\n        eth0 weight -20\n    }\n"
                                "    track_file {\n    }\n")
            + instance("F2", 3, "    follow LEAD\n    nopreempt\n"
                                "    track_script {\n        chk weight 0\n    }\n")
            + instance("F3", 4, "    follow LEAD\n    preempt_delay 5\n"))
    result = load_text(tmp_path, text)
    follower = [(line, m) for line, m in messages(result.warnings) if "follows LEAD" in m]
    assert follower == [
        (16, "(F1) follows LEAD: `state MASTER` has no effect, a follower takes its leader's "
             "state"),
        (17, "(F1) follows LEAD: priority 255 does not make a follower the address owner (it "
             "takes its leader's state); its refresh adverts carry 255, which a peer that does "
             "not follow obeys"),
        (34, "(F2) follows LEAD: nopreempt has no effect, a follower does not elect (its "
             "leader's preemption decides)"),
        (46, "(F3) follows LEAD: preempt_delay has no effect, a follower does not elect (its "
             "leader's preemption decides)"),
    ]
    # F1 is an address owner for keepalived's rules, which drop its weighted
    # trackers (said in keepalived's words); F2's weight 0 script faults it:
    # no warning. A weighted tracker on an ordinary follower is warned about.
    text2 = (text.replace("    priority 255\n", "").replace("    state MASTER\n", ""))
    result = load_text(tmp_path, text2)
    weights = [(line, m) for line, m in messages(result.warnings) if "weight" in m
               and "follows" in m]
    assert weights == [
        (17, "(F1) follows LEAD: track_script chk weight 10 has no effect on its state (only "
             "on the priority its refresh adverts carry); weight 0 faults it, or track on the "
             "leader"),
        (20, "(F1) follows LEAD: track_interface eth0 weight -20 has no effect on its state "
             "(only on the priority its refresh adverts carry); weight 0 faults it, or track on "
             "the leader"),
    ]


def big_config(leaders, followers):
    out = []
    for k in range(leaders):
        vip = f"10.{k}.0.1/16"
        out.append(f"vrrp_instance L{k} {{\n    interface eth{k}\n    virtual_router_id 1\n"
                   f"    virtual_ipaddress {{\n        {vip}\n    }}\n}}\n")
        for f in range(followers):
            out.append(f"vrrp_instance L{k}F{f} {{\n    interface eth{k}\n"
                       f"    virtual_router_id {f + 2}\n    follow L{k}\n"
                       f"    virtual_ipaddress {{\n        10.{k}.{1 + f // 250}.{1 + f % 250}/16\n"
                       "    }\n}\n")
    return "".join(out)


def run_check(path, *args):
    return subprocess.run([sys.executable, "-m", "hivrrp", "check", *args, str(path)],
                          capture_output=True, text=True, timeout=120)


def test_check_lists_leaders_and_followers_and_says_keepalived_rejects_follow(tmp_path):
    path = write(tmp_path, "keepalived.conf", big_config(2, 4))
    out = run_check(path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[3:] == [
        "  8 followers of 2 leaders (`follow`: hivrrp's own keyword: keepalived rejects it "
        "(\"Unknown keyword 'follow'\", -t exits 5) and runs such an instance as one that "
        "elects on its own, so both routers must run hivrrp with the same grouping)",
        "  L0 leads 4 followers: L0F0, L0F1, L0F2 .. L0F3",
        "  L1 leads 4 followers: L1F0, L1F1, L1F2 .. L1F3",
    ]
    doc = json.loads(run_check(path, "--json").stdout)
    assert doc["leaders"] == {"L0": ["L0F0", "L0F1", "L0F2", "L0F3"],
                              "L1": ["L1F0", "L1F1", "L1F2", "L1F3"]}
    assert [i["follow"] for i in doc["instances"][:3]] == [None, "L0", "L0"]


def test_check_condenses_a_config_of_thousands_of_followers(tmp_path):
    path = write(tmp_path, "keepalived.conf", big_config(40, 30))
    out = run_check(path)
    assert out.returncode == 0, out.stderr
    follow_lines = [line for line in out.stdout.splitlines() if "lead" in line]
    assert len(follow_lines) == 13     # the count, 11 leaders, the rest in one line
    assert follow_lines[0].startswith("  1200 followers of 40 leaders")
    assert follow_lines[-1] == ("  ... 29 more leaders with 870 followers (hivrrp check --json "
                                "lists every one)")
