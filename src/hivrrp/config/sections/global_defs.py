"""global_defs: process-wide settings and defaults of every instance."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hivrrp.config import keywords
from hivrrp.config.model import DEFAULT_NFTABLES_TABLE as DEFAULT_TABLE
from hivrrp.config.model import GlobalDefs
from hivrrp.config.sections.common import setter, version
from hivrrp.config.tree import Node

if TYPE_CHECKING:
    from hivrrp.config.builder import Builder


def global_defs(b: Builder, node: Node) -> None:
    for child in b.block(node):
        b.dispatch(child, GLOBAL_HANDLERS, keywords.IGNORED_GLOBAL, "global_defs",
                   b.config.global_defs)


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
    b.diag.written("script_user", node.where, node.keyword)   # for validate.scripts


_security = setter("enable_script_security", "bool")


def _enable_script_security(b: Builder, node: Node, target: GlobalDefs) -> None:
    _security(b, node, target)
    b.diag.written("enable_script_security", node.where, node.keyword)


def _notify_script_timeout(b: Builder, node: Node, target: GlobalDefs) -> None:
    seconds = b.timer(node, 0, 86400)
    b.no_more(node, 1)
    if seconds is not None:
        target.notify_script_timeout = seconds or None   # 0: no timeout, as keepalived


def _vrrp_strict(b: Builder, node: Node, target: GlobalDefs) -> None:
    # keepalived 2.2.7 reads no value: `vrrp_strict off` turns strict mode on.
    if node.args:
        b.diag.warning(node.where, f"vrrp_strict takes no value: '{' '.join(node.args)}' is "
                                   "ignored and strict mode is on, as in keepalived")
    target.vrrp_strict = True


def _notification_email(b: Builder, node: Node, target: GlobalDefs) -> None:
    for child in b.block(node):
        target.notification_email.extend([child.keyword, *child.args])


def _smtp_server(b: Builder, node: Node, target: GlobalDefs) -> None:
    target.smtp_server = b.arg(node)
    if len(node.args) > 1:
        b.integer(node, 1, 65535, 1)
    b.no_more(node, 2)


def _vmac_prefix(b: Builder, node: Node, target: GlobalDefs) -> None:
    prefix = b.arg(node)
    b.no_more(node, 1)
    if prefix is None:
        return
    # keepalived takes any word (and cuts it to fit); one that no interface
    # name may hold would only fail at the first VMAC.
    if any(c in "/:" or c.isspace() for c in prefix):
        b.diag.warning(node.where, f"vmac_prefix '{prefix}': interface names cannot hold "
                                   "'/', ':' or blanks; no VMAC can be created with it")
    target.vmac_prefix = prefix


def _fifo(attribute: str):   # one path argument (FIFOs, dump files)
    def handler(b: Builder, node: Node, target: GlobalDefs) -> None:
        setattr(target, attribute, b.arg(node))
    return handler


# keepalived's NFT_TABLE_MAXNAMELEN, in bytes with the NUL, as the kernel
# counts it: a longer table name is refused (ERANGE), and no_accept with it.
NFT_NAME_MAXLEN = 256


def _nftables(b: Builder, node: Node, target: GlobalDefs) -> None:
    """`nftables [NAME]`, as keepalived: the first one wins (a `vrrp_iptables`
    before it counts), and it puts the chain priority back to -1. What it
    ignores is a config error it runs with (-t exits 5): a second one, and a
    name too long (in bytes: keepalived's strlen), after which the table is
    the default one, as keepalived's is."""
    b.no_more(node, 1)
    if target.nftables_table is not None:
        b.diag.error(node.where, "nftables already specified - ignoring", fatal=False)
        return
    name = node.args[0] if node.args else DEFAULT_TABLE
    if len(name.encode()) >= NFT_NAME_MAXLEN:
        b.diag.error(node.where, "nftables table name too long - ignoring", fatal=False)
        return
    target.nftables_table = name
    target.nftables_priority = -1


def _vrrp_iptables(b: Builder, node: Node, target: GlobalDefs) -> None:
    # keepalived built without iptables (Debian's) does the same: an nftables
    # table of the default name, and a line saying so.
    b.diag.warning(node.where, "hivrrp filters with nftables, not iptables: vrrp_iptables "
                               f"means an nftables table '{target.nftables_table or DEFAULT_TABLE}'"
                               "; replace it with 'nftables'")
    if target.nftables_table is None:
        target.nftables_table = DEFAULT_TABLE
        target.nftables_priority = -1


def _ignore(b: Builder, node: Node, target: GlobalDefs) -> None:
    """Accepted with no effect: what it asks for is what hivrrp always does."""
    b.no_more(node, 0)


GLOBAL_HANDLERS: dict[str, Callable] = {
    "router_id": setter("router_id", "word"),
    "vrrp_version": version,
    "vrrp_mcast_group4": _mcast_group(4),
    "vrrp_mcast_group6": _mcast_group(6),
    "vrrp_garp_master_delay": setter("garp_master_delay", "timer", 0, 86400),
    "vrrp_garp_master_repeat": setter("garp_master_repeat", "int", 0, 255),
    "vrrp_garp_lower_prio_delay": setter("garp_lower_prio_delay", "timer", 0, 86400),
    "vrrp_garp_lower_prio_repeat": setter("garp_lower_prio_repeat", "int", 0, 255),
    "vrrp_garp_master_refresh": setter("garp_master_refresh", "timer", 0, 86400),
    "vrrp_garp_master_refresh_repeat": setter("garp_master_refresh_repeat", "int", 0, 255),
    "vrrp_garp_interval": setter("garp_interval", "timer", 0, 1),
    "vrrp_gna_interval": setter("gna_interval", "timer", 0, 1),
    "vrrp_min_garp": setter("min_garp", "bool"),
    "vrrp_down_timer_adverts": setter("down_timer_adverts", "int", 1, 100),
    "vrrp_lower_prio_no_advert": setter("lower_prio_no_advert", "bool"),
    "vrrp_higher_prio_send_advert": setter("higher_prio_send_advert", "bool"),
    "vrrp_skip_check_adv_addr": setter("skip_check_adv_addr", "bool"),
    "vrrp_check_unicast_src": setter("check_unicast_src", "bool"),
    "v3_checksum_as_v2": setter("v3_checksum_as_v2", "bool"),
    "vrrp_owner_ignore_adverts": setter("owner_ignore_adverts", "bool"),
    "vrrp_strict": _vrrp_strict,
    "vrrp_startup_delay": setter("startup_delay", "timer", 0, 3600),
    "script_user": _script_user,
    "enable_script_security": _enable_script_security,
    "notification_email": _notification_email,
    "notification_email_from": setter("notification_email_from", "text"),
    "smtp_server": _smtp_server,
    "smtp_connect_timeout": setter("smtp_connect_timeout", "int", 1, 3600),
    "smtp_helo_name": setter("smtp_helo_name", "word"),
    "smtp_alert": setter("smtp_alert", "bool"),
    "smtp_alert_vrrp": setter("smtp_alert_vrrp", "bool"),
    "notify_fifo": _fifo("notify_fifo"),
    "vrrp_notify_fifo": _fifo("vrrp_notify_fifo"),
    "notify_fifo_script": lambda b, node, g: setattr(g, "notify_fifo_script", b.script(node)),
    "stats_file_location": _fifo("stats_file"),
    "state_file_location": _fifo("data_file"),
    "vrrp_notify_fifo_script": lambda b, node, g: setattr(g, "vrrp_notify_fifo_script",
                                                          b.script(node)),
    "vrrp_notify_priority_changes": setter("notify_priority_changes", "bool"),
    "dynamic_interfaces": setter("dynamic_interfaces", "bool"),
    "log_unknown_vrids": setter("log_unknown_vrids", "bool"),
    "vmac_prefix": _vmac_prefix,
    "disable_local_igmp": setter("disable_local_igmp", "bool"),
    "nftables": _nftables,
    "nftables_priority": setter("nftables_priority", "int", -2**31, 2**31 - 1),
    "nftables_counters": setter("nftables_counters", "bool"),
    # keepalived keys the IPv6 link-local VIPs of dont_track_primary instances
    # by interface name unless this is set; hivrrp keys them all by index (a
    # rebuild follows an interface that comes back with another one).
    "nftables_ifindex": _ignore,
    "vrrp_iptables": _vrrp_iptables,
    # hivrrp's own (keywords.HIVRRP_GLOBAL)
    "hivrrp_notify_script_timeout": _notify_script_timeout,
    "hivrrp_notify_script_concurrency": setter("notify_script_concurrency", "int", 1, 65535),
}
