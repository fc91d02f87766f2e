"""Strict-mode configurations on which `hivrrp check` and keepalived 2.2.7 disagree
today (issue 20 review), with keepalived's verdict as `keepalived -t` gave it in a
namespace whose eth1 exists: its exit code (0 valid, 5 a config error) and whether
keepalived runs the configuration (its only errors are ones it corrects)."""

from __future__ import annotations

from dataclasses import dataclass

from helpers.strict_corpus import STRICT, conf


@dataclass
class Disagreement:
    text: str
    keepalived_exit: int         # keepalived -t: 0 or 5
    keepalived_runs: bool        # keepalived runs it (corrected where need be)
    why: str                     # what hivrrp does instead, and where
    check_agrees: bool = False   # only `hivrrp run` disagrees, `check` exits as -t does


CASES: dict[str, Disagreement] = {
}
