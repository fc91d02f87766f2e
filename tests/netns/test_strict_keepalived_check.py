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
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers.strict_corpus import CASES
from helpers.topology import Lan

pytestmark = pytest.mark.netns

# Cases judged at once: each is two short processes (keepalived -t, a Python start-up),
# independent of the others; one after the other, 50 of them took 18 s.
WORKERS = 4


def judge(lan: Lan, ns: str, index: int, name: str):
    """(the file, keepalived -t's result, hivrrp check's) for one case."""
    path = lan.write(f"case{index}.conf", CASES[name].text)
    keepalived = lan.run(ns, "keepalived", "-t", "-l", "-D", "-f", str(path), check=False)
    # `ip netns exec`, not lan.run's nsenter: check reads the interfaces' flags in /sys,
    # which only the former mounts for the namespace.
    check = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-m", "hivrrp", "check",
                            "-f", str(path)], capture_output=True, text=True, timeout=60)
    return path, keepalived, check


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory, namespaces_allowed):
    """Every case judged by both, in a namespace whose eth1 can multicast or, for the
    cases that say so, in one whose eth1 cannot (a LAN of its own, same addresses)."""
    if shutil.which("keepalived") is None:
        pytest.fail("keepalived is missing: tests/run.sh installs it")
    tmp = tmp_path_factory.mktemp("strict-check")
    lans = {}
    try:
        for multicast in (True, False):
            workdir = tmp / ("multicast" if multicast else "no-multicast")
            workdir.mkdir()
            lans[multicast] = Lan(workdir)
        version = lans[True].run(lans[True].switch, "keepalived", "--version", check=False)
        if "v2.2.7 " not in version.stdout + version.stderr:
            pytest.skip("the corpus records keepalived 2.2.7's verdicts")
        hosts = {multicast: lan.node("r1", ipv4="192.0.2.1/24", ipv6="fd00::1/64")
                 for multicast, lan in lans.items()}
        lans[False].run(hosts[False], "ip", "link", "set", "eth1", "multicast", "off")

        def one(item):
            index, name = item
            multicast = CASES[name].multicast
            return name, judge(lans[multicast], hosts[multicast], index, name)

        with ThreadPoolExecutor(WORKERS) as pool:
            return dict(pool.map(one, enumerate(CASES)))
    finally:
        for lan in lans.values():
            lan.close()


@pytest.mark.parametrize("name", CASES)
def test_check_agrees_with_keepalived(verdicts, name):
    case = CASES[name]
    path, keepalived, check = verdicts[name]
    said = keepalived.stdout + keepalived.stderr
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
