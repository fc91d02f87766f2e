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


# Keywords whose line strict mode's and validate's corrections point at;
# the model keeps no position of its own for them.
PLACED = frozenset({
    "version", "state", "authentication", "use_vmac", "vmac_xmit_base", "preempt_delay",
    "down_timer_adverts", "accept", "garp_lower_prio_repeat", "garp_lower_prio_delay",
    "lower_prio_no_advert", "higher_prio_send_advert", "owner_ignore_adverts", "unicast_peer",
    "nopreempt", "advert_int", "priority", "follow",
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
    value = b.timer(node, 0.01, 255)   # keepalived's range, v2 and v3 alike
    b.no_more(node, 1)
    if value is not None:
        inst.advert_int = value


def _authentication(b: Builder, node: Node, inst: Instance) -> None:
    for child in b.block(node):
        if child.keyword == "auth_type":
            value = b.arg(child)
            if value in ("PASS", "AH"):
                # AH is judged in validate.authentication: strict mode and VRRPv3
                # take it away, as any authentication, and keepalived runs that.
                inst.auth_type = value
                b.diag.written((id(inst), "auth_type"), child.where, "auth_type")
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
    """`use_vmac [NAME] [MAC]`, checked as keepalived's vrrp_vmac_handler does,
    with its messages: what it ignores is a config error it runs with
    (keepalived -t exits 5), so `check` fails and `run` starts."""
    inst.use_vmac = inst.use_vmac or True
    for word in node.args[:2]:
        if ":" in word:                 # interface names cannot hold a ':'
            if inst.vmac_mac is not None:
                b.diag.error(node.where, "VMAC interface address already specified", fatal=False)
                continue
            _mac, why = vmac_address(word)
            if why is not None:
                b.diag.error(node.where, why, fatal=False)
            else:
                inst.vmac_mac = word     # as written (kernel/vmac_policy.py reads it)
        else:
            if isinstance(inst.use_vmac, str):
                b.diag.error(node.where, "VMAC interface name already specified", fatal=False)
            elif not interface_name_valid(word):
                b.diag.error(node.where, f"VMAC interface name '{word}' too long or invalid "
                                         "characters - ignoring", fatal=False)
            else:
                other = next((i for i in b.config.instances if i.use_vmac == word), None)
                if other is not None:
                    b.diag.error(node.where, f"({inst.name}) VRRP instance {other.name} is "
                                             f"already using {word} - ignoring name",
                                 fatal=False)
                else:
                    inst.use_vmac = word
    if len(node.args) > 2:
        # keepalived reads two words and ignores the rest without a word.
        b.diag.warning(node.where, f"use_vmac: '{' '.join(node.args[2:])}' ignored (a name "
                                   "and a MAC address at most)")


def _vmac_xmit_base(b: Builder, node: Node, inst: Instance) -> None:
    b.no_more(node, 0)
    inst.vmac_xmit_base = True


IFNAMSIZ = 16
RFC5798_PREFIX = b"\x00\x00\x5e\x00"


def interface_name_valid(name: str) -> bool:
    """The kernel's dev_valid_name (keepalived copies it)."""
    return (0 < len(name.encode()) < IFNAMSIZ and name not in (".", "..")
            and not any(c in "/:" or c.isspace() for c in name))


def vmac_address(text: str) -> tuple[bytes | None, str | None]:
    """`use_vmac`'s MAC: (6 bytes, or 5 when the VRID completes it; None) or
    (None, keepalived's message)."""
    if text.strip("0123456789ABCDEFabcdef:"):
        return None, f"VMAC invalid MAC address {text}"
    octets = text.removesuffix(":").split(":")
    if len(octets) not in (5, 6) or not all(0 < len(o) <= 2 for o in octets):
        return None, f"VMAC invalid MAC address {text} - ignored"
    mac = bytes(int(o, 16) for o in octets)
    if mac[0] & 1:
        return None, f"VMAC MAC address is multicast {text} - ignoring"
    if mac[:4] == RFC5798_PREFIX and mac[4] in (1, 2):
        return None, f"VMAC MAC address not allowed to be RFC5798 address ({text}) - ignoring"
    return mac, None


# follow_refresh: the longest a master follower goes without telling the LAN
# (a day, as garp_master_refresh), and the shortest that still means "refresh":
# below a second a follower would advertise like an instance of its own.
FOLLOW_REFRESH_MIN, FOLLOW_REFRESH_MAX = 1.0, 86400.0


def _follow(b: Builder, node: Node, inst: Instance) -> None:
    value = b.arg(node)
    b.no_more(node, 1)
    if value is not None:
        inst.follow = value


def _follow_refresh(b: Builder, node: Node, inst: Instance) -> None:
    value = b.timer(node, 0, FOLLOW_REFRESH_MAX)
    b.no_more(node, 1)
    if value is None:
        return
    if 0 < value < FOLLOW_REFRESH_MIN:
        b.diag.error(node.where, f"follow_refresh: {node.args[0]} s is below "
                                 f"{FOLLOW_REFRESH_MIN:g} s: a follower refreshes, it does not "
                                 "advertise (0 turns the refresh off)")
        return
    inst.follow_refresh = value


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
    # hivrrp's own (keywords.HIVRRP_INSTANCE)
    "follow": _follow,
    "follow_refresh": _follow_refresh,
}
