"""Whose nftables tables are whose: hivrrp's mark on its tables, what a dead run left
(under any name) removed, another's table of our name left alone, a kernel with
nf_tables built in asked, and a table removed behind the daemon's back noticed and
rebuilt. Against the stand-in kernel of tests/helpers/nftkernel.py, without root."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from helpers.nftkernel import Kernel, StatefulKernel, firewall_on, vip
from hivrrp.kernel import firewall as fw
from hivrrp.kernel import netlink
from hivrrp.kernel import nftables as nft
from hivrrp.kernel.firewall_policy import Settings
from hivrrp.ops.release import remove_tables


@pytest.fixture
def kernel():
    return Kernel()


@pytest.fixture
def firewall(kernel, monkeypatch):
    return firewall_on(kernel, monkeypatch)


def created(kernel, index=-1) -> list[tuple[int, str, bytes | None]]:
    return [nft.parse_table(body) for t, _seq, body in kernel.batches[index][1:-1]
            if t & 0xFF == nft.NFT_MSG_NEWTABLE and nft.parse_table(body)[2] is not None]


def test_the_tables_carry_the_mark_nft_shows_as_their_comment(firewall, kernel):
    firewall.start({4, 6})
    assert created(kernel) == [(4, "hivrrp", nft.MARK), (6, "hivrrp", nft.MARK)]
    # libnftnl's comment TLV: type 0, length with the NUL.
    assert nft.MARK == b"\x00\x12managed by hivrrp\x00"


def test_a_dead_runs_tables_go_whatever_their_name_and_anothers_stay(firewall, kernel,
                                                                     caplog):
    caplog.set_level(logging.INFO)
    kernel.tables = {6}                                    # ours, this name
    kernel.others = [(4, "old", nft.MARK),                 # ours, a name used before
                     (4, "keepalived", None), (6, "filter", b"\x00\x02x\x00")]
    firewall.start({4})
    assert sorted(kernel.deleted()) == [(4, "hivrrp"), (4, "old"), (6, "hivrrp")]
    assert "nftables: table ip old and ip6 hivrrp left by a previous run removed" in caplog.text
    assert firewall.tables == {4} and firewall.problem is None


def test_anothers_table_of_our_name_is_left_alone_and_that_family_said_unfiltered(
        monkeypatch, caplog):
    kernel = StatefulKernel()
    firewall = firewall_on(kernel, monkeypatch)
    kernel.others = [(4, "hivrrp", None)]                  # e.g. `nftables keepalived`
    firewall.start({4, 6})
    assert (4, "hivrrp") not in kernel.deleted()
    assert firewall.tables == {6}
    assert "no_accept is NOT enforced for IPv4: the nftables table ip hivrrp exists and " \
           "hivrrp did not make it" in caplog.text
    assert firewall.problem == ("the table ip hivrrp is not hivrrp's (no hivrrp mark): "
                                "left alone (IPv4)")
    # IPv6 filters on; IPv4's VIPs are recorded, never sent to another's table.
    firewall.update([vip("192.0.2.10"), vip("fd00::10")], [])
    assert kernel.events[-1] == "add elements 6"
    assert not any(e.endswith(" 4") for e in kernel.events)
    firewall.stop()
    assert kernel.deleted() == [(6, "hivrrp")]
    assert kernel.others == [(4, "hivrrp", None)]
    assert caplog.text.count("NOT enforced") == 1


def test_a_reload_does_not_take_over_anothers_table_either(firewall, kernel):
    kernel.others = [(6, "hivrrp", None)]
    firewall.start({4})
    firewall.update([vip("fd00::10")], [])                 # the first IPv6 no_accept VIP
    assert all(family != 6 for batch in range(len(kernel.batches))
               for family, _name in kernel.deleted(batch))
    assert "(IPv6)" in firewall.problem


def test_release_removes_every_marked_table_and_no_other(monkeypatch, kernel, caplog):
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(fw.Firewall, "_socket", lambda self: kernel)
    monkeypatch.setattr(fw, "nf_tables_present", lambda: True)
    kernel.tables = {4}
    kernel.others = [(6, "renamed", nft.MARK), (6, "hivrrp", None)]
    assert remove_tables(Settings("hivrrp", -1, False)) is None
    assert sorted(kernel.deleted()) == [(4, "hivrrp"), (6, "renamed")]
    assert "removed the nftables table ip hivrrp and ip6 renamed left over" in caplog.text
    assert "nftables: table ip6 hivrrp is not hivrrp's (it has no hivrrp mark): left alone" \
        in caplog.text


def test_a_kernel_without_marks_goes_by_the_name(monkeypatch, kernel, caplog):
    caplog.set_level(logging.INFO)
    firewall = firewall_on(kernel, monkeypatch, marks=False)
    kernel.others = [(4, "hivrrp", None), (4, "old", None)]
    firewall.start({4})
    assert kernel.deleted() == [(4, "hivrrp")]
    assert "nftables: table ip hivrrp left by a previous run replaced" in caplog.text


@pytest.mark.parametrize(("release", "keeps"), [
    ("6.18.44-fc-v1300", True), ("5.13.0", True), ("5.10.0-21-amd64", False),
    ("4.19.0", False), ("5.15rc1", True), ("weird", True)])
def test_which_kernels_keep_the_mark(release, keeps):
    assert fw.kernel_keeps_marks(release) is keeps


def test_nf_tables_is_asked_about_only_where_the_kernel_has_it(tmp_path, monkeypatch):
    monkeypatch.setattr(fw, "NF_TABLES_MODULE", str(tmp_path / "nf_tables"))
    monkeypatch.setattr(fw, "PROC_MODULES", str(tmp_path / "modules"))
    builtin = tmp_path / "modules.builtin"
    monkeypatch.setattr(fw, "MODULES_BUILTIN", str(builtin))
    assert fw.nf_tables_present()                  # no modules at all: built in if anywhere
    (tmp_path / "modules").write_text("")
    assert not fw.nf_tables_present()              # modules, and no modules.builtin to read
    builtin.write_text("kernel/net/netfilter/nf_conntrack.ko\n")
    assert not fw.nf_tables_present()              # a module, not loaded
    builtin.write_text("kernel/net/netfilter/nf_conntrack.ko\nkernel/net/netfilter/nf_tables.ko\n")
    assert fw.nf_tables_present()                  # built in
    builtin.write_text("")
    (tmp_path / "nf_tables").mkdir()
    assert fw.nf_tables_present()                  # loaded


def test_a_host_without_nf_tables_is_not_asked_when_nothing_needs_a_table(monkeypatch, kernel):
    firewall = firewall_on(kernel, monkeypatch)
    monkeypatch.setattr(fw, "nf_tables_present", lambda: False)
    firewall.start(set())
    assert firewall.remove_leftovers() == []
    assert kernel.dumps == 0 and kernel.batches == []
    firewall.start({4})                            # needed: asked (and the module loads)
    assert kernel.dumps == 1


# --------------------------------------------------- removed behind our back


def test_a_flushed_table_is_noticed_rebuilt_and_said_once_a_minute(firewall, kernel, caplog):
    firewall.start({4})
    firewall.update([vip("192.0.2.10"), vip("192.0.2.11")], [])
    sent = len(kernel.batches)
    firewall.check()
    assert len(kernel.batches) == sent                     # all there: nothing sent
    kernel.tables = set()                                  # nft flush ruleset
    firewall.check()
    assert kernel.tables == {4} and firewall.in_step and firewall.problem is None
    rebuild = kernel.kinds()
    assert rebuild[-1] == nft.NFT_MSG_NEWSETELEM
    assert kernel.batches[-1][-2][2].count(b"\x08\x00\x01\x00\xc0\x00\x02") == 2
    assert ("nftables: table ip hivrrp was removed behind hivrrp's back (`nft flush "
            "ruleset`, a restart of the nftables service?): rebuilding it with 2 drop set "
            "elements") in caplog.text
    kernel.tables = set()
    firewall.check()
    assert kernel.tables == {4}
    assert caplog.text.count("removed behind") == 1        # the next: in a summary
    assert "ERROR" not in caplog.text


def test_status_is_out_of_step_while_a_removed_table_cannot_be_made_again(firewall, kernel):
    firewall.start({4})
    kernel.tables = set()
    kernel.refuse = {nft.NFT_MSG_NEWCHAIN: 12}             # ENOMEM, once
    firewall.check()
    assert not firewall.status()["in_step"] and firewall.status()["problem"]
    assert firewall.needs_check()
    firewall.check()                                       # the next look makes it again
    assert kernel.tables == {4} and firewall.status()["in_step"]
    assert firewall.status()["problem"] is None


def test_a_release_after_a_flush_is_no_error(monkeypatch, caplog):
    """SIGTERM before the next check: the drops' removal meets no table."""
    kernel = StatefulKernel()
    firewall = firewall_on(kernel, monkeypatch)
    firewall.start({4})
    firewall.update([vip("192.0.2.10")], [])
    kernel.flush()
    firewall.update([], [vip("192.0.2.10")])
    firewall.stop()
    assert kernel.tables == set()
    assert "removed behind hivrrp's back" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_nothing_is_looked_at_without_a_table(firewall, kernel):
    firewall.start(set())
    assert not firewall.needs_check()
    firewall.check()
    assert kernel.dumps == 1                               # the start's, no other


def test_the_tables_are_looked_at_every_few_seconds_on_the_netlink_thread(monkeypatch):
    seen = []
    held = threading.Event()
    held.set()

    class Firewall:
        def __init__(self, settings):
            pass

        def start(self, families):
            pass

        def needs_check(self):
            return held.is_set()

        def check(self):
            seen.append(threading.current_thread().name)

        def stop(self):
            pass

        def close(self):
            pass

    monkeypatch.setattr(netlink, "Firewall", Firewall)
    monkeypatch.setattr(netlink, "FIREWALL_CHECK_PERIOD", 0.01)

    async def scenario():
        nl = netlink.Netlink()
        try:
            await nl.start_firewall(Settings("hivrrp", -1, False), {4})
            for _ in range(500):
                if len(seen) >= 3:
                    break
                await asyncio.sleep(0.01)
            held.clear()                                   # no table any more
            await asyncio.sleep(0.05)
            looked = len(seen)
            await asyncio.sleep(0.1)
            assert len(seen) == looked
            await nl.stop_firewall()
            assert nl.firewall_watch is None
        finally:
            nl.executor.shutdown(wait=True)

    asyncio.run(asyncio.wait_for(scenario(), 10))
    assert len(seen) >= 3 and all(name.startswith("netlink") for name in seen)
