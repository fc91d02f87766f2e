"""The configuration hivrrp runs with, as read from keepalived.conf."""

from __future__ import annotations

import copyreg
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from hivrrp.config.diagnostics import Where

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


@dataclass(slots=True)
class Script:
    """A command keepalived would run (notify, track script)."""

    command: str                  # as written, e.g. "/usr/local/bin/notify.sh master"
    argv: Sequence[str]           # a tuple once loaded (shared by equal scripts)
    user: str | None = None
    group: str | None = None


class Vip:
    """One virtual_ipaddress entry. Its text as written is kept only where it
    says more than the address and prefix length (the usual "ADDR/LEN" is
    spelled again when asked for): one string less for each of 10,000 VIPs."""

    __slots__ = ("_text", "address", "prefixlen", "family", "where", "options")

    def __init__(self, text: str, address: str, prefixlen: int, family: int, where: Where,
                 options: Mapping[str, str | bool] | None = None) -> None:
        self._text: str | None = text
        self.address = address                 # normalised, e.g. "192.0.2.26"
        self.prefixlen = prefixlen
        self.family = family
        self.where = where
        self.options: Mapping[str, str | bool] = {} if options is None else options

    @property
    def text(self) -> str:
        """As written, e.g. "192.0.2.26/24"."""
        return f"{self.address}/{self.prefixlen}" if self._text is None else self._text

    @property
    def interface(self) -> IPInterface:
        return ipaddress.ip_interface(f"{self.address}/{self.prefixlen}")

    def _fields(self) -> tuple:
        return (self.text, self.address, self.prefixlen, self.family, self.where,
                dict(self.options))

    def __eq__(self, other: object) -> bool:
        return type(other) is Vip and self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclasses here

    def __repr__(self) -> str:
        return (f"Vip(text={self.text!r}, address={self.address!r}, prefixlen={self.prefixlen}, "
                f"family={self.family}, where={self.where!r}, options={self.options!r})")

    def __reduce__(self):
        return (Vip, (self._text, self.address, self.prefixlen, self.family, self.where,
                      self.options))


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


# Notify processes at once by default (hivrrp_notify_script_concurrency):
# a failover of 4,000 instances ran its 0.1 s scripts in 26 s at 16, 11 s at
# 64 and the same at 256 (bench/notify_throughput.py, 2 cores: past 64 the CPU
# limits it, not the bound). keepalived has no bound at all.
NOTIFY_SCRIPT_CONCURRENCY = 64
# The no_accept firewall's table when the file names none (keepalived's is
# "keepalived": the two daemons' tables never clash).
DEFAULT_NFTABLES_TABLE = "hivrrp"


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
    vrrp_strict: bool = False                # every instance's strict_mode unless it says
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
    vmac_prefix: str | None = None           # VMAC names: PREFIX.VRID (keepalived: "vrrp")
    disable_local_igmp: bool = False         # no IGMP reports for 224.0.0.0/24
    # The no_accept firewall (kernel/firewall.py): keepalived's `nftables [NAME]`
    # (vrrp_iptables asks for it too), `nftables_priority`, `nftables_counters`.
    nftables_table: str | None = None        # None: not named, DEFAULT_NFTABLES_TABLE
    nftables_priority: int = -1
    nftables_counters: bool = False
    # hivrrp's own (keywords.HIVRRP_GLOBAL): keepalived has neither setting.
    notify_script_timeout: float | None = None    # None: never killed, as keepalived
    notify_script_concurrency: int = NOTIFY_SCRIPT_CONCURRENCY


# One shared empty mapping for every instance's unset garp/notify/options: a
# daemon keeps 10,000 instances' configuration for as long as it runs.
EMPTY: Mapping = MappingProxyType({})


def _read_only(items: dict) -> Mapping:
    return MappingProxyType(items) if items else EMPTY


# A compacted configuration crosses a process boundary pickled
# (hivrrp.config.isolated); empty mappings come back as the shared EMPTY.
copyreg.pickle(MappingProxyType, lambda mapping: (_read_only, (dict(mapping),)))

# The keywords of a vrrp_instance that most instances leave alone, with their
# defaults; the callables make a fresh empty list or dict for the parse to
# fill. Their values live in Instance._rare, not in a slot each.
_RARE_DEFAULTS: dict[str, object] = {
    "priority_given": False,
    "auth_type": None,                       # PASS (AH is refused by validation)
    "auth_pass": None,
    "excluded_vips": list,
    "routes": list,
    "rules": list,
    "unicast_src_ip": None,
    "unicast_peers": list,
    "unicast_ttl": None,
    "mcast_src_ip": None,
    "mcast_dst_ip": None,
    "nopreempt": False,
    "preempt_delay": 0.0,
    "garp": dict,                            # per-instance overrides
    "accept": None,                          # a bool once validated (keepalived's default)
    "strict_mode": None,                     # a bool once validated (None: vrrp_strict's)
    "owner_ignore_adverts": None,            # a bool once validated
    "tracks": list,
    "notify": dict,                          # master/backup/fault/stop/...
    "notify_master_rx_lower_pri": None,
    "notify_priority_changes": None,
    "smtp_alert": None,
    "down_timer_adverts": None,
    "lower_prio_no_advert": None,
    "higher_prio_send_advert": None,
    "skip_check_adv_addr": None,
    "check_unicast_src": False,
    "dont_track_primary": False,
    "use_vmac": False,                       # True, or the VMAC's name (use_vmac NAME)
    "vmac_mac": None,                        # use_vmac's MAC as written (5 octets: + the VRID)
    "vmac_xmit_base": False,
    "sync_group": None,
    # hivrrp's own (keywords.HIVRRP_INSTANCE): the leader this instance follows
    # instead of electing, and how often it refreshes while master (0: never).
    "follow": None,
    "follow_refresh": 60.0,
    "complete": True,                        # False when a required keyword had a bad value
}
_FACTORIES = {name: default for name, default in _RARE_DEFAULTS.items() if callable(default)}
_RARE_ORDER = {name: i for i, name in enumerate(_RARE_DEFAULTS)}


class _Layout(dict):
    """Where each set rare keyword sits in a loaded instance's `_rare` tuple.
    One per combination of keywords (interned), so it hashes by identity and
    a `_rare` tuple that starts with it can be shared between instances."""

    __hash__ = object.__hash__  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return self is other


_LAYOUTS: dict[tuple[str, ...], _Layout] = {}


def _frozen_rare(pairs: list[tuple[str, object]]) -> tuple:
    # In one order whatever the file's: equal settings written in another
    # order share a layout, and so a tuple.
    pairs = sorted(pairs, key=lambda pair: _RARE_ORDER[pair[0]])
    names = tuple(name for name, _ in pairs)
    layout = _LAYOUTS.get(names)
    if layout is None:
        layout = _LAYOUTS.setdefault(names, _Layout((name, i + 1) for i, name in enumerate(names)))
    return (layout, *(value for _, value in pairs))


class Instance:
    """One vrrp_instance.

    A daemon keeps 10,000 of these for as long as it runs, and a slot for
    each of keepalived's 39 keywords cost 344 bytes an instance. So the ones
    nearly every instance sets have slots; the rest live in `_rare`: a dict
    while the file is read and checked, then (compact()) a tuple holding only
    what differs from the default, after its layout. Instances with the same
    rare settings share one such tuple. Reading or setting an attribute works
    the same either way.
    """

    __slots__ = ("name", "where", "state", "interface", "vrid", "priority", "advert_int",
                 "version", "family", "vips", "_rare")
    if TYPE_CHECKING:
        priority_given: bool
        auth_type: str | None
        auth_pass: str | None
        excluded_vips: Sequence[Vip]
        routes: Sequence[Route]
        rules: Sequence[Rule]
        unicast_src_ip: IPAddress | None
        unicast_peers: Sequence[Peer]
        unicast_ttl: int | None
        mcast_src_ip: IPAddress | None
        mcast_dst_ip: IPAddress | None
        nopreempt: bool
        preempt_delay: float
        garp: Mapping[str, float | int]
        accept: bool                 # None only until validated
        strict_mode: bool            # None only until validated
        owner_ignore_adverts: bool   # None only until validated
        tracks: Sequence[TrackRef]
        notify: Mapping[str, Script]
        notify_master_rx_lower_pri: Script | None
        notify_priority_changes: bool | None
        smtp_alert: bool | None
        down_timer_adverts: int | None
        lower_prio_no_advert: bool | None
        higher_prio_send_advert: bool | None
        skip_check_adv_addr: bool | None
        check_unicast_src: bool
        dont_track_primary: bool
        use_vmac: str | bool
        vmac_mac: str | None
        vmac_xmit_base: bool
        sync_group: str | None
        follow: str | None
        follow_refresh: float
        complete: bool

    def __init__(self, name: str, where: Where, **settings) -> None:
        self.name = name
        self.where = where
        self.state: str | None = None          # configured MASTER/BACKUP (None: not given)
        self.interface: str | None = None
        self.vrid: int | None = None
        self.priority = 100
        self.advert_int = 1.0                  # seconds, after per-version rounding
        self.version: int | None = None        # None until resolved against global_defs
        self.family = 4
        self.vips: Sequence[Vip] = []
        self._rare: dict | tuple = {name: make() for name, make in _FACTORIES.items()}
        for key, value in settings.items():
            if key not in _SETTINGS:
                raise TypeError(f"Instance() got an unexpected keyword argument '{key}'")
            setattr(self, key, value)

    def settings(self) -> dict[str, object]:
        """Every keyword's value, defaults included."""
        return {name: getattr(self, name) for name in _SETTINGS}

    def __eq__(self, other: object) -> bool:
        return type(other) is Instance and self.settings() == other.settings()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return "Instance(" + ", ".join(f"{k}={v!r}" for k, v in self.settings().items()) + ")"

    def __reduce__(self):
        # Fast pickling (no memo) for hivrrp.config.isolated: plain pairs, the
        # layouts interned again on the other side.
        core = tuple(getattr(self, name) for name in _CORE)
        return (restore_instance, (core, tuple(self._rare_pairs())))

    def _rare_pairs(self) -> list[tuple[str, object]]:
        rare = self._rare
        if isinstance(rare, dict):
            return list(rare.items())
        return [(name, rare[i]) for name, i in rare[0].items()]

    def freeze(self, share: Sharing) -> None:
        """The compact form: only what differs from the defaults, lists as
        tuples, mappings read-only, every value shared with equal ones."""
        pairs = []
        for name, value in self._rare_pairs():
            default = _RARE_DEFAULTS[name]
            if name in _FACTORIES:
                if not value:
                    continue
                value = tuple(value) if default is list else MappingProxyType(dict(value))
            elif value is default or (type(value) is type(default) and value == default):
                continue
            pairs.append((name, share(value)))
        self._rare = share(_frozen_rare(pairs))

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
            "follow": self.follow,
        }


def _rare_attribute(name: str, default: object) -> property:
    if callable(default):
        default = () if default is list else EMPTY      # loaded, and left empty

    def get(self: Instance):
        rare = self._rare
        if rare.__class__ is dict:
            return rare.get(name, default)
        position = rare[0].get(name)
        return default if position is None else rare[position]

    def put(self: Instance, value) -> None:
        rare = self._rare
        if rare.__class__ is not dict:
            rare = self._rare = dict(self._rare_pairs())
        rare[name] = value

    return property(get, put)


for _name, _default in _RARE_DEFAULTS.items():
    setattr(Instance, _name, _rare_attribute(_name, _default))
_CORE = tuple(name for name in Instance.__slots__ if name != "_rare")
_SETTINGS = (*_CORE, *_RARE_DEFAULTS)


def restore_instance(core: tuple, pairs: tuple) -> Instance:
    inst = Instance.__new__(Instance)
    for name, value in zip(_CORE, core):
        setattr(inst, name, value)
    inst._rare = _frozen_rare(list(pairs))
    return inst


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


class Sharing:
    """One object for each distinct value in a loaded configuration.

    A file that expands one $INSTANCE macro 10,000 times says "BACKUP", "PASS",
    a track_script and its VIP options 10,000 times, and the loader's child
    process sends each back as an object of its own (it pickles without a
    memo). Values are shared by type and content; containers once their
    contents are shared, keyed by their contents' identities. A shared value
    must not change: tuples and read-only mappings cannot, a shared script's
    argv becomes a tuple, and TrackRef's fields are set only by the parse and
    validation, both over by then.
    """

    def __init__(self) -> None:
        self.table: dict = {}

    def __call__(self, value):
        cls = value.__class__
        if cls is tuple:
            value = tuple(map(self, value))
            key: tuple = (tuple, *map(id, value))
        elif cls is MappingProxyType:
            if not value:
                return EMPTY
            items = [(self(k), self(v)) for k, v in value.items()]
            value = MappingProxyType(dict(items))
            key = (MappingProxyType, *(id(x) for item in items for x in item))
        elif cls is TrackRef:
            value.kind, value.name = self(value.kind), self(value.name)
            key = (TrackRef, id(value.kind), id(value.name), value.weight, value.reverse,
                   id(value.where))
        elif cls is Script:
            value.command, value.argv = self(value.command), tuple(map(self, value.argv))
            key = (Script, id(value.command), tuple(value.argv), value.user, value.group)
        elif cls is _Layout:
            return value       # interned already (_LAYOUTS)
        else:
            key = (cls, value)
            try:
                hash(key)
            except TypeError:
                return value   # a peer, a route: the instance's own
        return self.table.setdefault(key, value)


def compact(config: Config) -> None:
    """Make the loaded instances read-only and small, once validation is done
    (see compact_instance). Idempotent."""
    share = Sharing()
    for inst in config.instances:
        compact_instance(inst, share)


def compact_instance(inst: Instance, share: Sharing) -> Instance:
    """Rare settings frozen (Instance.freeze), every value shared with equal
    ones (Sharing), VIPs a tuple whose text is spelled again when asked for,
    and one file position per instance (file and line: the include chain and
    macro note serve the diagnostics, given by now), shared by its VIPs,
    routes and tracks."""
    where = inst.where
    inst.where = share(Where(where.file, where.line) if where.chain or where.note else where)
    for entry in (*inst.vips, *inst.excluded_vips, *inst.routes, *inst.rules, *inst.tracks):
        entry.where = inst.where
    inst.freeze(share)
    inst.state, inst.interface = share(inst.state), share(inst.interface)
    inst.advert_int = share(inst.advert_int)
    for vip in (*inst.vips, *inst.excluded_vips):
        vip.options = share(MappingProxyType(dict(vip.options)))
        if vip._text == vip.address:
            vip._text = vip.address
        elif vip._text == f"{vip.address}/{vip.prefixlen}":
            vip._text = None
    inst.vips = tuple(inst.vips)
    return inst
