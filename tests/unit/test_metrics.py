"""The scrape, read back with prometheus-client's own text parser and compared
with the engine and `status` (no sockets: the WSGI app is called directly)."""

import asyncio

from hivrrp._wire import RxBatch, encode, ipv4_packet
from prometheus_client.parser import text_string_to_metric_families

from helpers.fakedaemon import settle, started
from helpers.plans import ADDRESSES, LINKS, instance_text
from hivrrp.ops.control import instance_rows
from hivrrp.ops.metrics import Metrics, parse_address

TEXT = (instance_text("VI_1", 51, ["192.0.2.51/24", "192.0.2.61/24"], priority=150)
        + instance_text("VI_2", 52, ["198.51.100.52/24"], interface="eth1", priority=255))


def scrape(metrics: Metrics) -> tuple[str, bytes, dict]:
    got = {}

    def start_response(status, headers):
        got["status"], got["headers"] = status, dict(headers)

    body = b"".join(metrics.app({"PATH_INFO": "/metrics"}, start_response))
    return got["status"], body, got["headers"]


def samples(body: bytes) -> dict:
    """(sample name, frozenset of labels) -> value, from the official parser."""
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def labels(name, vrid, interface, **extra):
    return frozenset({"vrrp_instance": name, "interface": interface, "vrid": str(vrid),
                      "family": "ipv4", **extra}.items())


def test_the_scrape_says_what_status_and_the_engine_say(tmp_path, monkeypatch):
    async def scenario():
        d = await started(tmp_path, TEXT, LINKS, ADDRESSES, monkeypatch)
        await settle(d)          # the master's VIP is in
        d.plan.engine.set_priority_delta(0, -20, 0)
        # An advert with a bad TTL on eth0, and one for a VRID nobody has there.
        for vrid, ttl in ((51, 1), (99, 255)):
            message = encode(version=2, vrid=vrid, priority=100, interval=1,
                             addresses=["192.0.2.51"], src="192.0.2.9", dst="224.0.0.18")
            batch = RxBatch(1)
            batch.add_ipv4(ipv4_packet(message, "192.0.2.9", "224.0.0.18", ttl=ttl), ifindex=2)
            d.plan.engine.receive(batch, 0)
        metrics = Metrics(d)
        status, body, headers = scrape(metrics)
        return d, status, body, headers, instance_rows(d)

    d, status, body, headers, rows = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert status == "200 OK"
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    got = samples(body)
    vi1, vi2 = labels("VI_1", 51, "eth0"), labels("VI_2", 52, "eth1")
    codes = {"INIT": 0, "BACKUP": 1, "MASTER": 2, "FAULT": 3}
    for row, key in zip(rows, (vi1, vi2)):
        assert got[("hivrrp_instance_state", key)] == codes[row["state"]]
        assert got[("hivrrp_instance_priority", key)] == row["priority"]
        assert got[("hivrrp_instance_base_priority", key)] == row["base_priority"]
        assert abs(got[("hivrrp_instance_last_transition_timestamp_seconds", key)]
                   - (row["last_transition"] or 0)) < 0.01
    assert got[("hivrrp_instance_priority", vi1)] == 130       # 150 - 20
    assert got[("hivrrp_instance_state", vi2)] == 2
    counters = d.plan.engine.counters(1)
    assert got[("hivrrp_adverts_sent_total", vi2)] == counters["adverts_sent"] >= 1
    assert got[("hivrrp_became_master_total", vi2)] == 1
    assert got[("hivrrp_instance_receive_errors_total", vi2 | {("reason", "ttl")})] == 0
    assert got[("hivrrp_v3_checksum_reading_total",
                vi1 | {("reading", "pseudo_header")})] == 0
    info = vi2 | {("version", "2"), ("vips", "198.51.100.52"), ("master", "198.51.100.1"),
                  ("leader", "")}
    assert got[("hivrrp_instance_info", info)] == 1
    info1 = vi1 | {("version", "2"), ("vips", "192.0.2.51,192.0.2.61"), ("master", ""),
                   ("leader", "")}
    assert got[("hivrrp_instance_info", info1)] == 1
    # The daemon's own families and prometheus-client's process metrics.
    assert got[("hivrrp_vip_changes_total", frozenset({("action", "add")}))] == 1
    assert ("hivrrp_reloads_total", frozenset({("result", "ok")})) in got
    assert ("hivrrp_timer_wakeups_total", frozenset({("result", "empty")})) in got
    for sock in ("packet", "raw"):
        assert got[("hivrrp_advert_send_errors_total", frozenset({("socket", sock)}))] == 0
    assert any(name == "process_cpu_seconds_total" for name, _ in got)
    assert any(name == "hivrrp_build_info" for name, _ in got)
    errors = {dict(k)["reason"]: v for (n, k), v in got.items()
              if n == "hivrrp_receive_errors_total" and dict(k)["interface"] == "eth0"}
    assert errors == {"ttl": 1, "unknown_vrid": 1}
    assert got[("hivrrp_instance_receive_errors_total", vi1 | {("reason", "ttl")})] == 1
    # `instance` is Prometheus's target label (host:port): ours would arrive as
    # exported_instance.
    assert not [key for key in got if "instance" in dict(key[1])]


def test_tracker_families(tmp_path, monkeypatch):
    health = tmp_path / "health"
    health.write_text("3\n")
    text = (f"track_file health {{\n    file {health}\n}}\n"
            + instance_text("VI_1", 51, ["192.0.2.51/24"],
                            extra="    track_file {\n        health weight -2 reverse\n    }\n"))

    async def scenario():
        d = await started(tmp_path, text, LINKS, ADDRESSES, monkeypatch)
        return scrape(Metrics(d))[1]

    got = samples(asyncio.run(asyncio.wait_for(scenario(), 10)))
    assert got[("hivrrp_tracker_up", frozenset({("tracker", "health"), ("kind", "file")}))] == 0
    assert got[("hivrrp_tracker_weight",
                frozenset({("tracker", "health"), ("vrrp_instance", "VI_1")}))] == 2


def test_other_paths_and_addresses():
    metrics = Metrics.__new__(Metrics)
    seen = {}
    body = b"".join(Metrics.app(metrics, {"PATH_INFO": "/x"},
                                lambda status, headers: seen.update(status=status)))
    assert seen["status"].startswith("404") and b"/metrics" in body
    assert parse_address("127.0.0.1") == ("127.0.0.1", 9736)
    assert parse_address("[::1]:9100") == ("::1", 9100)
    for bad in ("host:port", "1.2.3.4:0", ":65536"):
        try:
            parse_address(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad} accepted")


def test_the_grafana_dashboard_asks_only_for_series_the_daemon_exports(tmp_path, monkeypatch):
    import json
    import re
    from pathlib import Path

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "conf" /
                            "grafana-hivrrp.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    wanted = {m for e in exprs for m in re.findall(r"\b(?:hivrrp|process)_[a-z0-9_]+", e)}

    health = tmp_path / "health"
    health.write_text("0\n")
    text = f"track_file health {{\n    file {health}\n}}\n" + TEXT.replace(
        "    priority 150", "    priority 150\n    track_file {\n        health\n    }")

    async def scenario():
        d = await started(tmp_path, text, LINKS, ADDRESSES, monkeypatch)
        await settle(d)
        # Drop counters appear with their first drop.
        message = encode(version=2, vrid=99, priority=100, interval=1,
                         addresses=["192.0.2.51"], src="192.0.2.9", dst="224.0.0.18")
        batch = RxBatch(1)
        batch.add_ipv4(ipv4_packet(message, "192.0.2.9", "224.0.0.18"), ifindex=2)
        d.plan.engine.receive(batch, 0)
        return scrape(Metrics(d))[1]

    got = samples(asyncio.run(asyncio.wait_for(scenario(), 10)))
    exported = {name for name, _ in got}
    assert len(wanted) >= 12
    assert wanted <= exported, wanted - exported
    # Labels asked for (selectors, by clauses, legends) are the series' own or the
    # target labels Prometheus adds: job, and instance (the router's host:port).
    labels = {label for _, key in got for label, _ in key} | {"job", "instance"}
    asked = {m for e in exprs for m in re.findall(r"[{,]\s*([a-z_]+)\s*=~?", e)}
    asked |= {m for e in exprs for clause in re.findall(r"\bby \(([^)]*)\)", e)
              for m in re.findall(r"[a-z_]+", clause)}
    legends = [t.get("legendFormat", "") for p in dashboard["panels"] for t in p["targets"]]
    asked |= {m for legend in legends for m in re.findall(r"{{\s*([a-z_]+)\s*}}", legend)}
    assert asked <= labels, asked - labels


def dashboard_targets() -> list[dict]:
    import json
    from pathlib import Path

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "conf" /
                            "grafana-hivrrp.json").read_text())
    return [t for p in dashboard["panels"] for t in p["targets"]]


def test_the_dashboard_shows_each_router_apart():
    """Two routers scraped by one job differ only in Prometheus's `instance`:
    an aggregation that drops it merges them into one line."""
    import re

    targets = dashboard_targets()
    aggregated = [t for t in targets if re.search(r"\b(sum|count|avg|max|min)\b", t["expr"])]
    assert len(aggregated) >= 8
    for t in aggregated:
        clauses = re.findall(r"\b(?:sum|count|avg|max|min) by \(([^)]*)\)", t["expr"])
        assert clauses and all("instance" in re.findall(r"[a-z_]+", c) for c in clauses), t
        assert "{{instance}}" in t["legendFormat"], t
    # A VRRP instance's own series name it by vrrp_instance, and the router too.
    for t in targets:
        if "hivrrp_instance_" in t["expr"] and t not in aggregated:
            assert "{{vrrp_instance}}" in t["legendFormat"], t
            assert "{{instance}}" in t["legendFormat"], t
