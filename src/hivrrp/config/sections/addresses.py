"""Addresses an instance installs: virtual_ipaddress[_excluded], virtual_routes, virtual_rules."""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

from hivrrp.config.model import Instance, Route, Rule, Vip
from hivrrp.config.tree import Node
from hivrrp.kernel.routing import rule_spec

if TYPE_CHECKING:
    from hivrrp.config.builder import Builder


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
            if word == "use_vmac":
                # keepalived's address VMACs (a macvlan of its own for the address):
                # not done; the instance's use_vmac is.
                b.diag.warning(node.where, f"{text}: 'use_vmac' on an address is not "
                                           "supported by hivrrp: the address goes on the "
                                           "instance's interface (its VMAC with the "
                                           "instance's use_vmac)", key="use_vmac")
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


def vips(attribute: str, mixed_families: bool):
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


def routes(b: Builder, node: Node, inst: Instance) -> None:
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


def rules(b: Builder, node: Node, inst: Instance) -> None:
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
