"""no_accept's tables on a real (namespaced) kernel, beyond the daemon's own run: what a
SIGKILLed run leaves (under its name or an older one) is removed by `hivrrp release`
and by the next start, also where nf_tables is built in (no /sys/module/nf_tables); a
table hivrrp did not make stays; a ruleset flushed behind the daemon's back is
noticed and the table made again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from netns_conf import FAST, VIP, conf
from test_no_accept import answers, never_answers, tables

from helpers.netns import wait_for

pytestmark = pytest.mark.netns


def release(lan, name: str, config) -> subprocess.CompletedProcess:
    """What the unit's ExecStopPost= runs after any stop, a crash included."""
    ns, _ = lan.nodes[name]
    return subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "hivrrp", "release",
                           "-f", str(config)], capture_output=True, text=True, timeout=30)


def killed_no_accept_master(lan):
    client = lan.node("client", ipv4="192.0.2.100/24")
    r1 = lan.node("r1", ipv4="192.0.2.1/24")
    config = lan.write("r1.conf", conf(200, extra="    no_accept\n", **FAST))
    daemon = lan.hivrrp("r1", config)
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    assert never_answers(lan, client, VIP), lan.log("r1")
    lan.kill(daemon)
    daemon.wait(5)
    assert tables(lan, r1) == {("ip", "hivrrp")}          # what the SIGKILL left
    return client, r1, config


def test_release_removes_a_killed_runs_table(lan):
    if os.path.exists("/sys/module/nf_tables"):
        pytest.skip("nf_tables is a loaded module here: the finding needs it built in")
    _client, r1, config = killed_no_accept_master(lan)
    done = release(lan, "r1", config)
    assert done.returncode == 0, done.stderr
    assert tables(lan, r1) == set(), done.stderr


def test_a_start_with_accept_after_a_killed_no_accept_run_answers(lan):
    if os.path.exists("/sys/module/nf_tables"):
        pytest.skip("nf_tables is a loaded module here: the finding needs it built in")
    client, r1, config = killed_no_accept_master(lan)
    config.write_text(conf(200, extra="    accept\n", **FAST))
    second = lan.hivrrp("r1", config)
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    assert answers(lan, client, VIP), (lan.log("r1"), tables(lan, r1))
    lan.stop(second)


def test_a_renamed_table_after_a_kill_is_not_left_dropping(lan):
    client, r1, config = killed_no_accept_master(lan)
    # The operator renames the table (e.g. to keep it apart from another tool's) and
    # runs with accept: whatever the old run left must not filter the new master.
    config.write_text("global_defs {\n    nftables renamed\n}\n"
                      + conf(200, extra="    accept\n", **FAST))
    release(lan, "r1", config)
    second = lan.hivrrp("r1", config)
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    assert answers(lan, client, VIP), (lan.log("r1"), tables(lan, r1))
    lan.stop(second)


def test_a_flushed_ruleset_is_noticed(lan):
    client = lan.node("client", ipv4="192.0.2.100/24")
    r1 = lan.node("r1", ipv4="192.0.2.1/24")
    config = lan.write("r1.conf", conf(200, extra="    no_accept\n", **FAST))
    daemon = lan.hivrrp("r1", config)
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    assert never_answers(lan, client, VIP), lan.log("r1")
    lan.run(r1, "nft", "flush", "ruleset")
    status = subprocess.run(["ip", "netns", "exec", r1, sys.executable, "-m", "hivrrp",
                             "status", "--socket", str(lan.workdir / "r1.sock")],
                            capture_output=True, text=True, timeout=30)
    # Either the table comes back (the VIP is dropped again) or status says it is not.
    enforced = wait_for(lambda: ("ip", "hivrrp") in tables(lan, r1), 10, interval=0.5)
    said = "NOT enforced" in status.stderr
    lan.stop(daemon)
    assert enforced or said, (status.stdout, status.stderr, lan.log("r1"))


def test_release_leaves_a_table_it_did_not_make(lan):
    r1 = lan.node("r1", ipv4="192.0.2.1/24")
    for command in (("add", "table", "ip", "keepalived"),
                    ("add", "set", "ip", "keepalived", "vips", "{ type ipv4_addr; }"),
                    ("add", "element", "ip", "keepalived", "vips", "{ 192.0.2.99 }")):
        lan.run(r1, "nft", *command)
    code = ("from hivrrp.ops.release import remove_tables\n"
            "from hivrrp.kernel.firewall_policy import Settings\n"
            "print(remove_tables(Settings('keepalived', -1, False)))\n")
    done = subprocess.run(["ip", "netns", "exec", r1, sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert ("ip", "keepalived") in tables(lan, r1), done.stderr


def test_a_sigterm_after_a_flush_removes_the_vip_without_an_error(lan):
    """Before the daemon's next look at its table: the drop's removal meets no table."""
    r1 = lan.node("r1", ipv4="192.0.2.1/24")
    config = lan.write("r1.conf", conf(200, extra="    no_accept\n", **FAST))
    daemon = lan.hivrrp("r1", config)
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    lan.run(r1, "nft", "flush", "ruleset")
    lan.stop(daemon)
    log = lan.log("r1")
    assert not lan.has("r1", VIP), log
    assert tables(lan, r1) == set(), log
    assert " ERROR " not in log and "nftables: cannot" not in log, log
