"""conf/hivrrp.service: what the daemon's sd_notify support relies on, what
conf/install.sh puts where the unit looks, and systemd's rating of its
sandbox. systemd-analyze verify runs on the installed unit in
tests/system/test_install.py; the daemon runs inside the sandbox's
capabilities and system calls in tests/netns/test_unit_sandbox.py."""

import configparser
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[2] / "conf"
UNIT = CONF / "hivrrp.service"


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read(UNIT)
    return parser


def installer_path(name: str) -> str:
    """A path conf/install.sh installs to (its NAME=/path lines)."""
    found = re.search(rf"^{name}=(\S+)$", (CONF / "install.sh").read_text(), re.M)
    assert found, f"conf/install.sh sets no {name}"
    return found.group(1)


def test_the_unit_matches_what_the_daemon_does():
    service = unit()["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["ExecStart"].split()[1:3] == ["run", "-f"]
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"   # the daemon reloads on SIGHUP
    assert service["WatchdogSec"].endswith("s") and service["KillMode"] == "mixed"
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_the_unit_runs_what_the_installer_installs():
    service = unit()["Service"]
    assert service["ExecStart"].split()[0] == installer_path("LINK")
    assert service["EnvironmentFile"] == "-" + installer_path("DEFAULTS")
    # Unbraced: systemd splits the value into words (--metrics ADDR is two).
    assert service["ExecStart"].split()[-1] == "$HIVRRP_OPTS"
    assert "HIVRRP_OPTS=" in (CONF / "default" / "hivrrp").read_text()
    assert "man:hivrrp(8)" in unit()["Unit"]["Documentation"].split()
    assert installer_path("UNIT").endswith("/hivrrp.service")


def test_every_stop_releases_what_a_killed_daemon_left(tmp_path):
    service = unit()["Service"]
    start, post = service["ExecStart"].split(), service["ExecStopPost"].split()
    # "-": a failed release is logged, not a failed stop; the same binary, file and
    # options as the daemon, so the same VIPs and the same pid file.
    assert post[0] == "-" + start[0] and post[1] == "release" and post[2:] == start[2:]
    # Conflicts= alone orders nothing: keepalived started in hivrrp's place must
    # wait for this release, or it would lose the VIPs it just took.
    assert "keepalived.service" in unit()["Unit"]["Conflicts"].split()
    assert "keepalived.service" in unit()["Unit"]["After"].split()
    # release takes run's options it has no use for: the unit's $HIVRRP_OPTS
    # holds run's (--metrics, --control, --log-level ...).
    from click.testing import CliRunner

    from hivrrp.cli import main
    missing = tmp_path / "missing.conf"
    result = CliRunner().invoke(main, ["release", "-f", str(missing), "--pid-file",
                                       str(tmp_path / "pid"), "--metrics", "127.0.0.1:9736",
                                       "--log-level", "debug", "--control", "none"])
    assert "No such option" not in result.output
    assert result.exit_code == 1, result.output      # the missing file, not the options


def test_systemd_rates_the_sandbox_ok():
    """9.7 UNSAFE before the sandbox; 4.0 leaves room for systemd versions
    that weigh a check differently, and fails if the sandbox goes."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: tests/run.sh installs systemd")
    result = subprocess.run([analyze, "security", "--offline=yes", "--threshold=40",
                             "--no-pager", str(UNIT)], capture_output=True, text=True, timeout=60)
    rating = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr
    assert result.returncode == 0, rating
