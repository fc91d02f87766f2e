"""The daemon's netlink monitor under a burst of address removals (a mass demotion)."""

import json
import sys

import pytest

from helpers.netns import Lab, netns_available
from hivrrp.netlink import MONITOR_BUFFER

pytestmark = pytest.mark.netns

# Runs inside a namespace of its own: adds then removes 2,000 addresses in one
# burst, then takes the link down, and reports what the monitor delivered.
PROBE = """
import asyncio, json, subprocess, sys
from hivrrp.netlink import Monitor

async def main(buffer_bytes):
    loop = asyncio.get_running_loop()
    seen, link_down = [], asyncio.Event()

    def callback(events):
        seen.extend(events)
        if any(e[0] == "link" and e[2] == "m0" and not e[4] for e in events):
            link_down.set()

    monitor = Monitor(loop, callback, buffer_bytes=buffer_bytes)
    monitor.start()
    ip = lambda *a, **k: subprocess.run(["ip", *a], check=True, text=True, **k)
    ip("link", "add", "m0", "type", "veth", "peer", "name", "m1")
    ip("link", "set", "m0", "up")
    adds = "".join(f"addr add 10.9.{i // 250}.{i % 250 + 1}/32 dev m0\\n" for i in range(2000))
    ip("-batch", "-", input=adds)
    ip("-batch", "-", input=adds.replace("addr add", "addr del"))
    await asyncio.sleep(0.5)
    ip("link", "set", "m0", "down")
    try:
        await asyncio.wait_for(link_down.wait(), 5)
    except asyncio.TimeoutError:
        pass
    monitor.stop()
    print(json.dumps({"link_down_seen": link_down.is_set(),
                      "resync": sum(e[0] == "resync" for e in seen),
                      "deladdr": sum(e[0] == "deladdr" for e in seen)}))

asyncio.run(main(int(sys.argv[1])))
"""


def monitor_under_burst(buffer_bytes: int) -> dict:
    with Lab() as lab:
        ns = lab.netns("mon")
        proc = lab.popen(ns, sys.executable, "-c", PROBE, str(buffer_bytes),
                         stdout=-1, stderr=-1, text=True)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        return json.loads(out)


@pytest.fixture(autouse=True)
def needs_namespaces():
    reason = netns_available()
    if reason:
        pytest.skip(reason)


def test_an_overrun_is_survived_with_a_resync():
    # A tiny buffer overflows: pyroute2 then raises the overrun from every
    # later read; the monitor must resubscribe, ask for a resync and go on.
    result = monitor_under_burst(4096)
    assert result["resync"] >= 1, result
    assert result["link_down_seen"], result


def test_the_default_buffer_holds_a_burst_of_2000_removals():
    result = monitor_under_burst(MONITOR_BUFFER)
    assert result == {"link_down_seen": True, "resync": 0, "deladdr": 2000}, result
