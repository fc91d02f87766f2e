"""The configuration hivrrp runs with, as read from keepalived.conf."""

from __future__ import annotations

import copyreg
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from hivrrp.config.diagnostics import Where

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(slots=True)
class Script:
    """A command keepalived would run (notify, track script)."""

    command: str                  # as written, e.g. "/usr/local/bin/notify.sh master"
    argv: list[str]
    user: str | None = None
    group: str | None = None


@dataclass(slots=True)
class Vip:
    text: str                     # as written, e.g. "192.0.2.26/24"
    address: str                  # normalised, e.g. "192.0.2.26"
    prefixlen: int
    family: int
    where: Where
    options: dict[str, str | bool] = field(default_factory=dict)  # dev, label, scope, ...

    @property
    def interface(self) -> IPInterface:
        return ipaddress.ip_interface(f"{self.address}/{self.prefixlen}")


@dataclass(slots=True)
class Route:
    text: str
    where: Where
    destination: str | None = None
    options: dict[str, str | bool] = field(default_factory=dict)


@dataclass(slots=True)
class Rule:
    text: str
    where: Where
    options: dict[str, str | bool] = field(default_factory=dict)


@dataclass(slots=True)
class Peer:
    address: IPAddress
    min_ttl: int | None = None
    max_ttl: int | None = None


@dataclass(slots=True)
class TrackRef:
    """An instance's (or sync group's) use of a tracker, with its weight."""

    kind: str                     # interface | script | file | process
    name: str
    weight: int | None            # None: the tracker's own default
    reverse: bool
    where: Where

    def as_dict(self) -> dict:
        return {"type": self.kind, "name": self.name, "weight": self.weight,
                "reverse": self.reverse}


@dataclass(slots=True)
class GlobalDefs:
    router_id: str | None = None
    vrrp_version: int = 2
    mcast_group4: ipaddress.IPv4Address = ipaddress.IPv4Address("224.0.0.18")
    mcast_group6: ipaddress.IPv6Address = ipaddress.IPv6Address("ff02::12")
    garp_master_delay: float = 5.0
    garp_master_repeat: int = 5
    garp_lower_prio_delay: float | None = None     # None: same as garp_master_delay
    garp_lower_prio_repeat: int | None = None
    garp_master_refresh: float = 0.0
    garp_master_refresh_repeat: int = 1
    garp_interval: float = 0.0
    gna_interval: float = 0.0
    min_garp: bool = False
    down_timer_adverts: int = 3
    lower_prio_no_advert: bool = False
    higher_prio_send_advert: bool = False
    skip_check_adv_addr: bool = False
    check_unicast_src: bool = False
    v3_checksum_as_v2: bool = False
    owner_ignore_adverts: bool = False
    startup_delay: float = 0.0
    script_user: str | None = None
    script_group: str | None = None
    enable_script_security: bool = False
    notification_email: list[str] = field(default_factory=list)
    notification_email_from: str | None = None
    smtp_server: str | None = None
    smtp_connect_timeout: int = 30
    smtp_helo_name: str | None = None
    smtp_alert: bool = False
    smtp_alert_vrrp: bool | None = None
    notify_fifo: str | None = None
    vrrp_notify_fifo: str | None = None
    notify_fifo_script: Script | None = None
    stats_file: str | None = None            # SIGUSR2 (stats_file_location); None: keepalived's
    data_file: str | None = None             # SIGUSR1 (state_file_location)
    vrrp_notify_fifo_script: Script | None = None
    notify_priority_changes: bool = False
    dynamic_interfaces: bool = False
    log_unknown_vrids: bool = False


@dataclass(slots=True)
class Instance:
    name: str
    where: Where
    state: str | None = None                 # configured MASTER/BACKUP (None: not given)
    interface: str | None = None
    vrid: int | None = None
    priority: int = 100
    priority_given: bool = False
    advert_int: float = 1.0                  # seconds, after per-version rounding
    version: int | None = None               # None until resolved against global_defs
    family: int = 4
    auth_type: str | None = None             # PASS (AH is refused)
    auth_pass: str | None = None
    vips: list[Vip] = field(default_factory=list)
    excluded_vips: list[Vip] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    unicast_src_ip: IPAddress | None = None
    unicast_peers: list[Peer] = field(default_factory=list)
    unicast_ttl: int | None = None
    mcast_src_ip: IPAddress | None = None
    mcast_dst_ip: IPAddress | None = None
    nopreempt: bool = False
    preempt_delay: float = 0.0
    garp: dict[str, float | int] = field(default_factory=dict)   # per-instance overrides
    accept: bool | None = None
    tracks: list[TrackRef] = field(default_factory=list)
    notify: dict[str, Script] = field(default_factory=dict)      # master/backup/fault/stop/...
    notify_master_rx_lower_pri: Script | None = None
    notify_priority_changes: bool | None = None
    smtp_alert: bool | None = None
    down_timer_adverts: int | None = None
    lower_prio_no_advert: bool | None = None
    higher_prio_send_advert: bool | None = None
    skip_check_adv_addr: bool | None = None
    check_unicast_src: bool = False
    dont_track_primary: bool = False
    use_vmac: str | bool = False
    sync_group: str | None = None
    complete: bool = True           # False when a required keyword had a bad value

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "file": self.where.file,
            "line": self.where.line,
            "interface": self.interface,
            "vrid": self.vrid,
            "family": f"ipv{self.family}",
            "version": self.version,
            "priority": self.priority,
            "advert_int": self.advert_int,
            "state": self.state or ("MASTER" if self.priority == 255 else "BACKUP"),
            "vips": [v.text for v in self.vips],
            "excluded_vips": [v.text for v in self.excluded_vips],
            "unicast_src_ip": str(self.unicast_src_ip) if self.unicast_src_ip else None,
            "unicast_peers": [str(p.address) for p in self.unicast_peers],
            "nopreempt": self.nopreempt,
            "preempt_delay": self.preempt_delay,
            "auth_type": self.auth_type,
            "tracks": [t.as_dict() for t in self.tracks],
            "sync_group": self.sync_group,
        }


@dataclass(slots=True)
class SyncGroup:
    name: str
    where: Where
    members: list[str] = field(default_factory=list)
    tracks: list[TrackRef] = field(default_factory=list)
    notify: dict[str, Script] = field(default_factory=dict)
    smtp_alert: bool | None = None
    notify_priority_changes: bool | None = None
    tracking_weight: bool = False


@dataclass(slots=True)
class VrrpScript:
    name: str
    where: Where
    script: Script | None = None
    interval: float = 1.0
    timeout: float = 0.0                     # 0: use interval
    weight: int = 0
    reverse: bool = False
    rise: int = 1
    fall: int = 1
    init_fail: bool = False


@dataclass(slots=True)
class TrackProcess:
    name: str
    where: Where
    process: str | None = None
    params: list[str] = field(default_factory=list)
    param_match: str | None = None           # None (exact), initial, partial
    weight: int = 0
    reverse: bool = False
    quorum: int = 1
    quorum_max: int | None = None
    fork_delay: float = 0.0
    terminate_delay: float = 0.0
    full_command: bool = False


@dataclass(slots=True)
class TrackFile:
    name: str
    where: Where
    path: str | None = None
    weight: int = 1
    reverse: bool = False
    init_file: int | None = None
    init_overwrite: bool = False


@dataclass(slots=True)
class Config:
    global_defs: GlobalDefs = field(default_factory=GlobalDefs)
    instances: list[Instance] = field(default_factory=list)
    sync_groups: list[SyncGroup] = field(default_factory=list)
    scripts: dict[str, VrrpScript] = field(default_factory=dict)
    track_processes: dict[str, TrackProcess] = field(default_factory=dict)
    track_files: dict[str, TrackFile] = field(default_factory=dict)

    def interfaces(self) -> set[str]:
        return {i.interface for i in self.instances if i.interface}


# One shared empty mapping for every instance's unset garp/notify/options: a
# daemon keeps 10,000 instances' configuration for as long as it runs.
EMPTY: Mapping = MappingProxyType({})


def _read_only(items: dict) -> Mapping:
    return MappingProxyType(items) if items else EMPTY


# A compacted configuration crosses a process boundary pickled
# (hivrrp.config.isolated); empty mappings come back as the shared EMPTY.
copyreg.pickle(MappingProxyType, lambda mapping: (_read_only, (dict(mapping),)))
_LISTS = ("vips", "excluded_vips", "routes", "rules", "unicast_peers", "tracks")
_DICTS = ("garp", "notify")


def compact(config: Config) -> None:
    """Make the loaded instances read-only and small, once validation is done:
    lists become tuples (the empty tuple is shared), empty dicts the shared
    EMPTY, interface names one string per name, and VIPs share their
    instance's file position. About 500 bytes less per instance; nothing
    changes a configuration once loaded."""
    interfaces: dict[str, str] = {}
    for inst in config.instances:
        for name in _LISTS:
            setattr(inst, name, tuple(getattr(inst, name)))
        for name in _DICTS:
            if not getattr(inst, name):
                setattr(inst, name, EMPTY)
        if inst.interface is not None:
            inst.interface = interfaces.setdefault(inst.interface, inst.interface)
        for vip in (*inst.vips, *inst.excluded_vips):
            if not vip.options:
                vip.options = EMPTY
            # Only validation, done by now, points at a VIP's own line.
            vip.where = inst.where
