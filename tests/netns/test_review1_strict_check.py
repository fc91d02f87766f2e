"""`hivrrp check` beside `keepalived -t` on the strict-mode configurations the issue 20
review found them to disagree on (tests/helpers/review1_strict.py): keepalived's
recorded verdict is checked against keepalived itself (plain test), and hivrrp's
against it (xfail(strict=True) until they agree)."""

import shutil
import subprocess
import sys

import pytest

from helpers.review1_strict import CASES

pytestmark = pytest.mark.netns


@pytest.fixture
def ns(lan):
    if shutil.which("keepalived") is None:
        pytest.fail("keepalived is missing: tests/run.sh installs it")
    version = lan.run(lan.switch, "keepalived", "--version", check=False)
    if "v2.2.7 " not in version.stdout + version.stderr:
        pytest.skip("the verdicts are keepalived 2.2.7's")
    return lan.node("r1", ipv4="192.0.2.1/24")


def judge(lan, ns, text):
    path = lan.write("keepalived.conf", text)
    keepalived = lan.run(ns, "keepalived", "-t", "-l", "-D", "-f", str(path), check=False)
    check = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "hivrrp", "check",
                            "-f", str(path)], capture_output=True, text=True, timeout=60)
    return keepalived, check


@pytest.mark.parametrize("name", CASES)
def test_keepalived_t_says_what_was_recorded(lan, ns, name):
    keepalived, _check = judge(lan, ns, CASES[name].text)
    assert keepalived.returncode == CASES[name].keepalived_exit, (
        keepalived.stdout + keepalived.stderr)


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=() if CASES[name].check_agrees
                 else pytest.mark.xfail(strict=True, reason=CASES[name].why))
    for name in CASES])
def test_check_exits_as_keepalived_t(lan, ns, name):
    case = CASES[name]
    _keepalived, check = judge(lan, ns, case.text)
    assert check.returncode == (0 if case.keepalived_exit == 0 else 1), check.stderr
