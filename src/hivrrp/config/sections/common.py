"""Handler factories shared by several sections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hivrrp.config.model import GlobalDefs
from hivrrp.config.tree import Node

if TYPE_CHECKING:
    from hivrrp.config.builder import Builder


def setter(attribute: str, kind: str, *limits):
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


def version(b: Builder, node: Node, target) -> None:
    value = b.integer(node, 2, 3)
    b.no_more(node, 1)
    if value is not None:
        setattr(target, "vrrp_version" if isinstance(target, GlobalDefs) else "version", value)
