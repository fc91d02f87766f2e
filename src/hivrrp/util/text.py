"""Counts in words for log lines and CLI output: "1 instance", "2 instances"."""

from __future__ import annotations


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`n` and `noun`, the noun in the plural unless n is 1: plural(2, "VIP") -> "2 VIPs".

    The last word is the one inflected ("more connection" -> "more
    connections"); `many` gives a plural the English rules below get wrong.
    """
    return f"{n} {noun if n == 1 else many or plural_of(noun)}"


def plural_of(noun: str) -> str:
    head, _, last = noun.rpartition(" ")
    if last.endswith(("s", "x", "z", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        last = last[:-1] + "ies"
    else:
        last += "s"
    return f"{head} {last}" if head else last
