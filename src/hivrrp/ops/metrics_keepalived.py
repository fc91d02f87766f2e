"""mehdy/keepalived-exporter's families, for `hivrrp run --metrics-compat keepalived-exporter`.

Operators moving from keepalived have dashboards and alerts on the families
that exporter serves (internal/collector/collector.go, fillMetrics() and
Collect(), reading keepalived's SIGUSR1/SIGUSR2 files). Served beside
hivrrp's own, with the same names, types, labels and values:

- keepalived_up: 1 once the daemon runs a configuration (the exporter: 1
  when keepalived answered its signal), else 0 and nothing more.
- 14 counters {iname,intf,vrid}, one per line of keepalived's stats file,
  fed by the same engine counters hivrrp's SIGUSR2 file writes
  (hivrrp.ops.dumpfiles.STATS_LINES); intf is the instance's interface.
- keepalived_gratuitous_arp_delay_total{iname,intf,vrid}: a counter by
  the exporter's choice, though its value is the configured
  garp_master_delay in whole seconds (the data file's "Gratuitous ARP delay").
- keepalived_vrrp_state{iname,intf,vrid,ip_address}: the state (0 INIT,
  1 BACKUP, 2 MASTER, 3 FAULT) once per VIP, ip_address as keepalived 2.2
  prints it (no "/len" for a host address) and intf the VIP's own `dev`;
  an instance without VIPs has one series, intf its interface and
  ip_address "". keepalived_vrrp_excluded_state likewise per excluded VIP.
- keepalived_script_status{name}: 1 GOOD, 0 BAD per vrrp_script in use;
  none before its first result (keepalived says INIT, which the exporter
  skips).

Not served: keepalived_script_state (hivrrp does not publish whether a
check is running), keepalived_exporter_check_script_status (the exporter's
own -cs probe) and keepalived_exporter_build_info (hivrrp_build_info says
which hivrrp answers).

The per-instance lines follow hivrrp.ops.metrics: labels built once per
plan, values from the snapshot the scrape already took.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from hivrrp._engine import COUNTERS
from hivrrp.kernel.announce_policy import settings as garp_settings

if TYPE_CHECKING:
    from hivrrp.config.model import Instance, Vip
    from hivrrp.daemon.plan import Plan

NAME = "keepalived-exporter"

# (family, engine counter, the exporter's help), in the exporter's order.
STATS = (
    ("keepalived_advertisements_received_total", "adverts_received", "Advertisements received"),
    ("keepalived_advertisements_sent_total", "adverts_sent", "Advertisements sent"),
    ("keepalived_become_master_total", "became_master", "Became master"),
    ("keepalived_release_master_total", "released_master", "Released master"),
    ("keepalived_packet_length_errors_total", "packet_length_errors", "Packet length errors"),
    ("keepalived_advertisements_interval_errors_total", "advert_interval_errors",
     "Advertisement interval errors"),
    ("keepalived_ip_ttl_errors_total", "ip_ttl_errors", "TTL errors"),
    ("keepalived_invalid_type_received_total", "invalid_type_received", "Invalid type errors"),
    ("keepalived_address_list_errors_total", "address_list_errors", "Address list errors"),
    ("keepalived_authentication_invalid_total", "auth_invalid_type", "Authentication invalid"),
    ("keepalived_authentication_mismatch_total", "auth_type_mismatch",
     "Authentication mismatch"),
    ("keepalived_authentication_failure_total", "auth_failure", "Authentication failure"),
    ("keepalived_priority_zero_received_total", "priority_zero_received",
     "Priority zero received"),
    ("keepalived_priority_zero_sent_total", "priority_zero_sent", "Priority zero sent"),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def ip_address(vip: Vip) -> str:
    """The address as keepalived 2.2's format_ipaddress() writes it in the data
    file, which the exporter's ip_address label copies: "/len" only when it
    is not a host address."""
    full = 32 if vip.family == 4 else 128
    return vip.address if vip.prefixlen == full else f"{vip.address}/{vip.prefixlen}"


def _per_vip(base: str, inst: Instance, vips: Iterable[Vip]) -> list[str]:
    out: dict[str, None] = {}
    for vip in vips:
        dev = vip.options.get("dev")
        intf = dev if isinstance(dev, str) else inst.interface or ""
        # A dict: the same address twice would be a duplicate series, which fails the scrape.
        label = f'{base},intf="{_escape(intf)}",vrid="{inst.vrid}",ip_address="{ip_address(vip)}"'
        out[label] = None
    return list(out)


class KeepalivedLabels:
    """The compat families' label strings, built once per plan (as InstanceLabels)."""

    def __init__(self) -> None:
        self.plan: Plan | None = None
        self.common: list[str] = []          # per instance: iname, intf, vrid
        self.vip_owner: list[int] = []       # per VIP series: its instance's index
        self.vip_labels: list[str] = []
        self.excluded_owner: list[int] = []
        self.excluded_labels: list[str] = []
        self.garp = b""                      # configuration only: rendered once

    def of(self, plan: Plan) -> KeepalivedLabels:
        if plan is self.plan:
            return self
        common, owner, labels, ex_owner, ex_labels = [], [], [], [], []
        garp = [_header("keepalived_gratuitous_arp_delay_total", "counter",
                        "Gratuitous ARP delay")]
        global_defs = plan.config.global_defs
        for i, name in enumerate(plan.names):
            inst = plan.instances[name].config
            base = f'iname="{_escape(name)}"'
            label = f'{base},intf="{_escape(inst.interface or "")}",vrid="{inst.vrid}"'
            common.append(label)
            vips = _per_vip(base, inst, inst.vips) or [f'{label},ip_address=""']
            owner += [i] * len(vips)
            labels += vips
            excluded = _per_vip(base, inst, inst.excluded_vips)
            ex_owner += [i] * len(excluded)
            ex_labels += excluded
            # keepalived prints garp_delay / TIMER_HZ with %u: whole seconds.
            delay = int(garp_settings(inst, global_defs).master_delay)
            garp.append(f"keepalived_gratuitous_arp_delay_total{{{label}}} {delay}\n")
        self.common, self.vip_owner, self.vip_labels = common, owner, labels
        self.excluded_owner, self.excluded_labels = ex_owner, ex_labels
        self.garp = "".join(garp).encode()
        self.plan = plan
        return self


def _header(name: str, kind: str, text: str) -> str:
    return f"# HELP {name} {text}\n# TYPE {name} {kind}\n"


def render(plan: Plan | None, cache: KeepalivedLabels, counters: list[list[int]],
           states: list[int], scripts: dict[str, bool | None]) -> list[bytes]:
    """The exporter's families, one chunk per family (see render_instances for why).

    `counters` and `states` are the scrape's snapshot (engine.counters_array()
    and states_array() as lists); `scripts` each vrrp_script's status by name.
    """
    chunks = [(_header("keepalived_up", "gauge", "Status")
               + f"keepalived_up {0 if plan is None else 1}\n").encode()]
    if plan is None:
        return chunks
    labels = cache.of(plan)
    common = labels.common
    for name, counter, text in STATS:
        k = COUNTERS.index(counter)
        out = [_header(name, "counter", text)]
        out += [f"{name}{{{label}}} {row[k]}\n" for label, row in zip(common, counters)]
        chunks.append("".join(out).encode())
    chunks.append(labels.garp)
    for name, text, owners, series in (
            ("keepalived_vrrp_state", "State of vrrp", labels.vip_owner, labels.vip_labels),
            ("keepalived_vrrp_excluded_state", "State of vrrp with excluded VIP",
             labels.excluded_owner, labels.excluded_labels)):
        out = [_header(name, "gauge", text)]
        out += [f"{name}{{{label}}} {states[i]}\n" for label, i in zip(series, owners)]
        chunks.append("".join(out).encode())
    out = [_header("keepalived_script_status", "gauge", "Tracker Script Status")]
    out += [f'keepalived_script_status{{name="{_escape(name)}"}} {int(bool(up))}\n'
            for name, up in sorted(scripts.items()) if up is not None]
    chunks.append("".join(out).encode())
    return chunks
