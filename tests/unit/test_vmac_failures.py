"""use_vmac's failure paths without root: the rebuild loop on a deleted link,
an AF_BRIDGE dellink, settle() and resyncs or SIGTERM, non-ASCII prefixes,
one log line per refusal, deletions said done only when done, the sysctls'
own values on disk, a parent without IPv6."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct

from helpers.conf import load_text
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.daemon.lifecycle import Lifecycle
from hivrrp.kernel import vmac as vmac_module
from hivrrp.kernel.linkpolicy import LinkTable, Rebuild
from hivrrp.kernel.linkwatch import LinkWatch
from hivrrp.kernel.netlink import RTM_DELLINK, Link, _events
from hivrrp.kernel.vmac import VmacManager
from hivrrp.kernel.vmac_policy import candidate_names
from hivrrp.kernel.vmacnl import LinkInfo

# As tests/unit/test_vmac_plan.py and test_vmac_policy.py have them.
VMAC = Link(9, "vrrp.51", bytes.fromhex("00005e000133"), True)
WITH_VMAC = {**LINKS, "vrrp.51": VMAC}
POLICY_LINKS = {"eth1": LinkInfo(2, "eth1", bytes.fromhex("020000000001"), True, True, True,
                                 "veth", ipv4=tuple([0] * 40))}


def plan(tmp_path, links=None):
    from hivrrp.daemon.plan import build
    result = load_text(tmp_path, instance_text("VI_1", 51, ["192.0.2.26/24"],
                                               extra="    use_vmac\n"))
    assert result.ok, result.errors
    return build(result.config, WITH_VMAC if links is None else links, ADDRESSES, 0,
                 vmacs={"VI_1": "vrrp.51"})


def config(tmp_path, *instances: str):
    result = load_text(tmp_path, "".join(instances))
    assert result.ok, result.errors
    return result.config


def inst(name: str, vrid: int, vip: str) -> str:
    return (f"vrrp_instance {name} {{\n    interface eth1\n    virtual_router_id {vrid}\n"
            f"    use_vmac\n    virtual_ipaddress {{\n        {vip}\n    }}\n}}\n")


def macvlan(index: int, name: str, mac: str) -> LinkInfo:
    return LinkInfo(index, name, bytes.fromhex(mac), True, True, True, "macvlan", 1, 2)

GONE = ("link", 9, "vrrp.51", VMAC.mac, False, 1500)
DELLINK = ("dellink", 9, "vrrp.51")


def rebuilds(decisions) -> list:
    return [d for d in decisions if isinstance(d, Rebuild)]


# ------------------------------------------------------------------ the rebuild loop

def test_a_rebuild_that_cannot_make_the_vmac_again_asks_for_no_other(tmp_path):
    """The parent deleted (the kernel deletes its VMACs with it): the VMAC's
    deletion asks for one rebuild; that rebuild cannot make it again (no
    parent), builds on the table's links (the deleted VMAC down, its old index)
    and installs: since() must not ask for another. It used to, and the
    daemon rebuilt in a busy loop until the parent is back (netns reproduction:
    tests/netns/test_vmac_failures.py, ~400 rebuilds a second)."""
    p = plan(tmp_path)
    table = LinkTable(WITH_VMAC)
    assert rebuilds(table.handle([GONE, DELLINK], p)) == [Rebuild("VMAC vrrp.51 was deleted")]
    built_on = dict(table.links)
    again = plan(tmp_path, links=built_on)        # the rebuild's plan (same VMAC mapping)
    assert rebuilds(table.since(built_on, again)) == []


def test_a_vmac_that_left_a_bridge_is_not_made_again_and_again(tmp_path):
    """`ip link set VMAC nomaster` after enslaving it: the kernel sends an
    AF_BRIDGE RTM_DELLINK for the port (the link stays, same index), then
    RTM_NEWLINK. At most one rebuild (every rebuild used to ask for the next)."""
    p = plan(tmp_path)
    table = LinkTable(WITH_VMAC)
    table.handle([GONE, DELLINK, ("link", 9, "vrrp.51", VMAC.mac, True, 1500)], p)
    built_on = dict(table.links)
    assert rebuilds(table.since(built_on, plan(tmp_path, links=built_on))) == []


def test_a_port_leaving_its_bridge_is_not_a_deleted_link():
    name = b"vrrp.51\0"
    attr = struct.pack("=HH", 4 + len(name), 3) + name + b"\0" * (-len(name) % 4)
    up = 0x1 | 0x40
    body = struct.pack("=BxHiII", socket.AF_BRIDGE, 1, 9, up, 0) + attr
    events = _events(RTM_DELLINK, body)
    assert ("dellink", 9, "vrrp.51") not in events
    assert not any(e[0] == "link" and e[4] is False for e in events)   # nor "down"


# ------------------------------------------------------------------ settle()

def watch_for(tmp_path, links_dump):
    loop = asyncio.get_running_loop()
    p = plan(tmp_path)

    class FakeNetlink:
        async def links(self):
            return dict(links_dump)

        async def addresses(self):
            return []

    async def never(*_args):
        raise AssertionError("not called")

    lifecycle = Lifecycle(never, never, lambda: p.config)
    watch = LinkWatch(loop, FakeNetlink(), lifecycle, lambda: p, lambda actions: None,
                      lambda: None, monitor=object())
    watch.table.links = {**WITH_VMAC, "vrrp.51": Link(9, "vrrp.51", VMAC.mac, False)}
    return watch, lifecycle


def test_a_resync_during_settle_ends_the_wait(tmp_path):
    """An overrun while a reload waits for the news of the VMACs it made: the
    resync's dump shows them as expected, the reload goes on. It used to wait
    the whole VMAC_SETTLE_WAIT and log that the news was late."""
    async def scenario():
        watch, _ = watch_for(tmp_path, WITH_VMAC)           # the dump: vrrp.51 up
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiting = asyncio.ensure_future(watch.settle({"vrrp.51": (9, True)}, 2.0))
        await asyncio.sleep(0.01)
        watch.on_netlink([("resync",)])
        settled = await waiting
        return settled, loop.time() - started

    settled, took = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert settled and took < 1.0, (settled, took)


def test_sigterm_ends_a_reloads_wait_for_the_monitor(tmp_path):
    """SIGTERM while a reload waits for the monitor (which _release stops at
    once): the wait should end at once, not after VMAC_SETTLE_WAIT (5 s,
    as long as the shutdown's RELOAD_EXIT_WAIT)."""
    async def scenario():
        watch, lifecycle = watch_for(tmp_path, WITH_VMAC)
        loop = asyncio.get_running_loop()
        started = loop.time()
        waiting = asyncio.ensure_future(watch.settle({"vrrp.51": (9, True)}, 2.0))
        await asyncio.sleep(0.01)
        lifecycle.halt()
        await waiting
        return loop.time() - started

    took = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert took < 1.0, took


# ------------------------------------------------------------------ names, logs

def test_a_non_ascii_vmac_prefix_still_gives_names_the_kernel_takes():
    name = next(iter(candidate_names("vrrpé" * 4, 51, 4)))
    assert len(name.encode()) < 16, (name, len(name.encode()))


class FailingBatcher:
    """Every request refused, as a kernel that refuses the VMACs (EBUSY)."""

    def links(self):
        return dict(POLICY_LINKS)

    def send(self, requests):
        return [(position, "Device or resource busy") for position in range(len(requests))]


def test_the_same_refusal_for_every_vmac_is_said_once(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(vmac_module, "RUNNING_WAIT", 0.0)
    manager = VmacManager(netlink=None, state_path=str(tmp_path / "state.json"))
    manager.batcher = FailingBatcher()
    manager._read_path = lambda path: 0           # no sysctl to touch
    cfg = config(tmp_path, *(inst(f"VI_{v}", v, f"10.0.{v}.1/24") for v in range(1, 201)))
    with caplog.at_level(logging.ERROR, logger="hivrrp"):
        manager._ensure(cfg, [], False)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) <= 5, f"{len(errors)} ERROR lines, the first: {errors[0].getMessage()}"


class PartlyFailingBatcher(FailingBatcher):
    def __init__(self, links):
        self._links = links

    def links(self):
        return dict(self._links)


def test_a_vmac_that_could_not_be_deleted_is_not_said_deleted(tmp_path, caplog):
    from hivrrp.kernel.vmac_policy import Delete
    manager = VmacManager(netlink=None, state_path=str(tmp_path / "state.json"))
    manager.batcher = PartlyFailingBatcher({**POLICY_LINKS,
                                            "vrrp.51": macvlan(9, "vrrp.51", "00005e000133")})
    with caplog.at_level(logging.INFO, logger="hivrrp"):
        manager._delete([Delete("vrrp.51", 9, "stopping")])
    said = [r.getMessage() for r in caplog.records]
    assert not any(line.startswith("VMACs deleted") and "vrrp.51" in line for line in said), said


# ------------------------------------------------------------ the sysctls' own values on disk

def test_the_state_file_gives_back_what_it_was_given(tmp_path):
    from hivrrp.kernel.vmac_policy import ParentState, RpFilter
    from hivrrp.kernel.vmac_state import StateFile, decode, encode
    rp = RpFilter(2, 1, {3: 0})
    parents = {2: ParentState({"arp_ignore": 0, "arp_filter": 0}, {"vrrp.51"})}
    text = encode(rp, 1, parents)
    assert decode(text) == (rp, 1, parents)
    assert encode(RpFilter(), None, {}) is None          # nothing changed: no file
    state = StateFile(str(tmp_path / "run" / "s.json"))
    state.save(text)
    assert StateFile(state.path).load() == (rp, 1, parents)
    state.save(None)
    assert not (tmp_path / "run" / "s.json").exists()
    (tmp_path / "bad.json").write_text("[1]")
    assert StateFile(str(tmp_path / "bad.json")).load() is None    # said, not raised


# ------------------------------------------------------------------ a parent without IPv6

def test_a_vmac_without_ipv6_is_configured_once_its_ipv4_sysctls_are_set():
    """No IPv6 on the link (MTU < 1280, ipv6.disable=1): no address generation
    mode to set, so nothing to send again at every reload; the IPv4 devconf
    goes in a request of its own, which such a link does not refuse."""
    from types import SimpleNamespace

    from hivrrp.kernel import vmacnl
    from hivrrp.kernel.vmac import configured
    from hivrrp.kernel.vmac_policy import VMAC_SYSCTLS
    ipv4 = [0] * 40
    for key, value in VMAC_SYSCTLS.items():
        ipv4[vmacnl.DEVCONF[key] - 1] = value
    link = LinkInfo(9, "vrrp.51", bytes.fromhex("00005e000133"), True, True, True, "macvlan",
                    1, 2, ipv4=tuple(ipv4), disable_ipv6=None, addrgen=None)
    assert configured(SimpleNamespace(family=4), link)
    request = vmacnl.devconf(9, VMAC_SYSCTLS)
    assert struct.pack("=HH", 4 + 4, socket.AF_INET6) not in request[2]   # no AF_INET6 part
