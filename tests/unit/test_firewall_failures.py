"""The no_accept firewall when the kernel refuses: per family, transient or not, said
once, and never at the cost of the VIPs' own changes. Against the stand-in kernel of
tests/helpers/nftkernel.py, without root."""

from __future__ import annotations

import asyncio
import errno

import pytest

from helpers.conf import load_text
from helpers.nftkernel import Kernel, StatefulKernel, firewall_on, kind, vip
from helpers.plans import instance_text
from hivrrp.kernel import nftables as nft
from hivrrp.kernel.netlink import Netlink
from hivrrp.kernel.rtnl import messages


@pytest.fixture
def kernel():
    return StatefulKernel()


@pytest.fixture
def firewall(kernel, monkeypatch):
    return firewall_on(kernel, monkeypatch)


def test_stop_removes_the_tables_even_after_the_kernel_refused_a_family(firewall, kernel):
    firewall.start({4})
    firewall.update([vip("192.0.2.10")], [])
    assert kernel.tables == {4}
    # A reload brings the first IPv6 no_accept instance; this kernel has no ip6 nf_tables.
    kernel.refuse = {nft.NFT_MSG_NEWTABLE: errno.EAFNOSUPPORT}
    firewall.update([vip("fd00::10")], [])
    assert firewall.problem is not None
    firewall.stop()
    assert kernel.tables == set(), "the ip table outlived the daemon"


def test_a_family_the_kernel_refuses_does_not_freeze_the_other(firewall, kernel):
    firewall.start({4})
    kernel.refuse = {nft.NFT_MSG_NEWTABLE: errno.EAFNOSUPPORT}
    firewall.update([vip("fd00::10")], [])
    sent = len(kernel.batches)
    firewall.update([vip("192.0.2.11")], [])
    assert len(kernel.batches) > sent, "the IPv4 master's VIP never reached the drop set"


def test_a_transient_failure_at_start_is_retried(firewall, kernel):
    kernel.refuse = {nft.NFT_MSG_NEWCHAIN: errno.ENOMEM}
    firewall.start({4})
    assert firewall.problem is not None or not firewall.in_step
    firewall.update([vip("192.0.2.51")], [])
    assert kernel.tables == {4} and firewall.problem is None


def test_a_refused_table_read_is_said_once(firewall, kernel):
    real_send = kernel.send

    def send(data: bytes) -> int:
        parsed = list(messages(data))
        if kind(parsed[0][0]) == nft.NFT_MSG_GETTABLE:
            kernel.queue.append(Kernel._ack(parsed[0][2], errno.ERANGE))
            return len(data)
        return real_send(data)
    kernel.send = send
    firewall.start({4})
    assert firewall.problem is not None
    assert firewall.problem.count("cannot read the nftables tables") == 1, firewall.problem


def test_a_firewall_exception_does_not_cost_the_trip_its_addresses():
    applied = []

    class Batcher:
        def apply(self, changes):
            applied.extend(changes)
            return []

    class Broken:
        def update(self, add, remove):
            raise ValueError("a bug in the drop set code")

    netlink = Netlink()
    netlink.batcher, netlink.firewall = Batcher(), Broken()
    change = vip("192.0.2.51")
    try:
        asyncio.run(netlink.apply([change], drop=[change]))
    except ValueError:
        pass
    finally:
        netlink.executor.shutdown(wait=True)
    assert applied == [change]


def test_a_table_name_too_long_in_bytes_is_refused_by_check(tmp_path):
    # The kernel refuses such a name (ERANGE): no_accept would not be enforced at all.
    result = load_text(tmp_path, "global_defs {\n    nftables " + "é" * 200 + "\n}\n"
                       + instance_text("VI_1", 51, ["192.0.2.51/24"], extra="    no_accept\n"))
    said = [d.message for d in result.warnings + result.errors]
    assert "nftables table name too long - ignoring" in said


def test_a_firewall_bug_is_logged_once_and_the_sets_rebuilt_after(caplog):
    applied = []

    class Batcher:
        def apply(self, changes):
            applied.extend(changes)
            return []

    class Buggy:
        in_step = True

        def update(self, add, remove):
            raise ValueError("a bug in the drop set code")

    netlink = Netlink()
    netlink.batcher, netlink.firewall = Batcher(), Buggy()
    change = vip("192.0.2.51")
    try:
        for _ in range(3):
            asyncio.run(netlink.apply([change], drop=[change], undrop=[change]))
    finally:
        netlink.executor.shutdown(wait=True)
    assert applied == [change] * 3
    assert caplog.text.count("nftables: the drop set update failed (a bug in the drop set "
                             "code)") == 1
    assert "Traceback" in caplog.text and not netlink.firewall.in_step
