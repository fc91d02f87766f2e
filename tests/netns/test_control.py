"""The control socket of a running daemon (namespaces): hivrrp status, and
set-priority making the peer's master step down."""

import json
import subprocess
import sys

import pytest
from netns_conf import FAST, VIP, conf

from helpers.netns import wait_for

pytestmark = pytest.mark.netns


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hivrrp", *args], capture_output=True, text=True,
                          timeout=30)


def test_status_and_set_priority_preempting_the_peer(lan):
    lan.node("r1", ipv4="192.0.2.1/24")
    lan.node("r2", ipv4="192.0.2.2/24")
    lan.hivrrp("r1", lan.write("r1.conf", conf(200, **FAST)))
    assert lan.wait_running("r1"), lan.log("r1")
    lan.hivrrp("r2", lan.write("r2.conf", conf(100, **FAST)))
    assert lan.wait_owner(VIP, "r1", 8), lan.log("r1")
    r1, r2 = str(lan.workdir / "r1.sock"), str(lan.workdir / "r2.sock")
    assert wait_for(lambda: cli("status", "--socket", r2, "--json").returncode == 0, 5)
    [row] = json.loads(cli("status", "--socket", r2, "--json").stdout)
    assert (row["instance"], row["state"], row["base_priority"], row["master"]) == (
        "VI_1", "BACKUP", 100, "192.0.2.1")
    text = cli("status", "--socket", r1).stdout
    assert "VI_1" in text and "MASTER" in text and "200/200" in text
    assert "1 instance: 1 master" in text
    backups = cli("status", "--socket", r1, "--state", "backup").stdout.splitlines()
    assert backups[0].startswith("hivrrp ") and backups[1].startswith("INSTANCE")
    assert "VI_1" not in "\n".join(backups)
    # r2 outranks r1 at runtime: it preempts r1, which steps down.
    done = cli("set-priority", "--socket", r2, "VI_1", "250")
    assert done.returncode == 0 and "100 -> 250" in done.stdout, done
    assert lan.wait_owner(VIP, "r2", 6), (lan.log("r1"), lan.log("r2"))
    assert "(VI_1) MASTER -> BACKUP (higher_priority)" in lan.log("r1")
    # Errors are clear and change nothing.
    bad = cli("set-priority", "--socket", r2, "VI_9", "100")
    assert bad.returncode == 1 and "no instance 'VI_9'" in bad.stderr
    gone = cli("status", "--socket", str(lan.workdir / "absent.sock"))
    assert gone.returncode == 1 and "is hivrrp running?" in gone.stderr
    assert cli("reload", "--socket", r1).returncode == 0
    assert wait_for(lambda: "reloaded:" in lan.log("r1"), 5)
