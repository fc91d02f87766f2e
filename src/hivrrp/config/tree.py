"""Logical lines -> a tree of keyword nodes (blocks and leaves)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hivrrp.config.diagnostics import Diagnostics, Where
from hivrrp.config.reader import Line

MAX_DEPTH = 16  # keepalived's grammar nests 4 deep; more is a broken file


@dataclass(slots=True)
class Node:
    keyword: str
    args: list[str]
    where: Where
    text: str = ""                          # the source line, for script commands
    children: list[Node] | None = None      # None for a leaf

    @property
    def is_block(self) -> bool:
        return self.children is not None


@dataclass(slots=True)
class _Open:
    node: Node
    opened_at: Where


def build_tree(lines: Iterable[Line], diag: Diagnostics) -> list[Node]:
    root: list[Node] = []
    stack: list[_Open] = []
    siblings = root
    last_leaf: Node | None = None    # a '{' alone on a line opens the statement before it
    for line in lines:
        tokens = line.tokens
        if "{" not in tokens and "}" not in tokens:  # most lines: one leaf statement
            last_leaf = Node(tokens[0], list(tokens[1:]), line.where, line.text)
            siblings.append(last_leaf)
            continue
        words: list[str] = []
        for token in line.tokens:
            if token == "{":
                if words:
                    node = Node(words[0], words[1:], line.where, line.text, [])
                    siblings.append(node)
                elif last_leaf is not None and not last_leaf.is_block:
                    node = last_leaf
                    node.children = []
                else:
                    diag.error(line.where, "'{' does not follow a keyword")
                    node = Node("{", [], line.where, line.text, [])
                words = []
                last_leaf = None
                if len(stack) >= MAX_DEPTH:
                    diag.error(line.where, f"blocks nested more than {MAX_DEPTH} deep")
                    return root
                stack.append(_Open(node, line.where))
                siblings = node.children
            elif token == "}":
                if words:
                    siblings.append(Node(words[0], words[1:], line.where, line.text))
                    words = []
                last_leaf = None
                if not stack:
                    diag.error(line.where, "extra '}' found")
                    continue
                stack.pop()
                siblings = stack[-1].node.children if stack else root
            else:
                words.append(token)
        if words:
            last_leaf = Node(words[0], words[1:], line.where, line.text)
            siblings.append(last_leaf)
    for unclosed in reversed(stack):
        diag.error(unclosed.opened_at, f"'{unclosed.node.keyword}' block is never closed "
                                       "(missing '}')")
    return root
