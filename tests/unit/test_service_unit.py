"""conf/hivrrp.service: what the daemon's sd_notify support relies on, and
systemd's own verdict on the file where systemd-analyze exists."""

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "conf" / "hivrrp.service"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(UNIT)
    return parser


def test_the_unit_matches_what_the_daemon_does():
    service = unit()["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["ExecStart"].split()[1:3] == ["run", "-f"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"   # the daemon reloads on SIGHUP
    assert service["WatchdogSec"].endswith("s") and service["KillMode"] == "mixed"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_accepts_the_unit(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (the keys are checked above)")
    copy = tmp_path / "hivrrp.service"
    copy.write_text(UNIT.read_text().replace("/usr/local/bin/hivrrp", "/bin/true"))
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
