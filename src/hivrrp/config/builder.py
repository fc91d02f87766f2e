"""What every section handler checks a keyword with: values, blocks, names, uniqueness.

Errors and warnings follow keepalived 2.2.7's parser (checked against keepalived -t in
tests/config); the sections in config/sections/ use these and nothing of config/build.py.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Callable

from hivrrp.config import keywords
from hivrrp.config.diagnostics import Diagnostics, NoEffect
from hivrrp.config.model import Config, Script
from hivrrp.config.tree import Node

# Keywords whose value is a { } block; every other keyword takes words.
BLOCK_KEYWORDS = frozenset({
    "notification_email", "authentication", "virtual_ipaddress", "virtual_ipaddress_excluded",
    "virtual_routes", "virtual_rules", "unicast_peer", "track_interface", "track_script",
    "track_file", "track_process", "group",
})
REQUIRED = frozenset({"virtual_router_id"})
BOOLS = {"on": True, "true": True, "yes": True, "off": False, "false": False, "no": False}


class Builder:
    def __init__(self, diag: Diagnostics) -> None:
        self.diag = diag
        self.config = Config()
        self.no_effect = NoEffect()

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
        script = Script(command, argv, user, group)
        self.diag.written(id(script), node.where, node.keyword)
        return script

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
            self.not_acted_on(node.keyword, node)
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

    def not_acted_on(self, keyword: str, node: Node) -> None:
        """Warn when the daemon would silently ignore what the keyword asks for."""
        if keyword in keywords.NO_VRRP_EFFECT:
            self.no_effect.add(keyword, node.where)
            return
        consequence = keywords.NOT_ACTED_ON.get(keyword)
        if consequence is not None:
            self.diag.warning(node.where, f"{keyword} is not acted on yet: {consequence}",
                              key=keyword)

    # -------------------------------------------------------- sections

    def named(self, node: Node, what: str) -> str | None:
        if not node.args:
            self.diag.error(node.where, f"{node.keyword} needs a name")
            return None
        self.no_more(node, 1)
        return node.args[0]

    def section(self, node: Node, what: str, make: Callable, handlers: dict[str, Callable],
                ignored: frozenset[str] = frozenset()):
        """A named block (`vrrp_instance NAME { ... }`): make(name, where) filled
        by its keywords' handlers; None when the name is missing."""
        name = self.named(node, what)
        if name is None:
            return None
        target = make(name, node.where)
        for child in self.block(node):
            self.dispatch(child, handlers, ignored, f"{node.keyword} {name}", target)
        return target

    def unique(self, table: dict, name: str, item, node: Node, what: str) -> None:
        if name in table:
            self.diag.error(node.where, f"{what} {name} is already defined at "
                                        f"{table[name].where}")
        else:
            table[name] = item
