"""One reader for keepalived's SIGUSR2 stats file and SIGUSR1 data file.

Tests read the files the real keepalived writes and the ones hivrrp.ops.dumpfiles
writes with these same functions, so "ours parses like theirs" means one
thing. The readers are strict about layout (indentation, "Label: N", a
heading followed by its lines, a final newline) and raise ValueError on
anything else, so a half-written file does not pass for a short one.

parse_stats(text) -> {instance: {label: int}}, labels in file order, a label
under a heading joined to it with "/": "Advertisements/Received",
"Became master", "Packet Errors/Length", ...

parse_data(text, section) -> {block name: {label: value}} for one
"------< SECTION >------" section (default the VRRP Topology): a block starts
at a 1-space "KIND = NAME" line; its 3-space lines are "Label = value" (str),
"Label :" / "Label:" headings whose 5-space lines make a list, or anything
else (e.g. "Using Native IPv6"), kept as {line: True}.
"""

from __future__ import annotations

import re

_INSTANCE = re.compile(r"VRRP Instance: (\S.*)")
_STATS_HEADING = re.compile(r"  ([A-Za-z][A-Za-z ]*[A-Za-z]):")
_STATS_VALUE = re.compile(r"(  |    )([A-Za-z][A-Za-z ]*[A-Za-z]): (\d+)")
_SECTION = re.compile(r"------< (.+) >------")


def _lines(text: str) -> list[str]:
    if text and not text.endswith("\n"):
        raise ValueError("no newline at the end: the file is incomplete")
    return text.splitlines()


def parse_stats(text: str) -> dict[str, dict[str, int]]:
    stats: dict[str, dict[str, int]] = {}
    current: dict[str, int] | None = None
    heading: str | None = None       # the open heading
    heading_used = True

    def close_heading(where: object) -> None:
        if not heading_used:
            raise ValueError(f"line {where}: heading {heading!r} has no counters")

    for number, line in enumerate(_lines(text), 1):
        if m := _INSTANCE.fullmatch(line):
            close_heading(number)
            name = m.group(1)
            if name in stats:
                raise ValueError(f"line {number}: instance {name!r} twice")
            current = stats[name] = {}
            heading, heading_used = None, True
            continue
        if current is None:
            raise ValueError(f"line {number}: {line!r} before any 'VRRP Instance:'")
        if m := _STATS_HEADING.fullmatch(line):
            close_heading(number)
            heading, heading_used = m.group(1), False
            continue
        m = _STATS_VALUE.fullmatch(line)
        if m is None:
            raise ValueError(f"line {number}: not a stats line: {line!r}")
        indent, label, value = m.groups()
        if indent == "  ":
            close_heading(number)
            heading, heading_used = None, True
        elif heading is None:
            raise ValueError(f"line {number}: {line!r} is not under a heading")
        else:
            label = f"{heading}/{label}"
            heading_used = True
        if label in current:
            raise ValueError(f"line {number}: {label!r} twice")
        current[label] = int(value)
    close_heading("at the end")
    return stats


def data_sections(text: str) -> dict[str, list[str]]:
    """The data file cut at its "------< TITLE >------" lines."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for number, line in enumerate(_lines(text), 1):
        if m := _SECTION.fullmatch(line):
            if m.group(1) in sections:
                raise ValueError(f"line {number}: section {m.group(1)!r} twice")
            current = sections[m.group(1)] = []
        elif current is None:
            raise ValueError(f"line {number}: {line!r} before any section")
        else:
            current.append(line)
    return sections


def parse_data(text: str, section: str = "VRRP Topology") -> dict[str, dict[str, object]]:
    blocks: dict[str, dict[str, object]] = {}
    current: dict[str, object] | None = None
    items: list[str] | None = None        # the open heading's list
    for number, line in enumerate(data_sections(text).get(section, []), 1):
        where = f"{section} line {number}"
        if line.startswith("     "):
            if items is None:
                raise ValueError(f"{where}: {line!r} is not under a heading")
            items.append(line.strip())
            continue
        if line.startswith("   ") and not line.startswith("    "):
            if current is None:
                raise ValueError(f"{where}: {line!r} is not in a block")
            body = line[3:]
            if body.endswith(":"):
                key, value = body[:-1].rstrip(), []
                items = value
            elif " = " in body:
                key, value = body.split(" = ", 1)
                items = None
            else:
                key, value = body, True
                items = None
            if key in current:
                raise ValueError(f"{where}: {key!r} twice")
            current[key] = value
            continue
        if line.startswith(" ") and not line.startswith("  ") and " = " in line:
            name = line[1:].split(" = ", 1)[1]
            if name in blocks:
                raise ValueError(f"{where}: block {name!r} twice")
            current = blocks[name] = {}
            items = None
            continue
        raise ValueError(f"{where}: not a data line: {line!r}")
    return blocks
