"""The keyword tree -> the model, checked keyword by keyword as keepalived does.

Semantics and defaults follow keepalived (../shared/reference/keepalived-semantics.md
section 1). Unknown keywords are errors: a typo must not pass silently.
Keywords keepalived has but hivrrp does not act on are warnings naming them.
"""

from __future__ import annotations

import ipaddress
import shlex
import socket
from collections.abc import Callable

from hivrrp.config import keywords
from hivrrp.config.diagnostics import Diagnostics
from hivrrp.config.model import (
    Config, GlobalDefs, Instance, Peer, Route, Rule, Script, SyncGroup, TrackFile, TrackProcess,
    TrackRef, Vip, VrrpScript,
)
from hivrrp.config.tree import Node
from hivrrp.routing import rule_spec

# Keywords whose value is a { } block; every other keyword takes words.
BLOCK_KEYWORDS = frozenset({
    "notification_email", "authentication", "virtual_ipaddress", "virtual_ipaddress_excluded",
    "virtual_routes", "virtual_rules", "unicast_peer", "track_interface", "track_script",
    "track_file", "track_process", "group",
})
REQUIRED = frozenset({"virtual_router_id"})
BOOLS = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}
TRACK_WEIGHT_LIMITS = {"interface": 253, "script": 253, "file": 254, "process": 254}


class Builder:
    def __init__(self, diag: Diagnostics) -> None:
        self.diag = diag
        self.config = Config()

    # ------------------------------------------------------------ values

    def arg(self, node: Node, index: int = 0) -> str | None:
        if len(node.args) <= index:
            self.diag.error(node.where, f"{node.keyword}: missing value")
            return None
        return node.args[index]

    def no_more(self, node: Node, count: int) -> None:
        if len(node.args) > count:
            self.diag.error(node.where, f"{node.keyword}: unexpected "
                                        f"'{' '.join(node.args[count:])}'")

    def integer(self, node: Node, low: int, high: int, index: int = 0,
                value: str | None = None) -> int | None:
        text = value if value is not None else self.arg(node, index)
        if text is None:
            return None
        try:
            number = int(text, 10)
        except ValueError:
            self.diag.error(node.where, f"{node.keyword}: '{text}' is not an integer")
            return None
        if not low <= number <= high:
            self.diag.error(node.where, f"{node.keyword}: {number} is out of range {low}..{high}")
            return None
        return number

    def timer(self, node: Node, low: float, high: float, index: int = 0) -> float | None:
        text = self.arg(node, index)
        if text is None:
            return None
        try:
            number = float(text)
        except ValueError:
            self.diag.error(node.where, f"{node.keyword}: '{text}' is not a number of seconds")
            return None
        if not low <= number <= high:
            self.diag.error(node.where, f"{node.keyword}: {text} is out of range {low:g}..{high:g}")
            return None
        return round(number, 6)  # keepalived's timers have microsecond resolution

    def boolean(self, node: Node) -> bool:
        """A BOOL keyword: bare means true, or on|off|true|false|yes|no."""
        if not node.args:
            return True
        value = BOOLS.get(node.args[0].lower())
        if value is None:
            self.diag.error(node.where, f"{node.keyword}: '{node.args[0]}' is not one of "
                                        "on|off|true|false|yes|no")
            return True
        self.no_more(node, 1)
        return value

    def address(self, node: Node, text: str | None, family: int | None = None):
        if text is None:
            return None
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            self.diag.error(node.where, f"{node.keyword}: '{text}' is not an IP address")
            return None
        if family and ip.version != family:
            self.diag.error(node.where, f"{node.keyword}: {text} is not an IPv{family} address")
            return None
        return ip

    def script(self, node: Node) -> Script | None:
        command = self.arg(node)
        if command is None:
            return None
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            self.diag.error(node.where, f"{node.keyword}: {exc} in '{command}'")
            return None
        if not argv:
            self.diag.error(node.where, f"{node.keyword}: empty command")
            return None
        user = node.args[1] if len(node.args) > 1 else None
        group = node.args[2].lstrip(":") if len(node.args) > 2 else None
        self.no_more(node, 3)
        return Script(command, argv, user, group)

    def block(self, node: Node) -> list[Node]:
        if node.children is None:
            self.diag.error(node.where, f"{node.keyword}: expected a '{{' block")
            return []
        return node.children

    def unexpected_block(self, node: Node) -> bool:
        if node.children is not None:
            self.diag.error(node.where, f"{node.keyword} does not take a '{{' block")
            return True
        return False

    def dispatch(self, node: Node, handlers: dict[str, Callable], ignored: frozenset[str],
                 section: str, target) -> None:
        handler = handlers.get(node.keyword)
        if handler is not None:
            if node.is_block and node.keyword not in BLOCK_KEYWORDS:
                self.diag.error(node.where, f"{node.keyword} does not take a '{{' block")
                return
            errors_before = len(self.diag.items)
            handler(self, node, target)
            if node.keyword in REQUIRED and len(self.diag.items) > errors_before:
                # Reported already: drop the instance later without a second
                # "not set" error for the same line.
                target.complete = False
        elif node.keyword in ignored:
            self.diag.warning(node.where, f"'{node.keyword}' in {section} is not supported by "
                                          "hivrrp and is ignored")
        else:
            self.diag.error(node.where, f"unknown keyword '{node.keyword}' in {section}")

    # -------------------------------------------------------- top level

    def build(self, nodes: list[Node]) -> Config:
        for node in nodes:
            if node.keyword in TOP_LEVEL:
                TOP_LEVEL[node.keyword](self, node)
            elif node.keyword in keywords.IGNORED_TOP_LEVEL:
                self.diag.warning(node.where, f"'{node.keyword}' is not supported by hivrrp "
                                              "(keepalived's IPVS, BFD and static parts are "
                                              "not implemented); the section is ignored")
            else:
                self.diag.error(node.where, f"unknown keyword '{node.keyword}'")
        return self.config

    def named(self, node: Node, what: str) -> str | None:
        if not node.args:
            self.diag.error(node.where, f"{node.keyword} needs a name")
            return None
        self.no_more(node, 1)
        return node.args[0]

    def global_defs(self, node: Node) -> None:
        for child in self.block(node):
            self.dispatch(child, GLOBAL_HANDLERS, keywords.IGNORED_GLOBAL, "global_defs",
                          self.config.global_defs)

    def instance(self, node: Node) -> None:
        name = self.named(node, "instance")
        if name is None:
            return
        instance = Instance(name, node.where)
        for child in self.block(node):
            self.dispatch(child, INSTANCE_HANDLERS, keywords.IGNORED_INSTANCE,
                          f"vrrp_instance {name}", instance)
        self.config.instances.append(instance)

    def sync_group(self, node: Node) -> None:
        name = self.named(node, "sync group")
        if name is None:
            return
        group = SyncGroup(name, node.where)
        for child in self.block(node):
            self.dispatch(child, SYNC_GROUP_HANDLERS, keywords.IGNORED_SYNC_GROUP,
                          f"vrrp_sync_group {name}", group)
        self.config.sync_groups.append(group)

    def vrrp_script(self, node: Node) -> None:
        name = self.named(node, "script")
        if name is None:
            return
        script = VrrpScript(name, node.where)
        for child in self.block(node):
            self.dispatch(child, SCRIPT_HANDLERS, frozenset(), f"vrrp_script {name}", script)
        if script.script is None:
            self.diag.error(node.where, f"vrrp_script {name}: no 'script' given")
        self.unique(self.config.scripts, name, script, node, "vrrp_script")

    def track_process(self, node: Node) -> None:
        name = self.named(node, "process tracker")
        if name is None:
            return
        tracker = TrackProcess(name, node.where)
        for child in self.block(node):
            self.dispatch(child, PROCESS_HANDLERS, frozenset(), f"vrrp_track_process {name}",
                          tracker)
        if tracker.process is None:
            self.diag.error(node.where, f"vrrp_track_process {name}: no 'process' given")
        self.unique(self.config.track_processes, name, tracker, node, "vrrp_track_process")

    def track_file(self, node: Node) -> None:
        name = self.named(node, "file tracker")
        if name is None:
            return
        if node.keyword == "vrrp_track_file":
            self.diag.warning(node.where, "vrrp_track_file is deprecated, use track_file")
        tracker = TrackFile(name, node.where)
        for child in self.block(node):
            self.dispatch(child, FILE_HANDLERS, frozenset(), f"track_file {name}", tracker)
        if tracker.path is None:
            self.diag.error(node.where, f"track_file {name}: no 'file' given")
        self.unique(self.config.track_files, name, tracker, node, "track_file")

    def unique(self, table: dict, name: str, item, node: Node, what: str) -> None:
        if name in table:
            self.diag.error(node.where, f"{what} {name} is already defined at "
                                        f"{table[name].where}")
        else:
            table[name] = item


# ------------------------------------------------------------ global_defs

def _set(attribute: str, kind: str, *limits):
    """A handler storing one typed value on the target object."""

    def handler(b: Builder, node: Node, target) -> None:
        if b.unexpected_block(node):
            return
        if kind == "bool":
            value = b.boolean(node)
        elif kind == "int":
            value = b.integer(node, *limits)
            b.no_more(node, 1)
        elif kind == "timer":
            value = b.timer(node, *limits)
            b.no_more(node, 1)
        elif kind == "word":
            value = b.arg(node)
            b.no_more(node, 1)
        else:  # "text": everything after the keyword
            value = " ".join(node.args) or None
            if value is None:
                b.diag.error(node.where, f"{node.keyword}: missing value")
        if value is not None:
            setattr(target, attribute, value)

    return handler


def _version(b: Builder, node: Node, target) -> None:
    value = b.integer(node, 2, 3)
    b.no_more(node, 1)
    if value is not None:
        setattr(target, "vrrp_version" if isinstance(target, GlobalDefs) else "version", value)


def _mcast_group(family: int):
    def handler(b: Builder, node: Node, target: GlobalDefs) -> None:
        ip = b.address(node, b.arg(node), family)
        b.no_more(node, 1)
        if ip is not None:
            if not ip.is_multicast:
                b.diag.error(node.where, f"{node.keyword}: {ip} is not a multicast address")
            else:
                setattr(target, f"mcast_group{family}", ip)
    return handler


def _script_user(b: Builder, node: Node, target: GlobalDefs) -> None:
    target.script_user = b.arg(node)
    if len(node.args) > 1:
        target.script_group = node.args[1].lstrip(":")
    b.no_more(node, 2)


def _notification_email(b: Builder, node: Node, target: GlobalDefs) -> None:
    for child in b.block(node):
        target.notification_email.extend([child.keyword, *child.args])


def _smtp_server(b: Builder, node: Node, target: GlobalDefs) -> None:
    target.smtp_server = b.arg(node)
    if len(node.args) > 1:
        b.integer(node, 1, 65535, 1)
    b.no_more(node, 2)


def _fifo(attribute: str):
    def handler(b: Builder, node: Node, target: GlobalDefs) -> None:
        setattr(target, attribute, b.arg(node))
    return handler


GLOBAL_HANDLERS: dict[str, Callable] = {
    "router_id": _set("router_id", "word"),
    "vrrp_version": _version,
    "vrrp_mcast_group4": _mcast_group(4),
    "vrrp_mcast_group6": _mcast_group(6),
    "vrrp_garp_master_delay": _set("garp_master_delay", "timer", 0, 86400),
    "vrrp_garp_master_repeat": _set("garp_master_repeat", "int", 0, 255),
    "vrrp_garp_lower_prio_delay": _set("garp_lower_prio_delay", "timer", 0, 86400),
    "vrrp_garp_lower_prio_repeat": _set("garp_lower_prio_repeat", "int", 0, 255),
    "vrrp_garp_master_refresh": _set("garp_master_refresh", "timer", 0, 86400),
    "vrrp_garp_master_refresh_repeat": _set("garp_master_refresh_repeat", "int", 0, 255),
    "vrrp_garp_interval": _set("garp_interval", "timer", 0, 1),
    "vrrp_gna_interval": _set("gna_interval", "timer", 0, 1),
    "vrrp_min_garp": _set("min_garp", "bool"),
    "vrrp_down_timer_adverts": _set("down_timer_adverts", "int", 1, 100),
    "vrrp_lower_prio_no_advert": _set("lower_prio_no_advert", "bool"),
    "vrrp_higher_prio_send_advert": _set("higher_prio_send_advert", "bool"),
    "vrrp_skip_check_adv_addr": _set("skip_check_adv_addr", "bool"),
    "vrrp_check_unicast_src": _set("check_unicast_src", "bool"),
    "v3_checksum_as_v2": _set("v3_checksum_as_v2", "bool"),
    "vrrp_owner_ignore_adverts": _set("owner_ignore_adverts", "bool"),
    "vrrp_startup_delay": _set("startup_delay", "timer", 0, 3600),
    "script_user": _script_user,
    "enable_script_security": _set("enable_script_security", "bool"),
    "notification_email": _notification_email,
    "notification_email_from": _set("notification_email_from", "text"),
    "smtp_server": _smtp_server,
    "smtp_connect_timeout": _set("smtp_connect_timeout", "int", 1, 3600),
    "smtp_helo_name": _set("smtp_helo_name", "word"),
    "smtp_alert": _set("smtp_alert", "bool"),
    "smtp_alert_vrrp": _set("smtp_alert_vrrp", "bool"),
    "notify_fifo": _fifo("notify_fifo"),
    "vrrp_notify_fifo": _fifo("vrrp_notify_fifo"),
    "vrrp_notify_priority_changes": _set("notify_priority_changes", "bool"),
    "dynamic_interfaces": _set("dynamic_interfaces", "bool"),
    "log_unknown_vrids": _set("log_unknown_vrids", "bool"),
}


# ---------------------------------------------------------- vrrp_instance

def _state(b: Builder, node: Node, inst: Instance) -> None:
    value = b.arg(node)
    b.no_more(node, 1)
    if value is None:
        return
    if value not in ("MASTER", "BACKUP"):
        b.diag.error(node.where, f"state: '{value}' is not MASTER or BACKUP")
        return
    inst.state = value


def _priority(b: Builder, node: Node, inst: Instance) -> None:
    value = b.integer(node, 1, 255)
    b.no_more(node, 1)
    if value is not None:
        inst.priority, inst.priority_given = value, True


def _advert_int(b: Builder, node: Node, inst: Instance) -> None:
    value = b.timer(node, 0.001, 255)
    b.no_more(node, 1)
    if value is not None:
        inst.advert_int = value


def _authentication(b: Builder, node: Node, inst: Instance) -> None:
    for child in b.block(node):
        if child.keyword == "auth_type":
            value = b.arg(child)
            if value == "PASS":
                inst.auth_type = "PASS"
            elif value == "AH":
                b.diag.error(child.where, "auth_type AH (IPsec AH) is not supported by hivrrp; "
                                          "use PASS or no authentication")
            elif value is not None:
                b.diag.error(child.where, f"auth_type: '{value}' is not PASS or AH")
        elif child.keyword == "auth_pass":
            value = b.arg(child)
            if value is not None:
                if len(value) > 8:
                    b.diag.warning(child.where, "auth_pass is longer than 8 characters; "
                                                "only the first 8 are used (as keepalived does)")
                inst.auth_pass = value[:8]
        else:
            b.diag.error(child.where, f"unknown keyword '{child.keyword}' in authentication")


VIP_FLAGS = {"home", "-nodad", "nodad", "mngtmpaddr", "noprefixroute", "autojoin", "no_track",
             "use_vmac"}
VIP_VALUES = {"brd", "broadcast", "dev", "scope", "label", "peer", "preferred_lft"}
SCOPES = {"site", "link", "host", "nowhere", "global"}


def parse_prefix(text: str) -> tuple[int, str, int] | None:
    """(family, normalised address, prefix length) of "ADDR[/LEN]", or None.

    inet_pton rather than ipaddress: a generated config has tens of thousands
    of VIPs and ipaddress objects cost ~10x more to build.
    """
    address, _, length = text.partition("/")
    for family, af, bits in ((4, socket.AF_INET, 32), (6, socket.AF_INET6, 128)):
        try:
            packed = socket.inet_pton(af, address)
        except OSError:
            continue
        if family == 4 and address.count(".") != 3:
            return None
        if not length:
            return family, socket.inet_ntop(af, packed), bits
        if not length.isdigit() or int(length) > bits:
            return None
        return family, socket.inet_ntop(af, packed), int(length)
    return None


def _vip(b: Builder, node: Node) -> Vip | None:
    text = node.keyword
    parsed = parse_prefix(text)
    if parsed is None:
        b.diag.error(node.where, f"'{text}' is not an IP address (with optional /prefix)")
        return None
    family, address, prefixlen = parsed
    options: dict[str, str | bool] = {}
    words = list(node.args)
    while words:
        word = words.pop(0)
        if word in VIP_FLAGS:
            options[word.lstrip("-")] = True
        elif word in VIP_VALUES:
            if not words:
                b.diag.error(node.where, f"{text}: '{word}' needs a value")
                break
            value = words.pop(0)
            if word == "scope" and value not in SCOPES:
                b.diag.error(node.where, f"{text}: scope '{value}' is not one of "
                                         f"{'|'.join(sorted(SCOPES))}")
            if word == "peer":
                b.address(node, value.split("/")[0], family)
            options["brd" if word == "broadcast" else word] = value
        else:
            b.diag.error(node.where, f"{text}: unknown address option '{word}'")
    return Vip(text, address, prefixlen, family, node.where, options)


def _vips(attribute: str, mixed_families: bool):
    def handler(b: Builder, node: Node, inst: Instance) -> None:
        target = getattr(inst, attribute)
        for child in b.block(node):
            vip = _vip(b, child)
            if vip is None:
                continue
            if target and not mixed_families and vip.family != target[0].family:
                b.diag.error(child.where, f"{vip.text}: all virtual_ipaddress entries of an "
                                          "instance must be of one family (use "
                                          "virtual_ipaddress_excluded for the other)")
                continue
            target.append(vip)
    return handler


ROUTE_VALUES = {"src", "to", "via", "gw", "or", "dev", "scope", "table", "metric", "proto",
                "tos", "realms", "mtu", "advmss", "rtt", "rttvar", "reordering", "window",
                "cwnd", "ssthresh", "initcwnd", "initrwnd", "features", "quickack",
                "congctl", "rto_min", "hoplimit", "fastopen_no_cookie", "pref", "nexthop",
                "weight", "onlink", "encap", "expires", "type", "ttl-propagate"}
ROUTE_TYPES = {"blackhole", "unreachable", "prohibit", "throw"}


def _routes(b: Builder, node: Node, inst: Instance) -> None:
    for child in b.block(node):
        words = [child.keyword, *child.args]
        route = Route(" ".join(words), child.where)
        if words[0] in ROUTE_TYPES:
            route.options["type"] = words.pop(0)
        while words:
            word = words.pop(0)
            if word in ("no_track", "onlink"):
                route.options[word] = True
            elif word in ROUTE_VALUES and words:
                value = words.pop(0)
                if word in ("via", "gw", "src", "or"):
                    b.address(child, value)
                route.options[word if word != "gw" else "via"] = value
                if word == "to":
                    route.destination = value
            elif route.destination is None:
                route.destination = word
            else:
                b.diag.error(child.where, f"virtual_routes: unexpected '{word}'")
                break
        if route.destination is None:
            b.diag.error(child.where, "virtual_routes: no destination prefix")
            continue
        if route.destination not in ("default", "all"):
            try:
                ipaddress.ip_network(route.destination, strict=False)
            except ValueError:
                b.diag.error(child.where, f"virtual_routes: '{route.destination}' is not a prefix")
                continue
        inst.routes.append(route)


RULE_VALUES = {"from", "to", "table", "lookup", "iif", "oif", "fwmark", "preference", "priority",
               "pref", "tos", "dsfield", "realms", "goto", "suppress_prefixlength",
               "suppress_ifgroup", "uidrange", "sport", "dport", "ipproto", "l3mdev",
               "protocol"}


def _rules(b: Builder, node: Node, inst: Instance) -> None:
    for child in b.block(node):
        words = [child.keyword, *child.args]
        rule = Rule(" ".join(words), child.where)
        while words:
            word = words.pop(0)
            if word in ("no_track", "not", "l3mdev", "unreachable", "prohibit", "blackhole"):
                rule.options[word] = True
            elif word in RULE_VALUES and words:
                rule.options[word] = words.pop(0)
            else:
                b.diag.error(child.where, f"virtual_rules: unexpected '{word}'")
                break
        else:
            try:
                rule_spec(rule.options, 4)  # what the kernel would refuse, refused now
            except (ValueError, KeyError) as exc:
                b.diag.error(child.where, f"virtual_rules: {exc}")
        inst.rules.append(rule)


def _unicast_src(b: Builder, node: Node, inst: Instance) -> None:
    inst.unicast_src_ip = b.address(node, b.arg(node))
    b.no_more(node, 1)


def _unicast_peers(b: Builder, node: Node, inst: Instance) -> None:
    for child in b.block(node):
        ip = b.address(child, child.keyword)
        if ip is None:
            continue
        peer = Peer(ip)
        words = list(child.args)
        while words:
            word = words.pop(0)
            if word in ("min_ttl", "max_ttl") and words:
                value = b.integer(child, 0, 255, value=words.pop(0))
                setattr(peer, word, value)
            else:
                b.diag.error(child.where, f"unicast_peer {ip}: unexpected '{word}'")
                break
        if any(p.address == ip for p in inst.unicast_peers):
            b.diag.warning(child.where, f"unicast_peer {ip} is listed twice")
            continue
        inst.unicast_peers.append(peer)


def _address_attribute(attribute: str):
    def handler(b: Builder, node: Node, inst: Instance) -> None:
        setattr(inst, attribute, b.address(node, b.arg(node)))
        b.no_more(node, 1)
    return handler


def _nopreempt(b: Builder, node: Node, inst: Instance) -> None:
    b.no_more(node, 0)
    inst.nopreempt = True


def _preempt(b: Builder, node: Node, inst: Instance) -> None:
    b.no_more(node, 0)  # keepalived keeps it for compatibility: preemption is the default


def _garp(attribute: str, kind: str, *limits):
    def handler(b: Builder, node: Node, inst: Instance) -> None:
        value = b.integer(node, *limits) if kind == "int" else b.timer(node, *limits)
        b.no_more(node, 1)
        if value is not None:
            inst.garp[attribute] = value
    return handler


def _accept(value: bool):
    def handler(b: Builder, node: Node, inst: Instance) -> None:
        b.no_more(node, 0)
        if not value:
            b.diag.warning(node.where, "no_accept is not supported by hivrrp yet: the VIPs "
                                       "accept traffic on a non-owner master")
        inst.accept = value
    return handler


def _track_list(kind: str):
    limit = TRACK_WEIGHT_LIMITS[kind]

    def handler(b: Builder, node: Node, target) -> None:
        for child in b.block(node):
            weight, reverse = None, False
            words = list(child.args)
            while words:
                word = words.pop(0)
                if word == "weight" and words:
                    weight = b.integer(child, -limit, limit, value=words.pop(0))
                elif word == "reverse":
                    reverse = True
                elif word == "noreverse" and kind == "script":
                    reverse = False
                else:
                    b.diag.error(child.where, f"{node.keyword} {child.keyword}: unexpected "
                                              f"'{word}'")
                    break
            target.tracks.append(TrackRef(kind, child.keyword, weight, reverse, child.where))
    return handler


NOTIFY_EVENTS = {"notify_master": "master", "notify_backup": "backup", "notify_fault": "fault",
                 "notify_stop": "stop", "notify_deleted": "deleted", "notify": "any"}


def _notify(b: Builder, node: Node, target) -> None:
    script = b.script(node)
    if script is not None:
        target.notify[NOTIFY_EVENTS[node.keyword]] = script


def _notify_rx_lower(b: Builder, node: Node, inst: Instance) -> None:
    inst.notify_master_rx_lower_pri = b.script(node)


def _use_vmac(b: Builder, node: Node, inst: Instance) -> None:
    b.diag.warning(node.where, "use_vmac is not supported by hivrrp yet: the VIPs are added "
                               "to the interface itself")
    inst.use_vmac = node.args[0] if node.args else True


def _ignore_with_value(b: Builder, node: Node, inst: Instance) -> None:
    """Accepted for compatibility with no effect (keepalived's own no-ops)."""


INSTANCE_HANDLERS: dict[str, Callable] = {
    "state": _state,
    "interface": _set("interface", "word"),
    "virtual_router_id": _set("vrid", "int", 1, 255),
    "priority": _priority,
    "advert_int": _advert_int,
    "version": _version,
    "authentication": _authentication,
    "virtual_ipaddress": _vips("vips", mixed_families=False),
    "virtual_ipaddress_excluded": _vips("excluded_vips", mixed_families=True),
    "virtual_routes": _routes,
    "virtual_rules": _rules,
    "unicast_src_ip": _unicast_src,
    "unicast_peer": _unicast_peers,
    "unicast_ttl": _set("unicast_ttl", "int", 1, 255),
    "mcast_src_ip": _address_attribute("mcast_src_ip"),
    "mcast_dst_ip": _address_attribute("mcast_dst_ip"),
    "nopreempt": _nopreempt,
    "preempt": _preempt,
    "preempt_delay": _set("preempt_delay", "timer", 0, 1000),
    "garp_master_delay": _garp("master_delay", "timer", 0, 86400),
    "garp_master_repeat": _garp("master_repeat", "int", 0, 255),
    "garp_master_refresh": _garp("master_refresh", "timer", 0, 86400),
    "garp_master_refresh_repeat": _garp("master_refresh_repeat", "int", 0, 255),
    "garp_lower_prio_delay": _garp("lower_prio_delay", "timer", 0, 86400),
    "garp_lower_prio_repeat": _garp("lower_prio_repeat", "int", 0, 255),
    "accept": _accept(True),
    "no_accept": _accept(False),
    "track_interface": _track_list("interface"),
    "track_script": _track_list("script"),
    "track_file": _track_list("file"),
    "track_process": _track_list("process"),
    **{keyword: _notify for keyword in NOTIFY_EVENTS},
    "notify_master_rx_lower_pri": _notify_rx_lower,
    "notify_priority_changes": _set("notify_priority_changes", "bool"),
    "smtp_alert": _set("smtp_alert", "bool"),
    "use_vmac": _use_vmac,
    "down_timer_adverts": _set("down_timer_adverts", "int", 1, 100),
    "lower_prio_no_advert": _set("lower_prio_no_advert", "bool"),
    "higher_prio_send_advert": _set("higher_prio_send_advert", "bool"),
    "skip_check_adv_addr": _set("skip_check_adv_addr", "bool"),
    "check_unicast_src": _set("check_unicast_src", "bool"),
    "dont_track_primary": _set("dont_track_primary", "bool"),
    "debug": _ignore_with_value,
}

def _group_members(b: Builder, node: Node, group: SyncGroup) -> None:
    for child in b.block(node):
        group.members.extend([child.keyword, *child.args])  # one or several per line


SYNC_GROUP_HANDLERS: dict[str, Callable] = {
    "group": _group_members,
    "track_interface": _track_list("interface"),
    "track_script": _track_list("script"),
    "track_file": _track_list("file"),
    "track_process": _track_list("process"),
    **{keyword: _notify for keyword in NOTIFY_EVENTS},
    "smtp_alert": _set("smtp_alert", "bool"),
    "notify_priority_changes": _set("notify_priority_changes", "bool"),
    "sync_group_tracking_weight": _set("tracking_weight", "bool"),
}


# ------------------------------------------------------------- trackers

def _weight(b: Builder, node: Node, target, limit: int) -> None:
    value = b.integer(node, -limit, limit)
    if value is None:
        return
    target.weight = value
    for word in node.args[1:]:
        if word == "reverse":
            target.reverse = True
        else:
            b.diag.error(node.where, f"weight: unexpected '{word}'")


def _script_command(b: Builder, node: Node, script: VrrpScript) -> None:
    script.script = b.script(node)


def _script_user(b: Builder, node: Node, script: VrrpScript) -> None:
    if script.script is not None:
        script.script.user = b.arg(node)
        if len(node.args) > 1:
            script.script.group = node.args[1].lstrip(":")


SCRIPT_HANDLERS: dict[str, Callable] = {
    "script": _script_command,
    "interval": _set("interval", "timer", 0.001, 86400),
    "timeout": _set("timeout", "timer", 0, 86400),
    "weight": lambda b, node, s: _weight(b, node, s, 253),
    "rise": _set("rise", "int", 1, 1000),
    "fall": _set("fall", "int", 1, 1000),
    "user": _script_user,
    "init_fail": _set("init_fail", "bool"),
}


def _process(b: Builder, node: Node, tracker: TrackProcess) -> None:
    name = b.arg(node)
    if name is not None:
        tracker.process, tracker.params = name, list(node.args[1:])


def _param_match(b: Builder, node: Node, tracker: TrackProcess) -> None:
    value = node.args[0] if node.args else None
    if value not in (None, "initial", "partial"):
        b.diag.error(node.where, f"param_match: '{value}' is not initial or partial")
        return
    tracker.param_match = value or "exact"
    tracker.full_command = True


def _delay(b: Builder, node: Node, tracker: TrackProcess) -> None:
    value = b.timer(node, 0.000001, 3600)
    if value is not None:
        tracker.fork_delay = tracker.terminate_delay = value


PROCESS_HANDLERS: dict[str, Callable] = {
    "process": _process,
    "param_match": _param_match,
    "weight": lambda b, node, t: _weight(b, node, t, 254),
    "quorum": _set("quorum", "int", 1, 65535),
    "quorum_max": _set("quorum_max", "int", 0, 65535),
    "fork_delay": _set("fork_delay", "timer", 0.000001, 3600),
    "terminate_delay": _set("terminate_delay", "timer", 0.000001, 3600),
    "delay": _delay,
    "full_command": _set("full_command", "bool"),
}


def _init_file(b: Builder, node: Node, tracker: TrackFile) -> None:
    words = list(node.args)
    tracker.init_file = 0
    if words and words[0] != "overwrite":
        tracker.init_file = b.integer(node, -2147483648, 2147483647, value=words.pop(0)) or 0
    if words and words[0] == "overwrite":
        tracker.init_overwrite = True
        words.pop(0)
    if words:
        b.diag.error(node.where, f"init_file: unexpected '{' '.join(words)}'")


FILE_HANDLERS: dict[str, Callable] = {
    "file": _set("path", "word"),
    "weight": lambda b, node, t: _weight(b, node, t, 254),
    "init_file": _init_file,
}

TOP_LEVEL: dict[str, Callable] = {
    "global_defs": Builder.global_defs,
    "vrrp_instance": Builder.instance,
    "vrrp_sync_group": Builder.sync_group,
    "vrrp_script": Builder.vrrp_script,
    "vrrp_track_process": Builder.track_process,
    "track_file": Builder.track_file,
    "vrrp_track_file": Builder.track_file,
}
