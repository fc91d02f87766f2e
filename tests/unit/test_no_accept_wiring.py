"""no_accept through the real Daemon over a stand-in netlink: the table at start and
stop, the drops in the VIPs' trips, a reload switching accept while master."""

import asyncio
import errno

from prometheus_client.parser import text_string_to_metric_families

from helpers.fakedaemon import reload, settle, started
from helpers.nftkernel import Kernel
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.daemon.driver import now_us
from hivrrp.kernel.firewall import Firewall
from hivrrp.kernel.firewall_policy import Settings
from hivrrp.ops.control import daemon_info
from hivrrp.ops.metrics import Metrics


def run(coro):
    asyncio.run(asyncio.wait_for(coro, 10))


def text(mode: str, table: str = "") -> str:
    prefix = f"global_defs {{\n    nftables {table}\n}}\n" if table else ""
    return prefix + instance_text("VI_1", 51, ["192.0.2.51/24", "192.0.2.52/24"],
                                  extra=f"    {mode}\n" if mode else "")


async def master(d) -> None:
    i = d.plan.index["VI_1"]
    assert d.plan.engine.force(i, "MASTER", now_us(d.loop), "admin")
    d.driver.after_engine_work()
    await settle(d)


def test_a_no_accept_master_is_dropped_before_its_vips_then_released_in_order(
        tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, text("no_accept", "fw"), LINKS, ADDRESSES, monkeypatch)
        assert d.netlink.firewall_started == (Settings("fw", -1, False), {4})
        await master(d)
        assert d.netlink.drops == [(True, "192.0.2.51"), (True, "192.0.2.52"), ("vips", 2)]
        d.netlink.drops.clear()
        await d._release()
        assert d.netlink.drops == [("vips", 2), (False, "192.0.2.51"), (False, "192.0.2.52")]
        await d.shutdown()
        assert d.netlink.firewall_stopped
    run(scenario())


def test_an_accepting_daemon_needs_no_table(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, text(""), LINKS, ADDRESSES, monkeypatch)
        assert d.netlink.firewall_started == (Settings("hivrrp", -1, False), set())
        await master(d)
        assert d.netlink.drops == []
    run(scenario())


def test_a_reload_to_no_accept_and_back_while_master(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, text("accept"), LINKS, ADDRESSES, monkeypatch)
        await master(d)
        applied = len(d.netlink.applied)
        await reload(d, text("no_accept"))
        assert d.plan.states() == {"VI_1": "MASTER"}
        assert d.netlink.drops == [(True, "192.0.2.51"), (True, "192.0.2.52"), ("vips", 0)]
        d.netlink.drops.clear()
        await reload(d, text("accept"))
        assert d.netlink.drops == [("vips", 0), (False, "192.0.2.51"), (False, "192.0.2.52")]
        assert len(d.netlink.applied) == applied          # the addresses never moved
    run(scenario())


def test_a_kernel_that_cannot_filter_shows_in_metrics_and_status(tmp_path, monkeypatch):

    async def scenario():
        d = await started(tmp_path, text("no_accept"), LINKS, ADDRESSES, monkeypatch)
        kernel = Kernel()
        kernel.refuse_all = errno.EOPNOTSUPP
        firewall = Firewall(Settings("hivrrp", -1, False))
        monkeypatch.setattr(firewall, "_socket", lambda: kernel)
        firewall.start({4})
        d.netlink.firewall = firewall
        body = b"".join(Metrics(d).app({"PATH_INFO": "/metrics"}, lambda *args: None))
        return body.decode(), daemon_info(d)

    body, info = asyncio.run(asyncio.wait_for(scenario(), 10))
    got = {s.name: s.value for family in text_string_to_metric_families(body)
           for s in family.samples}
    assert got["hivrrp_nftables_unavailable"] == 1
    assert got["hivrrp_nftables_errors_total"] == 1
    assert info["firewall"]["problem"].startswith("cannot set up the nftables tables")


def test_status_says_when_no_accept_is_not_enforced(monkeypatch):
    from click.testing import CliRunner

    from hivrrp import cli

    for problem in (None, "cannot set up the nftables tables: create table: Operation not "
                          "supported"):
        reply = {"ok": True, "result": [],
                 "daemon": {"pid": 42, "firewall": {"table": "hivrrp", "problem": problem}}}
        monkeypatch.setattr(cli, "ask", lambda *a, reply=reply, **k: reply)
        result = CliRunner().invoke(cli.main, ["status", "--socket", "/nonexistent"])
        assert result.exit_code == 0, result.output
        said = "hivrrp status: no_accept is NOT enforced: cannot set up the nftables tables"
        assert (said in result.stderr) is (problem is not None), result.stderr
