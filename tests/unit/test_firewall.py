"""The no_accept firewall's transactions against a stand-in for the kernel's nfnetlink:
framing, one transaction per update, the rebuild after a refused one, and the loud
fallback when the kernel cannot filter. The real kernel: tests/netns/test_no_accept.py."""

import errno
import logging
import socket

import pytest

from helpers.nftkernel import Kernel, kind, vip
from hivrrp.kernel import nftables as nft
from hivrrp.kernel.addrbatch import Change
from hivrrp.kernel.firewall import Firewall
from hivrrp.kernel.firewall_policy import Settings
from hivrrp.kernel.rtnl import HEADER, messages


@pytest.fixture
def kernel():
    return Kernel()


@pytest.fixture
def firewall(kernel, monkeypatch):
    fw = Firewall(Settings("hivrrp", -1, False), clock=lambda: 0.0)
    monkeypatch.setattr(fw, "_socket", lambda: kernel)
    monkeypatch.setattr("hivrrp.kernel.firewall.os.path.exists", lambda path: True)
    return fw


def vips(count: int, family: int = 4) -> list[Change]:
    if family == 4:
        return [Change(True, 2, 4, f"10.{i >> 8}.{i & 255}.1", 24) for i in range(count)]
    return [Change(True, 2, 6, f"fd00::{i + 1:x}", 64) for i in range(count)]


def test_batch_framing_numbers_every_message_and_acks_begin_and_end():
    data, begin, end = nft.batch([nft.delete_table(4, "t")[0]], 41)
    parsed = list(messages(data))
    assert [(t, seq) for t, _f, seq, _b in parsed] == [
        (nft.NFNL_MSG_BATCH_BEGIN, 41), ((10 << 8) | nft.NFT_MSG_NEWTABLE, 42),
        (nft.NFNL_MSG_BATCH_END, 43)]
    assert (begin, end) == (41, 43)
    acks = [bool(flags & 0x4) for _t, flags, _s, _b in parsed]
    assert acks == [True, False, True]


def test_thousands_of_elements_split_below_the_attribute_length_limit():
    keys = [socket.inet_pton(socket.AF_INET6, f"fe80::{i + 1:x}") + b"\0\0\0\2"
            for i in range(5000)]
    out = nft.set_elements(6, "hivrrp", "vips_link_local", keys, True)
    assert len(out) == 5
    for message in out:
        # The element list attribute's 16-bit length must hold it.
        assert len(message) - HEADER.size - 4 < 0xFFFF
    assert sum(message.count(b"\xfe\x80") for message in out) == 5000


def test_start_makes_the_tables_in_one_transaction(firewall, kernel, caplog):
    caplog.set_level(logging.INFO)
    firewall.start({4, 6})
    assert len(kernel.batches) == 1
    kinds = kernel.kinds()
    # Each table "added" and deleted (whatever was there), then made.
    assert kinds[:2] == [nft.NFT_MSG_NEWTABLE, nft.NFT_MSG_DELTABLE]
    assert kinds.count(nft.NFT_MSG_NEWRULE) == 2 + 8
    assert firewall.tables == {4, 6} and firewall.problem is None
    assert "nftables: table ip hivrrp and ip6 hivrrp created for no_accept (priority -1)" \
        in caplog.text


def test_a_killed_runs_table_is_replaced_and_an_unneeded_one_removed(firewall, kernel, caplog):
    caplog.set_level(logging.INFO)
    kernel.tables = {4, 6}
    firewall.start({4})
    kinds = kernel.kinds()
    assert kinds.count(nft.NFT_MSG_DELTABLE) == 2 and kinds.count(nft.NFT_MSG_NEWSET) == 1
    assert "nftables: table ip hivrrp left by a previous run replaced" in caplog.text
    assert "nftables: table ip6 hivrrp left by a previous run removed" in caplog.text


def test_nothing_needed_nothing_left_nothing_sent(firewall, kernel):
    firewall.start(set())
    assert kernel.batches == []


def test_4000_masters_are_one_transaction_and_only_the_difference_is_sent(firewall, kernel):
    firewall.start({4})
    firewall.update(vips(4000), [])
    assert len(kernel.batches) == 2
    assert set(kernel.kinds()) == {nft.NFT_MSG_NEWSETELEM}
    assert firewall.status()["elements"] == 4000
    firewall.update(vips(4000), [])          # all there already: nothing to send
    assert len(kernel.batches) == 2
    firewall.update([], vips(4000)[:10])
    assert kernel.kinds() == [nft.NFT_MSG_DELSETELEM]
    assert firewall.transactions == 3 and firewall.failures == 0


def test_a_refused_transaction_rebuilds_the_tables_whole(firewall, kernel, caplog):
    firewall.start({4})
    firewall.update(vips(3), [])
    kernel.refuse = {nft.NFT_MSG_DELSETELEM: errno.ENOENT}   # someone flushed the set
    firewall.update([], vips(1))
    assert firewall.failures == 1
    assert "nftables: cannot change 1 drop set element: delete set elements: " in caplog.text
    # The rebuild: the table replaced with the two elements it must hold, in one go.
    rebuild = kernel.batches[-1]
    assert kind(rebuild[1][0]) == nft.NFT_MSG_NEWTABLE
    assert kind(rebuild[-2][0]) == nft.NFT_MSG_NEWSETELEM
    assert rebuild[-2][2].count(b"\x08\x00\x01\x00\x0a") == 2     # two 10.x keys
    assert firewall.in_step and firewall.tables == {4}


def test_a_family_first_needed_at_a_reload_gets_its_table_in_the_same_transaction(
        firewall, kernel):
    firewall.start({4})
    firewall.update(vips(1, 6), [])
    assert kernel.kinds()[:3] == [nft.NFT_MSG_NEWTABLE, nft.NFT_MSG_DELTABLE,
                                  nft.NFT_MSG_NEWTABLE]
    assert kernel.kinds()[-1] == nft.NFT_MSG_NEWSETELEM
    assert firewall.tables == {4, 6}


def test_a_kernel_that_cannot_filter_is_said_loudly_once_and_not_asked_again(
        firewall, kernel, caplog):
    kernel.refuse_all = errno.EOPNOTSUPP                     # no nf_tables
    firewall.start({4})
    assert "no_accept is NOT enforced" in caplog.text
    assert firewall.status()["problem"].startswith("cannot set up the nftables tables")
    sent = len(kernel.batches)
    firewall.update(vips(10), [])
    firewall.stop()
    assert len(kernel.batches) == sent
    assert caplog.text.count("NOT enforced") == 1
    assert firewall.status()["elements"] == 10               # what it would hold


def test_stop_removes_the_tables_it_made(firewall, kernel, caplog):
    caplog.set_level(logging.INFO)
    firewall.start({4, 6})
    firewall.stop()
    assert kernel.kinds() == [nft.NFT_MSG_NEWTABLE, nft.NFT_MSG_DELTABLE] * 2
    assert "nftables: table ip hivrrp and ip6 hivrrp removed" in caplog.text
    assert firewall.tables == set()


def test_release_removes_only_what_a_dead_daemon_left(firewall, kernel):
    kernel.tables = {6}
    assert firewall.remove_leftovers() == [(6, "hivrrp")]
    assert kernel.kinds() == [nft.NFT_MSG_NEWTABLE, nft.NFT_MSG_DELTABLE]
    kernel.tables = set()
    assert firewall.remove_leftovers() == []
    assert len(kernel.batches) == 1


def test_a_kernel_that_stops_filtering_midway_is_said_once_and_left_alone(firewall, kernel,
                                                                          caplog):
    firewall.start({4})
    kernel.refuse_all = errno.EPERM
    firewall.update(vips(2), [])
    assert len(kernel.batches) == 2              # start, the refused one: no rebuild tried
    firewall.update(vips(4), [])
    assert len(kernel.batches) == 2              # nor any later change
    assert caplog.text.count("no_accept is NOT enforced") == 1
    assert firewall.status()["problem"].startswith("cannot change 2 drop set elements")


def test_a_shared_vip_stays_dropped_while_one_of_its_masters_holds_it(firewall, kernel):
    firewall.start({4})
    firewall.update([vip("192.0.2.10", index=2)], [])       # master A on eth0
    firewall.update([vip("192.0.2.10", index=3)], [])       # master B on eth1
    firewall.update([], [vip("192.0.2.10", index=2)])       # A leaves; B is master still
    assert len(firewall.drops.elements) == 1
    assert nft.NFT_MSG_DELSETELEM not in kernel.kinds()
