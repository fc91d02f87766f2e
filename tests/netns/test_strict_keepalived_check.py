"""`hivrrp check` beside `keepalived -t` on the strict-mode corpus (tests/helpers/
strict_corpus.py): both call the same files valid, and keepalived's message for each
rule is hivrrp's, at the line it is about.

keepalived -t judges the host it runs on (an interface that does not exist is an error),
so both run in a fresh namespace whose interface is the configs' eth1. Its exit codes
(2.2.7): 0 valid, 5 a config error (also the ones keepalived then runs with); hivrrp
check: 0 or 1.
"""

import shutil
import subprocess
import sys

import pytest

from helpers.strict_corpus import CASES

pytestmark = pytest.mark.netns


@pytest.fixture
def ns(lan):
    if shutil.which("keepalived") is None:
        pytest.fail("keepalived is missing: tests/run.sh installs it")
    version = lan.run(lan.switch, "keepalived", "--version", check=False)
    if "v2.2.7 " not in version.stdout + version.stderr:
        pytest.skip("the corpus records keepalived 2.2.7's verdicts")
    return lan.node("r1", ipv4="192.0.2.1/24", ipv6="fd00::1/64")


@pytest.mark.parametrize("name", CASES)
def test_check_agrees_with_keepalived(lan, ns, name):
    case = CASES[name]
    if not case.multicast:
        lan.run(ns, "ip", "link", "set", "eth1", "multicast", "off")
    path = lan.write("keepalived.conf", case.text)
    keepalived = lan.run(ns, "keepalived", "-t", "-l", "-D", "-f", str(path), check=False)
    said = keepalived.stdout + keepalived.stderr
    # `ip netns exec`, not lan.run's nsenter: check reads the interfaces' flags in /sys,
    # which only the former mounts for the namespace.
    check = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "hivrrp", "check",
                            "-f", str(path)], capture_output=True, text=True, timeout=60)
    assert (keepalived.returncode, check.returncode) == ((0, 0) if case.valid else (5, 1)), (
        said, check.stderr)
    for line, message in case.expected():
        assert message in said, said
        assert f"{path}:{line}: error: {message}" in check.stderr.splitlines(), check.stderr
    for message, _why in case.keepalived_only:
        assert message in said and message not in check.stderr
    for needle, start in case.host_warnings:
        assert f"{path}:{case.line_of(needle)}: warning: {start}" in check.stderr, check.stderr
    if not case.host_warnings:
        assert "can multicast" not in check.stderr, check.stderr
    errors = [line for line in check.stderr.splitlines() if ": error: " in line]
    assert len(errors) == len(case.errors), check.stderr
    assert "Traceback" not in check.stderr
