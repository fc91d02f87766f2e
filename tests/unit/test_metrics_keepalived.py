"""`--metrics-compat keepalived-exporter`: mehdy/keepalived-exporter's families,
read back with prometheus-client's text parser.

The reference is the exporter itself: EXPORTER_STATS and exporter_samples()
follow its collector (internal/collector/collector.go, parser.go), so the
compat families are checked against what that exporter would serve if it
read hivrrp's own SIGUSR1/SIGUSR2 files (hivrrp.ops.dumpfiles)."""

import asyncio
import os
import signal
import urllib.request

import pytest
from click.testing import CliRunner
from hivrrp._wire import RxBatch, encode, ipv4_packet
from prometheus_client.parser import text_string_to_metric_families

from helpers.conf import write
from helpers.fakedaemon import FakeMonitor, FakeNetlink, FakeSocket, settle, started
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp import cli
from hivrrp.config import load
from hivrrp.daemon.driver import Driver
from hivrrp.daemon.wiring import Daemon
from hivrrp.kernel.announce import Announcer
from hivrrp.ops.control import dump_of, snapshot
from hivrrp.ops.dumpfiles import text_of
from hivrrp.ops.metrics import Metrics

# The exporter's counter families and the keepalived.stats line each reads
# (collector.go fillMetrics() + parser.go ParseStats()): (section, key) or (key,).
EXPORTER_STATS = {
    "keepalived_advertisements_received_total": ("Advertisements", "Received"),
    "keepalived_advertisements_sent_total": ("Advertisements", "Sent"),
    "keepalived_become_master_total": ("Became master",),
    "keepalived_release_master_total": ("Released master",),
    "keepalived_packet_length_errors_total": ("Packet Errors", "Length"),
    "keepalived_advertisements_interval_errors_total": ("Packet Errors", "Advertisement Interval"),
    "keepalived_ip_ttl_errors_total": ("Packet Errors", "TTL"),
    "keepalived_invalid_type_received_total": ("Packet Errors", "Invalid Type"),
    "keepalived_address_list_errors_total": ("Packet Errors", "Address List"),
    "keepalived_authentication_invalid_total": ("Authentication Errors", "Invalid Type"),
    "keepalived_authentication_mismatch_total": ("Authentication Errors", "Type Mismatch"),
    "keepalived_authentication_failure_total": ("Authentication Errors", "Failure"),
    "keepalived_priority_zero_received_total": ("Priority Zero", "Received"),
    "keepalived_priority_zero_sent_total": ("Priority Zero", "Sent"),
}
STATES = ("INIT", "BACKUP", "MASTER", "FAULT")          # parser.go VRRPStates


def parse_stats(text: str) -> dict:
    """parser.go ParseStats(): instance -> {(section, key) or (key,): value}."""
    stats: dict = {}
    instance = section = ""
    for line in text.splitlines():
        if line.startswith("VRRP Instance") and ":" in line:
            instance = line.strip().split(":")[1].strip()
            stats[instance] = {}
        elif line.startswith("  ") and line.endswith(":"):
            section = line.strip().split(":")[0].strip()
        elif line.startswith("    ") and section:
            key, value = (p.strip() for p in line.strip().split(":")[:2])
            stats[instance][(section, key)] = int(value)
        elif line.startswith("  "):
            key, value = (p.strip() for p in line.strip().split(":")[:2])
            section = ""
            stats[instance][(key,)] = int(value)
    return stats


def parse_data(text: str) -> tuple[dict, dict]:
    """parser.go ParseVRRPData() and ParseVRRPScript(), the fields the collector reads."""
    data: dict = {}
    instance = key = ""
    for line in text.splitlines():
        if line.startswith(" VRRP Instance") and "=" in line:
            instance = line.strip().split("=")[1].strip()
            data[instance] = {"vips": [], "intf": "", "state": None, "vrid": None}
        elif line.startswith("   ") and instance:
            if line.startswith("     "):
                value = line.strip()
            else:
                sep = "=" if "=" in line else ":" if ":" in line else None
                if sep is None:
                    continue
                parts = line.strip().split(sep)
                key = parts[0].strip()
                if key == "Virtual IP":
                    continue
                value = parts[1].strip()
            if key.startswith("Virtual IP (") and value:
                data[instance]["vips"].append(value)
            if key == "State":
                data[instance]["state"] = STATES.index(value)
            elif key == "Interface":
                data[instance]["intf"] = value
            elif key == "Virtual Router ID":
                data[instance]["vrid"] = value
        elif not (line.startswith(" VRRP Version") or line.startswith(" VRRP Script")):
            instance = ""
    scripts, name = {}, ""
    for line in text.splitlines():
        if line.startswith(" VRRP Script") and "=" in line:
            name = line.strip().split("=")[1].strip()
        elif line.startswith("   ") and name and "=" in line:
            key, value = (p.strip() for p in line.strip().split("=")[:2])
            if key == "Status":
                scripts[name] = ("BAD", "GOOD").index(value)
        elif not line.startswith("    "):
            name = ""
    return data, scripts


def exporter_samples(stats_text: str, data_text: str) -> dict:
    """collector.go Collect() over the two files: (name, labels) -> value."""
    stats, (data, scripts) = parse_stats(stats_text), parse_data(data_text)
    out = {("keepalived_up", frozenset()): 1.0}
    for name, d in data.items():
        common = {"iname": name, "intf": d["intf"], "vrid": d["vrid"]}
        for family, line in EXPORTER_STATS.items():
            out[(family, frozenset(common.items()))] = float(stats[name].get(line, 0))
        for vip in d["vips"]:
            args = vip.split(" ")          # ParseVIP(): address, "dev", interface, ...
            labels = {**common, "intf": args[2], "ip_address": args[0]}
            out[("keepalived_vrrp_state", frozenset(labels.items()))] = float(d["state"])
        if not d["vips"]:
            labels = {**common, "ip_address": ""}
            out[("keepalived_vrrp_state", frozenset(labels.items()))] = float(d["state"])
    for name, status in scripts.items():
        out[("keepalived_script_status", frozenset({("name", name)}))] = float(status)
    return out


def scrape(metrics: Metrics) -> str:
    return b"".join(metrics.app({"PATH_INFO": "/metrics"}, lambda *a: None)).decode()


def samples(body: str, prefix: str = "keepalived_") -> dict:
    """(sample name, frozenset of labels) -> value, from the official parser;
    a duplicate series fails."""
    out: dict = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name.startswith(prefix):
                key = (s.name, frozenset(s.labels.items()))
                assert key not in out, f"duplicate series {key}"
                out[key] = s.value
    return out


def types(body: str) -> dict:
    return {f.name: f.type for f in text_string_to_metric_families(body)
            if f.name.startswith("keepalived_")}


async def until(predicate, timeout=5.0):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


def ttl_error_for(d, vrid: int) -> None:
    message = encode(version=2, vrid=vrid, priority=100, interval=1,
                     addresses=["192.0.2.51"], src="192.0.2.9", dst="224.0.0.18")
    batch = RxBatch(1)
    batch.add_ipv4(ipv4_packet(message, "192.0.2.9", "224.0.0.18", ttl=1), ifindex=2)
    d.plan.engine.receive(batch, 0)


def scripts_text(tmp_path) -> str:
    good, bad = tmp_path / "good.sh", tmp_path / "bad.sh"
    good.write_text("#!/bin/sh\nexit 0\n")
    bad.write_text("#!/bin/sh\nexit 1\n")
    good.chmod(0o755)
    bad.chmod(0o755)
    return "".join(f'vrrp_script {name} {{\n    script "{path}"\n    interval 5\n'
                   f'    weight -10\n}}\n' for name, path in (("good", good), ("bad", bad)))


TRACK = "    track_script {\n        good\n        bad\n    }\n"


def test_the_compat_families_are_what_the_exporter_would_read_from_our_dump_files(
        tmp_path, monkeypatch):
    text = (scripts_text(tmp_path)
            + instance_text("VI_1", 51, ["192.0.2.51/24", "192.0.2.61"], priority=150,
                            extra=TRACK)
            + instance_text("VI_2", 52, ["198.51.100.52/24"], interface="eth1", priority=255))

    async def scenario():
        d = await started(tmp_path, text, LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        ttl_error_for(d, 51)
        policy = d.trackers.policy
        assert await until(lambda: None not in (policy.statuses[("script", "good")],
                                                policy.statuses[("script", "bad")]))
        body = scrape(Metrics(d, "keepalived-exporter"))
        dump = dump_of(snapshot(d))
        await d.shutdown()
        return body, text_of("stats", dump), text_of("data", dump)

    body, stats, data = asyncio.run(asyncio.wait_for(scenario(), 20))
    got = samples(body)
    expected = exporter_samples(stats, data)
    assert len(expected) == 1 + 2 * len(EXPORTER_STATS) + 3 + 2     # up, counters, VIPs, scripts
    # Every series the exporter would serve, with its value.
    assert {k: got.get(k) for k in expected} == expected
    # And only the garp family besides (hivrrp's data file does not write that line).
    assert {name for name, _ in got} - {name for name, _ in expected} == {
        "keepalived_gratuitous_arp_delay_total"}
    # Known values, so the comparison above is not equal-but-empty.
    vi1 = {"iname": "VI_1", "intf": "eth0", "vrid": "51"}
    vi2 = {"iname": "VI_2", "intf": "eth1", "vrid": "52"}
    assert got[("keepalived_ip_ttl_errors_total", frozenset(vi1.items()))] == 1
    assert got[("keepalived_become_master_total", frozenset(vi2.items()))] == 1
    assert got[("keepalived_advertisements_sent_total", frozenset(vi2.items()))] >= 1
    # One series per VIP: "/len" unless a host address, as keepalived prints it.
    states = {dict(k)["ip_address"]: v for (n, k), v in got.items()
              if n == "keepalived_vrrp_state"}
    assert states == {"192.0.2.51/24": 1, "192.0.2.61": 1, "198.51.100.52/24": 2}
    assert got[("keepalived_script_status", frozenset({("name", "good")}))] == 1
    assert got[("keepalived_script_status", frozenset({("name", "bad")}))] == 0
    assert got[("keepalived_up", frozenset())] == 1
    kinds = types(body)
    assert kinds["keepalived_up"] == kinds["keepalived_vrrp_state"] == "gauge"
    assert all(kinds[f[:-len("_total")]] == "counter" for f in EXPORTER_STATS)


def test_vip_dev_excluded_vips_no_vips_and_garp_delay(tmp_path, monkeypatch):
    text = ("global_defs {\n    vrrp_garp_master_delay 3\n}\n"
            + instance_text("VI_1", 51, ["192.0.2.51/24 dev eth1", "192.0.2.51/24 dev eth1"],
                            extra="    garp_master_delay 7.9\n"
                                  "    virtual_ipaddress_excluded {\n"
                                  "        203.0.113.9/32\n        203.0.113.10/28 dev eth1\n"
                                  "    }\n")
            + instance_text("VI_2", 52, [], interface="eth1", priority=255))

    async def scenario():
        d = await started(tmp_path, text, LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        body = scrape(Metrics(d, "keepalived-exporter"))
        await d.shutdown()
        return body

    got = samples(asyncio.run(asyncio.wait_for(scenario(), 20)))

    def series(name):
        return {frozenset(labels): v for (n, labels), v in got.items() if n == name}

    base1 = {("iname", "VI_1"), ("vrid", "51")}
    assert series("keepalived_vrrp_state") == {
        # The VIP's own dev (keepalived prints its ifp), written twice: one series.
        frozenset(base1 | {("intf", "eth1"), ("ip_address", "192.0.2.51/24")}): 1,
        # No VIPs: one series, the instance's interface, no address.
        frozenset({("iname", "VI_2"), ("vrid", "52"), ("intf", "eth1"),
                   ("ip_address", "")}): 2}
    assert series("keepalived_vrrp_excluded_state") == {
        frozenset(base1 | {("intf", "eth0"), ("ip_address", "203.0.113.9")}): 1,
        frozenset(base1 | {("intf", "eth1"), ("ip_address", "203.0.113.10/28")}): 1}
    # Whole seconds (keepalived's %u of garp_delay / TIMER_HZ); the global default else.
    assert series("keepalived_gratuitous_arp_delay_total") == {
        frozenset(base1 | {("intf", "eth0")}): 7,
        frozenset({("iname", "VI_2"), ("vrid", "52"), ("intf", "eth1")}): 3}


def test_off_unless_asked_and_up_zero_before_a_plan(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, instance_text("VI_1", 51, ["192.0.2.51/24"]),
                          LINKS, ADDRESSES, monkeypatch)
        plain, compat = scrape(Metrics(d)), Metrics(d, "keepalived-exporter")
        plan, d.plan = d.plan, None
        early = scrape(compat)
        d.plan = plan
        await d.shutdown()
        return plain, early

    plain, early = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert "keepalived_" not in plain and 'vrrp_instance="VI_1"' in plain
    assert samples(early) == {("keepalived_up", frozenset()): 0}
    with pytest.raises(ValueError, match="keepalived-exporter"):
        Metrics(None, "keepalived_exporter")


def test_the_option_needs_metrics_and_is_in_the_help():
    result = CliRunner().invoke(cli.main, ["run", "--metrics-compat", "keepalived-exporter"])
    assert result.exit_code == 2 and "--metrics-compat needs --metrics" in result.output
    result = CliRunner().invoke(cli.main, ["run", "--metrics", "127.0.0.1",
                                           "--metrics-compat", "keepalived"])
    assert result.exit_code == 2 and "keepalived-exporter" in result.output
    assert "--metrics-compat" in CliRunner().invoke(cli.main, ["run", "--help"]).output


def test_the_daemon_serves_them_over_http(tmp_path, monkeypatch):
    """Daemon(metrics=(addr, port, compat)), as `hivrrp run` hands it, through main()."""
    monkeypatch.setattr(Driver, "open_sockets", lambda self, families, count: None)
    monkeypatch.setattr(Driver, "set_memberships", lambda self, wanted: None)

    def fake_sockets(self):   # no GARP may leave this test
        self.packet_socket = self.icmp6_socket = FakeSocket([])
    monkeypatch.setattr(Announcer, "_sockets", fake_sockets)
    conf = write(tmp_path, "keepalived.conf",
                 instance_text("VI_1", 51, ["192.0.2.51/24"], priority=255))
    result = load(str(conf), config_id="main", check_host=False)

    async def scenario():
        daemon = Daemon(result.config, str(conf), "main", netlink=FakeNetlink(LINKS, ADDRESSES),
                        monitor=FakeMonitor(), metrics=("127.0.0.1", 0, "keepalived-exporter"))
        main = asyncio.create_task(daemon.main())
        assert await until(lambda: daemon.metrics is not None and daemon.plan is not None
                           and daemon.plan.state("VI_1") == "MASTER")
        port = daemon.metrics.server.server_address[1]

        def fetch():
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                return r.read().decode()

        body = await asyncio.get_running_loop().run_in_executor(None, fetch)
        os.kill(os.getpid(), signal.SIGTERM)      # the daemon's own handler takes it
        assert await asyncio.wait_for(main, 10) == 0
        return body

    got = samples(asyncio.run(asyncio.wait_for(scenario(), 20)))
    labels = {("iname", "VI_1"), ("intf", "eth0"), ("vrid", "51"),
              ("ip_address", "192.0.2.51/24")}
    assert got[("keepalived_vrrp_state", frozenset(labels))] == 2
    assert got[("keepalived_up", frozenset())] == 1
