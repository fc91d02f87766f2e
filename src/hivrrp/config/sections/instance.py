"""vrrp_instance: one virtual router and its keywords."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hivrrp.config import keywords
from hivrrp.config.model import Instance, Peer
from hivrrp.config.sections.addresses import routes, rules, vips
from hivrrp.config.sections.common import setter, version
from hivrrp.config.sections.notify import NOTIFY_EVENTS, notify, notify_rx_lower
from hivrrp.config.sections.trackers import track_list
from hivrrp.config.tree import Node

if TYPE_CHECKING:
    from hivrrp.config.builder import Builder


# Keywords whose line strict mode's messages point at (config/strict.py);
# the model keeps no position of its own for them.
PLACED = frozenset({
    "version", "state", "authentication", "use_vmac", "vmac_xmit_base", "preempt_delay",
    "down_timer_adverts", "accept", "garp_lower_prio_repeat", "garp_lower_prio_delay",
    "lower_prio_no_advert", "higher_prio_send_advert", "owner_ignore_adverts", "unicast_peer",
})


def instance(b: Builder, node: Node) -> None:
    inst = b.section(node, "instance", Instance, INSTANCE_HANDLERS, keywords.IGNORED_INSTANCE)
    if inst is not None:
        b.config.instances.append(inst)
        for child in node.children or ():
            if child.keyword in PLACED:
                b.diag.written((id(inst), child.keyword), child.where, child.keyword)


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
                b.not_acted_on(word, child)  # options of a peer line, not keywords of their own
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
        inst.accept = value
    return handler

def _use_vmac(b: Builder, node: Node, inst: Instance) -> None:
    b.diag.warning(node.where, "use_vmac is not supported by hivrrp yet: the VIPs are added "
                               "to the interface itself")
    # keepalived: up to two words, a MAC address (it has a ':', which no
    # interface name can) and the VMAC's name, in either order.
    inst.use_vmac = True
    for word in node.args[:2]:
        if ":" in word:
            inst.vmac_mac = word
        else:
            inst.use_vmac = word
    b.no_more(node, 2)


def _vmac_xmit_base(b: Builder, node: Node, inst: Instance) -> None:
    b.no_more(node, 0)
    b.diag.warning(node.where, "vmac_xmit_base is not supported by hivrrp yet (use_vmac "
                               "neither): adverts go out of the interface itself")
    inst.vmac_xmit_base = True


def _ignore_with_value(b: Builder, node: Node, inst: Instance) -> None:
    """Accepted for compatibility with no effect (keepalived's own no-ops)."""


INSTANCE_HANDLERS: dict[str, Callable] = {
    "state": _state,
    "interface": setter("interface", "word"),
    "virtual_router_id": setter("vrid", "int", 1, 255),
    "priority": _priority,
    "advert_int": _advert_int,
    "version": version,
    "authentication": _authentication,
    "virtual_ipaddress": vips("vips", mixed_families=False),
    "virtual_ipaddress_excluded": vips("excluded_vips", mixed_families=True),
    "virtual_routes": routes,
    "virtual_rules": rules,
    "unicast_src_ip": _unicast_src,
    "unicast_peer": _unicast_peers,
    "unicast_ttl": setter("unicast_ttl", "int", 1, 255),
    "mcast_src_ip": _address_attribute("mcast_src_ip"),
    "mcast_dst_ip": _address_attribute("mcast_dst_ip"),
    "nopreempt": _nopreempt,
    "preempt": _preempt,
    "preempt_delay": setter("preempt_delay", "timer", 0, 1000),
    "garp_master_delay": _garp("master_delay", "timer", 0, 86400),
    "garp_master_repeat": _garp("master_repeat", "int", 0, 255),
    "garp_master_refresh": _garp("master_refresh", "timer", 0, 86400),
    "garp_master_refresh_repeat": _garp("master_refresh_repeat", "int", 0, 255),
    "garp_lower_prio_delay": _garp("lower_prio_delay", "timer", 0, 86400),
    "garp_lower_prio_repeat": _garp("lower_prio_repeat", "int", 0, 255),
    "accept": _accept(True),
    "no_accept": _accept(False),
    "track_interface": track_list("interface"),
    "track_script": track_list("script"),
    "track_file": track_list("file"),
    "track_process": track_list("process"),
    **{keyword: notify for keyword in NOTIFY_EVENTS},
    "notify_master_rx_lower_pri": notify_rx_lower,
    "notify_priority_changes": setter("notify_priority_changes", "bool"),
    "smtp_alert": setter("smtp_alert", "bool"),
    "use_vmac": _use_vmac,
    "vmac_xmit_base": _vmac_xmit_base,
    "strict_mode": setter("strict_mode", "bool"),
    "owner_ignore_adverts": setter("owner_ignore_adverts", "bool"),
    "down_timer_adverts": setter("down_timer_adverts", "int", 1, 100),
    "lower_prio_no_advert": setter("lower_prio_no_advert", "bool"),
    "higher_prio_send_advert": setter("higher_prio_send_advert", "bool"),
    "skip_check_adv_addr": setter("skip_check_adv_addr", "bool"),
    "check_unicast_src": setter("check_unicast_src", "bool"),
    "dont_track_primary": setter("dont_track_primary", "bool"),
    "debug": _ignore_with_value,
}
