"""no_accept through the real Daemon over a stand-in netlink: the table at start and
stop, the drops in the VIPs' trips, a reload switching accept while master, and (over
the real Netlink trip and Firewall on a stand-in kernel) transitions, reloads and a
SIGTERM interleaved, a slow trip at shutdown."""

import asyncio
import errno
import logging
import random
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers.conf import write
from helpers.fakedaemon import FakeMonitor, FakeNetlink, reload, settle, started
from helpers.nftkernel import Kernel, StatefulKernel
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.config import load
from hivrrp.daemon import wiring
from hivrrp.daemon.driver import Driver, now_us
from hivrrp.kernel.firewall import Firewall
from hivrrp.kernel.firewall_policy import Settings
from hivrrp.kernel.netlink import Netlink
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


# ------------------------------ the real Netlink trip and Firewall, a stand-in kernel


class SlowBatcher:
    """Addresses that take `delay` seconds to apply (a loaded kernel, thousands of
    VIPs); records when they were applied."""

    def __init__(self, kernel: StatefulKernel, delay: float) -> None:
        self.kernel, self.delay = kernel, delay
        self.slow = False                      # from the takeover on
        self.started = threading.Event()

    def apply(self, changes, progress=None):
        if self.slow:
            self.started.set()
            time.sleep(self.delay)
        for change in changes:
            self.kernel.events.append(f"{'add' if change.add else 'remove'} vip {change.address}")
        return []

    def close(self):
        pass


class FirewallNetlink(FakeNetlink):
    """FakeNetlink whose apply/start_firewall/stop_firewall are the real Netlink's,
    on its real worker thread, with a real Firewall over a StatefulKernel."""

    def __init__(self, links, addresses, kernel, delay) -> None:
        super().__init__(links, addresses)
        self.real = Netlink()
        self.real.batcher = SlowBatcher(kernel, delay)

    @property
    def firewall(self):
        return getattr(self, "real", None) and self.real.firewall

    @firewall.setter
    def firewall(self, value):
        pass

    async def apply(self, changes, drop=(), undrop=(), progress=None):
        return await self.real.apply(changes, drop, undrop, progress)

    async def start_firewall(self, settings, families):
        await self.real.start_firewall(settings, families)

    async def stop_firewall(self):
        await self.real.stop_firewall()

    def close(self):
        self.real.executor.shutdown(wait=True)


def shut_down_in_a_slow_trip(tmp_path, monkeypatch, kernel: StatefulKernel) -> None:
    """A no_accept master's takeover trip takes 0.6 s on the netlink thread (and so does
    the release trip after it); SIGTERM comes in the middle of the first."""
    monkeypatch.setattr(Firewall, "_socket", lambda self: kernel)
    monkeypatch.setattr("hivrrp.kernel.firewall.os.path.exists", lambda path: True)
    monkeypatch.setattr(wiring, "SHUTDOWN_WAIT", 0.2)
    netlink = FirewallNetlink(LINKS, ADDRESSES, kernel, delay=0.6)

    async def scenario():
        text = instance_text("VI_1", 51, ["192.0.2.51/24"], extra="    no_accept\n")
        monkeypatch.setattr(Driver, "open_sockets", lambda self, families, count: None)
        monkeypatch.setattr(Driver, "set_memberships", lambda self, wanted: None)
        path = write(tmp_path, "keepalived.conf", text)
        result = load(str(path), config_id="main", check_host=False)
        d = wiring.Daemon(result.config, str(path), "main", netlink=netlink,
                          monitor=FakeMonitor())
        await d.start()
        kernel.events.clear()                  # the start's own table replacement
        netlink.real.batcher.slow = True
        i = d.plan.index["VI_1"]
        assert d.plan.engine.force(i, "MASTER", now_us(d.loop), "admin")
        d.driver.after_engine_work()
        # The takeover's trip is on the netlink thread, in the slow address step.
        await asyncio.get_running_loop().run_in_executor(None, netlink.real.batcher.started.wait)
        await d.shutdown()

    asyncio.run(asyncio.wait_for(scenario(), 20))


def test_a_slow_trip_at_shutdown_removes_the_table_only_after_the_vips(tmp_path, monkeypatch,
                                                                       caplog):
    kernel = StatefulKernel()
    caplog.set_level(logging.INFO)
    shut_down_in_a_slow_trip(tmp_path, monkeypatch, kernel)
    events = kernel.events
    assert "remove vip 192.0.2.51" in events and "delete table 4" in events, events
    assert events.index("remove vip 192.0.2.51") < events.index("delete table 4"), events
    assert "nftables: cannot change" not in caplog.text, caplog.text


def test_a_table_whose_vips_outlast_the_wait_stays_for_release(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(wiring, "FIREWALL_EXIT_WAIT", 0.2)
    kernel = StatefulKernel()
    shut_down_in_a_slow_trip(tmp_path, monkeypatch, kernel)
    assert "delete table 4" not in kernel.events and kernel.tables == {4}, kernel.events
    assert "nftables: the tables stay: the VIPs are not all removed yet" in caplog.text


# ------------------------------------------- transitions, reloads, SIGTERM interleaved


def modes_text(modes: dict[str, str]) -> str:
    return "".join(instance_text(name, 51 + k, [f"192.0.2.{51 + k}/24"], extra=f"    {mode}\n")
                   for k, (name, mode) in enumerate(sorted(modes.items())))


@pytest.mark.parametrize("seed", range(12))
def test_the_drop_set_follows_masters_through_interleaved_reloads(tmp_path, monkeypatch, seed):
    """Invariant, whatever the order of transitions, reloads flipping accept, and the
    trips in flight: once settled, the drop set holds exactly the VIPs of the masters
    that filter, and at exit no table is left."""
    rng = random.Random(seed)
    kernel = StatefulKernel()
    monkeypatch.setattr(Firewall, "_socket", lambda self: kernel)
    monkeypatch.setattr("hivrrp.kernel.firewall.os.path.exists", lambda path: True)
    monkeypatch.setattr(Driver, "open_sockets", lambda self, families, count: None)
    monkeypatch.setattr(Driver, "set_memberships", lambda self, wanted: None)
    netlink = FirewallNetlink(LINKS, ADDRESSES, kernel, delay=0.0)
    names = ["VI_1", "VI_2", "VI_3"]

    async def scenario():
        modes = {n: rng.choice(["accept", "no_accept"]) for n in names}
        path = write(tmp_path, "keepalived.conf", modes_text(modes))
        result = load(str(path), config_id="main", check_host=False)
        d = wiring.Daemon(result.config, str(path), "main", netlink=netlink,
                          monitor=FakeMonitor())
        await d.start()
        for _step in range(8):
            for _ in range(rng.randint(1, 3)):
                op = rng.random()
                if op < 0.6:
                    name = rng.choice(names)
                    i = d.plan.index[name]
                    d.plan.engine.force(i, rng.choice(["MASTER", "BACKUP"]), now_us(d.loop),
                                        "admin")
                    d.driver.after_engine_work()
                else:
                    modes[rng.choice(names)] = rng.choice(["accept", "no_accept"])
                    write(tmp_path, "keepalived.conf", modes_text(modes))
                    d.lifecycle.request_reload()
                await asyncio.sleep(rng.choice([0, 0, 0.001, 0.01]))
            await settle(d)
            states = d.plan.states()
            want = {f"192.0.2.{51 + k}" for k, n in enumerate(sorted(modes))
                    if states[n] == "MASTER" and modes[n] == "no_accept"}
            have = {".".join(str(b) for b in e[2]) for e in d.netlink.firewall.drops.elements}
            assert have == want, (states, modes)
            assert d.netlink.firewall.in_step
        # SIGTERM with a transition and a reload in flight.
        i = d.plan.index[rng.choice(names)]
        d.plan.engine.force(i, "MASTER", now_us(d.loop), "admin")
        d.driver.after_engine_work()
        modes[rng.choice(names)] = rng.choice(["accept", "no_accept"])
        write(tmp_path, "keepalived.conf", modes_text(modes))
        d.lifecycle.request_reload()
        await asyncio.sleep(rng.choice([0, 0.001, 0.01]))
        d.lifecycle.halt()
        await d.shutdown()

    asyncio.run(asyncio.wait_for(scenario(), 60))
    assert kernel.tables == set()
