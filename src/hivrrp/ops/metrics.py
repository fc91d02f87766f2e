"""Prometheus metrics: `hivrrp run --metrics ADDR:PORT` (off unless asked; port 9736).

Per-instance series carry the instance's name as `vrrp_instance`: `instance`
is the label Prometheus gives every target (host:port), and a target's own
`instance` would arrive renamed `exported_instance`. docs/metrics.md lists
the families; `--metrics-compat keepalived-exporter` adds that exporter's
(hivrrp.ops.metrics_keepalived).

A bounded WSGI server (hivrrp.ops.metrics_http, on threads of its own) serves
the endpoint; prometheus-client renders what it is good at: the process
metrics and the daemon's few health families, from a custom collector. The per-instance families
(a dozen series for each of 10,000 instances) take another path: the plain
collector measured 1.26 s of CPU for 10,000 instances, nearly all of it in
formatting one sample object at a time. Here each instance's label string is
built once per plan, the engine's bulk arrays (counters_array, states_array,
priorities_array) are read in one C call each -- a consistent snapshot --
and the lines are joined from those. Nothing is counted per packet.

Scrapes run on the server's threads, never on the event loop; they hold the
GIL while formatting, so the loop waits at most a switch interval at a time.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, NamedTuple
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest

from hivrrp import __version__
from hivrrp._engine import COUNTERS
from hivrrp.ops import metrics_keepalived
from hivrrp.ops.metrics_http import BoundedWSGIServer, QuietHandler

if TYPE_CHECKING:
    from hivrrp.daemon.plan import Plan
    from hivrrp.ops.view import DaemonView

log = logging.getLogger("hivrrp")

DEFAULT_PORT = 9736
NOTIFY_RESULTS = ("ok", "failed", "timed_out", "error", "dropped", "refused", "killed")
# The classic text format, which the per-instance lines are written in and
# every Prometheus reads (prometheus-client's own "latest" is now 1.0.0).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# --metrics-compat: other exporters' families served beside hivrrp's.
COMPAT = (metrics_keepalived.NAME,)

# reason label -> engine counter: the errors an instance owns (RFC 6527's per-router ones).
RECEIVE_ERRORS = (
    ("length", "packet_length_errors"), ("ttl", "ip_ttl_errors"),
    ("type", "invalid_type_received"), ("interval", "advert_interval_errors"),
    ("address_list", "address_list_errors"), ("auth_invalid_type", "auth_invalid_type"),
    ("auth_type_mismatch", "auth_type_mismatch"), ("auth_failure", "auth_failure"),
    ("owner", "owner_ignored_adverts"))
INSTANCE_COUNTERS = (
    ("hivrrp_adverts_sent_total", "adverts_sent", "Adverts sent."),
    ("hivrrp_adverts_received_total", "adverts_received",
     "Valid adverts received (after every check)."),
    ("hivrrp_became_master_total", "became_master", "Transitions to MASTER."),
    ("hivrrp_released_master_total", "released_master", "Transitions out of MASTER."),
    ("hivrrp_priority_zero_sent_total", "priority_zero_sent", "Priority-0 adverts sent."),
    ("hivrrp_priority_zero_received_total", "priority_zero_received",
     "Priority-0 adverts received."),
    ("hivrrp_follow_mismatch_total", "follow_mismatch",
     "Adverts of another master heard while master by its leader (`follow`)."),
    ("hivrrp_leader_transitions_total", "leader_transitions",
     "State changes a follower made because its leader changed state."),
)


def parse_address(text: str) -> tuple[str, int]:
    """ADDR:PORT, ADDR (port 9736) or :PORT; IPv6 as [ADDR]:PORT."""
    host, port = text, DEFAULT_PORT
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _port(rest[1:])
    elif text.count(":") == 1:
        host, port_text = text.split(":")
        port = _port(port_text)
    return host or "0.0.0.0", port


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"not a port: {text!r}")
    return int(text)


class Snapshot(NamedTuple):
    """The engine's bulk arrays, read once per scrape: every family, hivrrp's and
    the compat ones, renders from the same consistent copy."""
    counters: list[list[int]]
    states: list[int]

    @classmethod
    def of(cls, engine) -> Snapshot:
        return cls(engine.counters_array().tolist(), engine.states_array().tolist())


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class InstanceLabels:
    """Each instance's label string, built once per plan (a reload makes a new plan)."""

    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.labels: list[str] = []
        self.info: list[str] = []

    def of(self, plan: Plan) -> list[str]:
        if plan is not self.plan:
            labels, info = [], []
            for name in plan.names:
                c = plan.instances[name].config
                base = (f'vrrp_instance="{_escape(name)}",interface="{_escape(c.interface or "")}",'
                        f'vrid="{c.vrid}",family="ipv{c.family}"')
                labels.append(base)
                vips = ",".join(v.address for v in c.vips)
                info.append(f'{base},version="{c.version}",vips="{_escape(vips)}",'
                            f'leader="{_escape(c.follow or "")}"')
            self.plan, self.labels, self.info = plan, labels, info
        return self.labels


def render_instances(plan: Plan, cache: InstanceLabels, wall_offset: float,
                     snapshot: Snapshot) -> list[bytes]:
    """The per-instance families in Prometheus text format, one chunk per family:
    joining and encoding 20 MB at once would hold the GIL (and the loop) for
    tens of milliseconds in one C call."""
    engine = plan.engine
    labels = cache.of(plan)
    info = cache.info
    n = len(labels)
    counters, states = snapshot
    priorities = engine.priorities_array().tolist()
    chunks: list[bytes] = []
    out: list[str] = []

    def done() -> None:
        chunks.append("".join(out).encode())
        out.clear()

    def family(name: str, kind: str, text: str, *series) -> None:
        """One family: its header, then each (extra labels, values) series."""
        out.append(f"# HELP {name} {text}\n# TYPE {name} {kind}\n")
        for extra, values in series:
            out.extend([f"{name}{{{label}{extra}}} {value}\n"
                        for label, value in zip(labels, values)])
            done()

    def column(counter: str) -> list[int]:
        k = COUNTERS.index(counter)
        return [row[k] for row in counters]

    # keepalived's numbering: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT.
    family("hivrrp_instance_state", "gauge",
           "VRRP state: 0 INIT, 1 BACKUP, 2 MASTER, 3 FAULT.", ("", states))
    family("hivrrp_instance_priority", "gauge", "Effective priority.", ("", priorities))
    family("hivrrp_instance_base_priority", "gauge", "Configured (or set) priority.",
           ("", [engine.base_priority(i) for i in range(n)]))
    changed = [engine.last_transition(i) for i in range(n)]
    family("hivrrp_instance_last_transition_timestamp_seconds", "gauge",
           "Unix time of the last state change (0: none yet).",
           ("", [f"{t / 1e6 + wall_offset:.3f}" if t else "0" for t in changed]))
    out.append("# HELP hivrrp_instance_info Instance attributes; master is the current master "
               "as last heard.\n# TYPE hivrrp_instance_info gauge\n")
    for i in range(n):
        master = engine.master_address(i) if states[i] in (1, 2) else None
        out.append(f'hivrrp_instance_info{{{info[i]},master="{master or ""}"}} 1\n')
    done()
    for name, counter, text in INSTANCE_COUNTERS:
        family(name, "counter", text, ("", column(counter)))
    family("hivrrp_instance_receive_errors_total", "counter",
           "Adverts for this instance dropped, by reason.",
           *[(f',reason="{reason}"', column(counter)) for reason, counter in RECEIVE_ERRORS])
    family("hivrrp_v3_checksum_reading_total", "counter",
           "VRRPv3/IPv4 adverts by the checksum reading that matched.",
           *[(f',reading="{reading}"', column(counter))
             for reading, counter in (("pseudo_header", "checksum_pseudo_header_received"),
                                      ("no_pseudo_header",
                                       "checksum_no_pseudo_header_received"))])
    return chunks


class DaemonCollector:
    """The daemon's health and its trackers: few series, prometheus-client renders them."""

    def __init__(self, daemon: DaemonView) -> None:
        self.daemon = daemon

    def collect(self):
        d = self.daemon
        info = GaugeMetricFamily("hivrrp_build_info", "hivrrp's version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        reloads = CounterMetricFamily("hivrrp_reloads", "Reloads by result.",
                                      labels=["result"])
        for result, count in d.lifecycle.reloads.items():
            reloads.add_metric([result], count)
        yield reloads
        wakeups = CounterMetricFamily("hivrrp_timer_wakeups",
                                      "Loop timer wake-ups: with expired timers or none.",
                                      labels=["result"])
        for result, count in d.driver.wakeups.items():
            wakeups.add_metric([result], count)
        yield wakeups
        refused = CounterMetricFamily("hivrrp_advert_send_errors",
                                      "Adverts the kernel refused to send (lost), by socket: "
                                      "packet (frames) or raw (IP).", labels=["socket"])
        for sock, count in d.driver.send_errors().items():
            refused.add_metric([sock], count)
        yield refused
        runs = CounterMetricFamily("hivrrp_notify_runs", "Notify script runs by result.",
                                   labels=["result"])
        counted = dict(d.notifications.notifier.runs)
        # Every result from the start: rate() over a series that appears late
        # misses its first runs.
        for result in sorted(set(NOTIFY_RESULTS) | set(counted)):
            runs.add_metric([result], counted.get(result, 0))
        yield runs
        notifier = d.notifications.notifier
        scripts = GaugeMetricFamily("hivrrp_notify_scripts",
                                    "Notify scripts running, and queued for a slot or behind "
                                    "their instance's earlier events.", labels=["state"])
        scripts.add_metric(["running"], notifier.running)
        scripts.add_metric(["queued"], notifier.queued)
        yield scripts
        vips = CounterMetricFamily("hivrrp_vip_changes", "VIPs added and removed.",
                                   labels=["action"])
        for action in ("add", "remove"):
            vips.add_metric([action], d.vips.changes[action])
        yield vips
        yield CounterMetricFamily("hivrrp_netlink_errors",
                                  "VIP and route changes the kernel refused.",
                                  value=d.vips.failures)
        firewall = d.netlink.firewall
        if firewall is not None:
            status = firewall.status()
            yield CounterMetricFamily("hivrrp_nftables_transactions",
                                      "no_accept firewall transactions sent.",
                                      value=status["transactions"])
            yield CounterMetricFamily("hivrrp_nftables_errors",
                                      "no_accept firewall transactions the kernel refused.",
                                      value=status["failures"])
            yield GaugeMetricFamily("hivrrp_nftables_drop_elements",
                                    "VIPs of no_accept masters in the drop sets.",
                                    value=status["elements"])
            yield GaugeMetricFamily("hivrrp_nftables_unavailable",
                                    "1 while no_accept is not (all) enforced: no "
                                    "nf_tables, not allowed, another's table of our name, "
                                    "or the tables out of step until rebuilt.",
                                    value=int(status["problem"] is not None))
        plan = d.plan
        if plan is not None:
            drops = CounterMetricFamily(
                "hivrrp_receive_errors", "Received packets dropped before any instance owned "
                "them, by interface and reason (RFC 6527's global counters; interface "
                '"other": one no instance uses).', labels=["interface", "reason"])
            # The live links (not an old name of a renamed one), copied at C
            # level: the loop adds links while this thread reads.
            names = {index: link.name for index, link in d.links.table.by_index().items()}
            for ifindex, counts in plan.engine.interface_drops().items():
                interface = names.get(ifindex, f"if{ifindex}") if ifindex else "other"
                for reason, count in counts.items():
                    drops.add_metric([interface, reason], count)
            yield drops
        up = GaugeMetricFamily("hivrrp_tracker_up",
                               "1 healthy, 0 failing (a file: 1 while it reads 0).",
                               labels=["tracker", "kind"])
        weight = GaugeMetricFamily("hivrrp_tracker_weight",
                                   "Each instance's weight for each tracker (reverse: negated).",
                                   labels=["tracker", "vrrp_instance"])
        tracking = d.trackers.policy
        for (kind, name), status in list(tracking.statuses.items()):
            if status is not None:
                up.add_metric([name, kind], int(status == 0 if kind == "file" else bool(status)))
        for instance, uses in list(tracking.uses.items()):
            for use in uses:
                weight.add_metric([use.tracker, instance],
                                  -use.weight if use.reverse else use.weight)
        yield up
        yield weight
        server = getattr(d.metrics, "server", None)
        if server is not None:
            closed = CounterMetricFamily(
                "hivrrp_metrics_connections_closed",
                "Connections to this endpoint closed before an answer, by reason.",
                labels=["reason"])
            for reason, count in dict(server.refused).items():
                closed.add_metric([reason], count)
            yield closed


class Metrics:
    """What a scrape returns (render) and the WSGI app serving it (app)."""

    def __init__(self, daemon: DaemonView, compat: str | None = None) -> None:
        if compat is not None and compat not in COMPAT:
            raise ValueError(f"unknown metrics compat {compat!r} (known: {', '.join(COMPAT)})")
        self.daemon = daemon
        self.compat = compat
        self.keepalived = metrics_keepalived.KeepalivedLabels()
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.registry.register(DaemonCollector(daemon))
        self.labels = InstanceLabels()
        self.lock = threading.Lock()     # one scrape at a time: the label cache is shared
        self.scrapes = 0
        self.last_scrape_seconds = 0.0

    def render(self) -> list[bytes]:
        """The scrape as chunks of text (their concatenation is the body)."""
        with self.lock:
            started = time.thread_time()
            plan = self.daemon.plan
            chunks = [generate_latest(self.registry)]
            snapshot = None
            if plan is not None:
                snapshot = Snapshot.of(plan.engine)
                # The engine's clock is the loop's, CLOCK_MONOTONIC like time.monotonic();
                # asking the loop from this thread would touch libuv's state.
                chunks += render_instances(plan, self.labels, time.time() - time.monotonic(),
                                           snapshot)
            if self.compat == metrics_keepalived.NAME:
                counters, states = snapshot or ([], [])
                # One C-level copy: the loop reports statuses while this thread reads.
                statuses = list(self.daemon.trackers.policy.statuses.items())
                chunks += metrics_keepalived.render(
                    plan, self.keepalived, counters, states,
                    {name: up for (kind, name), up in statuses if kind == "script"})
            self.scrapes += 1
            self.last_scrape_seconds = time.thread_time() - started
            return chunks

    def app(self, environ, start_response):
        if environ.get("PATH_INFO", "/") not in ("/", "/metrics"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics\n"]
        try:
            chunks = self.render()
        except Exception:          # a bug: the scrape fails, the daemon does not
            log.exception("metrics scrape failed")
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"scrape failed\n"]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE),
                                  ("Content-Length", str(sum(map(len, chunks))))])
        return chunks


class MetricsServer(Metrics):
    """Metrics served over HTTP, on a thread of their own (hivrrp.ops.metrics_http)."""

    def __init__(self, daemon: DaemonView, address: str, port: int,
                 compat: str | None = None) -> None:
        super().__init__(daemon, compat)
        server_class = BoundedWSGIServer
        if ":" in address:
            server_class = type("BoundedWSGIServer6", (BoundedWSGIServer,),
                                {"address_family": socket.AF_INET6})
        self.server = make_server(address, port, self.app, server_class,
                                  handler_class=QuietHandler)
        self.thread = threading.Thread(target=self.server.serve, name="metrics", daemon=True)

    def start(self) -> None:
        self.thread.start()
        host, port = self.server.server_address[:2]
        log.info("metrics on http://%s:%d/metrics%s", host, port,
                 f" (with {self.compat}'s families)" if self.compat else "")

    def close(self) -> None:
        self.server.stop()
        if self.thread.is_alive():
            self.thread.join()
        self.server.server_close()
