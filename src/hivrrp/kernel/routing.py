"""virtual_routes and virtual_rules entries as pyroute2 route() / rule() arguments.

Pure translation, no netlink: `hivrrp check` uses it to refuse what the
kernel would refuse, the daemon to build its requests.
"""

from __future__ import annotations

import ipaddress
import socket

# ("route" | "rule", pyroute2 arguments): one virtual_routes or virtual_rules entry
Routing = tuple[str, dict]

ROUTE_SCOPES = {"global": 0, "universe": 0, "site": 200, "link": 253, "host": 254}
ROUTE_TYPES = {"unicast": 1, "blackhole": 6, "unreachable": 7, "prohibit": 8, "throw": 9}


def route_spec(destination: str, options: dict, family: int, ifindex_of) -> dict:
    """A virtual_routes entry as pyroute2 route() arguments.

    ifindex_of(name) resolves `dev`; the instance's family decides "default".
    """
    if destination in ("default", "all"):
        destination = "0.0.0.0/0" if family == 4 else "::/0"
    spec: dict = {"dst": destination, "family": socket.AF_INET if ":" not in destination
                  else socket.AF_INET6}
    if "via" in options:
        spec["gateway"] = options["via"]
    if "dev" in options:
        spec["oif"] = ifindex_of(options["dev"])
    if "src" in options:
        spec["prefsrc"] = options["src"]
    if "table" in options:
        spec["table"] = table_number(options["table"])
    if "metric" in options:
        spec["priority"] = int(options["metric"])
    if "scope" in options:
        spec["scope"] = ROUTE_SCOPES.get(options["scope"], 0)
    if "type" in options:
        spec["type"] = ROUTE_TYPES.get(options["type"], 1)
    if "proto" in options and str(options["proto"]).isdigit():
        spec["proto"] = int(options["proto"])
    return spec


RULE_ACTIONS = {"blackhole": 6, "unreachable": 7, "prohibit": 8}
FIB_RULE_INVERT = 2
IP_PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "sctp": 132, "icmpv6": 58, "ipv6-icmp": 58}


def table_number(value) -> int:
    text = str(value)
    if text.isdigit():
        return int(text)
    names = {"main": 254, "local": 255, "default": 253}
    if text not in names:
        raise ValueError(f"unknown table '{text}' (use its number)")
    return names[text]


def _number(text) -> int:
    try:
        return int(str(text), 0)   # 0x21 as well as 33, as ip rule accepts
    except ValueError:
        raise ValueError(f"'{text}' is not a number") from None


def _range(text) -> str:
    """'1000-2000' or '80' as pyroute2's 'start:end'."""
    start, _, end = str(text).partition("-")
    return f"{_number(start)}:{_number(end or start)}"


def rule_spec(options: dict, family: int) -> dict:
    """A virtual_rules entry (ip rule syntax) as pyroute2 rule() arguments.

    With no preference, pyroute2 puts the rule at 32000 (ip rule lets the
    kernel pick one just before the main table's 32766): both come before
    main, and add and delete use the same spec, so removal finds it.
    """
    spec: dict = {"family": socket.AF_INET if family == 4 else socket.AF_INET6}
    for word, key in (("from", "src"), ("to", "dst")):
        value = options.get(word)
        if value is not None and value != "all":
            try:
                network = ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"'{value}' is not a prefix") from None
            spec["family"] = socket.AF_INET if network.version == 4 else socket.AF_INET6
            spec[key] = str(network.network_address)
            spec[f"{key}_len"] = network.prefixlen
    table = options.get("table", options.get("lookup"))
    if table is not None:
        spec["table"] = table_number(table)
    for word in ("preference", "priority", "pref"):
        if word in options:
            spec["priority"] = _number(options[word])
    if "iif" in options:
        spec["iifname"] = options["iif"]
    if "oif" in options:
        spec["oifname"] = options["oif"]
    if "fwmark" in options:
        mark, _, mask = str(options["fwmark"]).partition("/")
        spec["fwmark"] = _number(mark)
        if mask:
            spec["fwmask"] = _number(mask)
    for word in ("tos", "dsfield"):
        if word in options:
            spec["tos"] = _number(options[word])
    if "realms" in options:
        source, _, destination = str(options["realms"]).rpartition("/")
        spec["flow"] = (_number(source) << 16 if source else 0) | _number(destination)
    if "goto" in options:
        spec["goto"] = _number(options["goto"])
        spec["action"] = "FR_ACT_GOTO"
    if "suppress_prefixlength" in options:
        spec["suppress_prefixlen"] = _number(options["suppress_prefixlength"])
    if "suppress_ifgroup" in options:
        spec["suppress_ifgroup"] = _number(options["suppress_ifgroup"])
    if "uidrange" in options:
        spec["uid_range"] = _range(options["uidrange"])
    if "sport" in options:
        spec["sport_range"] = _range(options["sport"])
    if "dport" in options:
        spec["dport_range"] = _range(options["dport"])
    if "ipproto" in options:
        proto = str(options["ipproto"])
        spec["ip_proto"] = IP_PROTOCOLS[proto] if proto in IP_PROTOCOLS else _number(proto)
    if "protocol" in options:
        spec["protocol"] = _number(options["protocol"])
    if options.get("l3mdev"):
        spec["l3mdev"] = 1
    if options.get("not"):
        spec["flags"] = FIB_RULE_INVERT
    for word, action in RULE_ACTIONS.items():
        if options.get(word):
            spec["action"] = action
    if "table" not in spec and "action" not in spec and not options.get("l3mdev"):
        raise ValueError("a rule needs a table, goto, l3mdev or an action such as unreachable")
    return spec
