"""The article's tracking configs under hivrrp and under keepalived 2.2.7, side
by side, with the same stimuli: the priorities both advertise (read off the
wire by scapy in an observer namespace) and the notify lines must agree, and
match the article's figures.

Each scenario runs both daemons at once, each on its own LAN (namespaces with
a per-run prefix). keepalived gets `net_namespace`: it opens the kernel's
process connector in the initial namespace and then enters the test's (the
connector does not exist inside one); hivrrp runs inside with `ip netns exec`
and falls back to scanning /proc.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.netns import wait_for
from helpers.topology import KEEPALIVED_ARGS, Lan

pytestmark = pytest.mark.netns

ARTICLE = Path(__file__).resolve().parents[2] / "conf" / "article"
WATCH = Path(__file__).resolve().parents[1] / "helpers" / "advert_watch.py"
ROUTER_IP = "192.0.2.1"
WATCH_SECONDS = 60


@pytest.fixture
def lans(tmp_path, namespaces_allowed):
    if shutil.which("keepalived") is None:
        pytest.fail("keepalived is missing: tests/run.sh installs it")
    lans = {}
    try:
        for daemon in ("hivrrp", "keepalived"):
            workdir = tmp_path / daemon
            workdir.mkdir()
            lans[daemon] = Side(daemon, Lan(workdir))
        yield lans
    finally:
        for side in lans.values():
            side.lan.close()


class Side:
    """One daemon on its own LAN: router r1 (eth0) and an observer."""

    def __init__(self, daemon: str, lan: Lan) -> None:
        self.daemon, self.lan, self.dir = daemon, lan, lan.workdir
        self.ns = lan.node("r1", ipv4=f"{ROUTER_IP}/24", interface="eth0")
        obs = lan.node("obs", ipv4="192.0.2.200/24", interface="eth0")
        self.adverts = self.dir / "adverts.txt"
        self.adverts.touch()
        lan.popen(obs, sys.executable, str(WATCH), "eth0", str(self.adverts),
                  str(WATCH_SECONDS))
        self.notify_log = self.dir / "notify.log"
        self.proc: subprocess.Popen | None = None

    def start(self, config_text: str) -> None:
        if self.daemon == "hivrrp":
            self.proc = self.lan.hivrrp("r1", self.lan.write("r1.conf", config_text))
            return
        # keepalived enters the namespace itself, after opening the connector.
        path = self.lan.write("r1.conf", f"net_namespace {self.ns}\n{config_text}")
        run = self.dir / "ka"
        run.mkdir()
        log = open(self.dir / "r1-keepalived.log", "ab")
        self.proc = subprocess.Popen(
            ["keepalived", *KEEPALIVED_ARGS, "--use-file", str(path), "--pid",
             str(run / "ka.pid"), "--vrrp_pid", str(run / "vrrp.pid"), "--checkers_pid",
             str(run / "chk.pid")], stdout=log, stderr=subprocess.STDOUT)
        self.lan.processes.append(self.proc)   # stopped by PID at close

    def priorities(self) -> list[int]:
        """The router's advertised priorities, consecutive repeats folded."""
        out: list[int] = []
        for line in self.adverts.read_text().splitlines():
            _, src, vrid, priority = line.split()
            if src == ROUTER_IP and vrid == "51" and (not out or out[-1] != int(priority)):
                out.append(int(priority))
        return out

    def notifications(self) -> list[str]:
        return self.notify_log.read_text().splitlines() if self.notify_log.exists() else []

    def log(self) -> str:
        return self.lan.log("r1", self.daemon)


def both(lans, predicate, timeout: float) -> bool:
    return wait_for(lambda: all(predicate(side) for side in lans.values()), timeout,
                    interval=0.1)


def article(name: str, **replace: str) -> str:
    text = (ARTICLE / name).read_text()
    for old, new in replace.items():
        text = text.replace(old, new)
    return text


def logs(lans) -> str:
    return "\n".join(f"--- {name}\n{side.log()[-3000:]}\nadverts {side.priorities()}"
                     for name, side in lans.items())


def program_named(tmp_path: Path, name: str) -> Path:
    """A copy of sleep whose process name is `name`."""
    path = tmp_path / name
    shutil.copy("/bin/sleep", path)
    return path


def test_track_process_254_then_244(lans, tmp_path):
    # One httpd for both: process names are not per network namespace.
    httpd = subprocess.Popen([str(program_named(tmp_path, "httpd")), "300"])
    try:
        for side in lans.values():
            side.start(article("track-process.conf"))
        assert both(lans, lambda s: s.priorities()[-1:] == [254], 15), logs(lans)
        httpd.send_signal(signal.SIGKILL)
        httpd.wait(5)
        assert both(lans, lambda s: s.priorities()[-1:] == [244], 5), logs(lans)
    finally:
        if httpd.poll() is None:
            httpd.kill()
            httpd.wait(5)
    for side in lans.values():
        assert side.priorities() == [254, 244], logs(lans)
    assert "process tracking: /proc scan" in lans["hivrrp"].log()


def test_track_file_244_then_249(lans):
    for side in lans.values():
        health = side.dir / "my_health"
        health.write_text("0\n")
        side.start(article("track-file.conf", **{"/opt/my_app/my_health": str(health)}))
    assert both(lans, lambda s: s.priorities()[-1:] == [244], 15), logs(lans)
    for side in lans.values():
        (side.dir / "my_health").write_text("5\n")
    assert both(lans, lambda s: s.priorities()[-1:] == [249], 3), logs(lans)
    for side in lans.values():
        assert side.priorities() == [244, 249], logs(lans)


def test_track_interface_249_then_244(lans):
    for side in lans.values():
        side.lan.run(side.ns, "ip", "link", "add", "ens160", "type", "veth", "peer", "name",
                     "ens160p")
        side.lan.run(side.ns, "ip", "link", "set", "ens160p", "up")
        side.lan.run(side.ns, "ip", "link", "set", "ens160", "up")
        side.start(article("track-interface.conf"))
    assert both(lans, lambda s: s.priorities()[-1:] == [249], 15), logs(lans)
    for side in lans.values():
        side.lan.run(side.ns, "ip", "link", "set", "ens160", "down")
    assert both(lans, lambda s: s.priorities()[-1:] == [244], 3), logs(lans)
    for side in lans.values():
        assert side.priorities() == [249, 244], logs(lans)


def test_unweighted_script_faults_after_fall_and_recovers_after_rise_with_notify(lans):
    for side in lans.values():
        state = side.dir / "app-state"
        state.write_text("ok\n")
        check = side.dir / "keepalived_check.sh"
        check.write_text(f'#!/bin/sh\necho run >> {side.dir}/runs\ngrep -qx ok {state}\n')
        notify = side.dir / "keepalived_notify.sh"
        notify.write_text(f'#!/bin/sh\necho "$@" >> {side.notify_log}\n')
        for script in (check, notify):
            script.chmod(0o755)
        config = article("track-script.conf",
                         **{"/usr/local/bin/keepalived_check.sh": str(check)})
        config = config.replace("    track_script {",
                                f'    notify "{notify}"\n    track_script {{')
        side.start(config)
    assert both(lans, lambda s: s.priorities()[-1:] == [244], 15), logs(lans)
    runs = {name: len((s.dir / "runs").read_text().split()) for name, s in lans.items()}
    for side in lans.values():
        (side.dir / "app-state").write_text("down\n")
    # fall 3 at 1 s: FAULT (priority 0, then silence) after three failures.
    assert both(lans, lambda s: s.priorities()[-1:] == [0], 6), logs(lans)
    for name, side in lans.items():
        failures = len((side.dir / "runs").read_text().split()) - runs[name]
        assert 3 <= failures <= 4, (name, failures, logs(lans))
    time.sleep(2)
    for side in lans.values():
        assert side.priorities()[-1] == 0
        (side.dir / "app-state").write_text("ok\n")
    # rise 3, then BACKUP for Master_Down_Interval, then MASTER again.
    assert both(lans, lambda s: s.priorities() == [244, 0, 244], 12), logs(lans)
    expected = ["INSTANCE VI_1 BACKUP 244", "INSTANCE VI_1 MASTER 244",
                "INSTANCE VI_1 FAULT 244", "INSTANCE VI_1 BACKUP 244",
                "INSTANCE VI_1 MASTER 244"]
    assert both(lans, lambda s: s.notifications() == expected, 3), (
        {n: s.notifications() for n, s in lans.items()}, logs(lans))
    # STOP on SIGTERM, as keepalived.
    for side in lans.values():
        os.kill(side.proc.pid, signal.SIGTERM)
        side.proc.wait(10)
    for name, side in lans.items():
        assert side.notifications()[-1] == "INSTANCE VI_1 STOP 244", (name, side.notifications())
