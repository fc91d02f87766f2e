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


AUTH_PASS_ONLY = "    authentication {\n        auth_pass 1111\n    }\n"
AUTH_AH = "    authentication {\n        auth_type AH\n        auth_pass 1111\n    }\n"

CASES: dict[str, Disagreement] = {
    "auth_pass without auth_type": Disagreement(
        conf(AUTH_PASS_ONLY), 0, True,
        "config/strict.py authentication() tests auth_type or auth_pass; keepalived "
        "tests auth_type != NONE only, so it says nothing and -t exits 0; hivrrp check "
        "reports 'Strict mode does not support authentication' and exits 1"),
    "auth_type AH": Disagreement(
        conf(AUTH_AH), 5, True,
        "keepalived's strict rule takes AH away and runs; hivrrp's parse-time AH refusal "
        "is fatal, so `hivrrp run` refuses a configuration keepalived runs",
        check_agrees=True),
    "nopreempt at priority 255": Disagreement(
        conf("    nopreempt\n", priority="255"), 5, True,
        "keepalived: config error 'nopreempt is incompatible with priority 255. resetting "
        "nopreempt' (-t exits 5); hivrrp: a warning, check exits 0"),
    "preempt_delay with state MASTER": Disagreement(
        conf("    preempt_delay 5\n", head="    state MASTER\n", priority="255"), 5, True,
        "keepalived: config error 'Warning - preempt delay will not work with initial "
        "state MASTER - clearing' (-t exits 5); hivrrp: a warning, check exits 0"),
    "nftables name too long": Disagreement(
        conf(glob=STRICT + "    nftables " + "x" * 300 + "\n"), 5, True,
        "keepalived: config error 'nftables table name too long - ignoring' (-t exits 5); "
        "hivrrp: the same text as a warning, check exits 0"),
    "nftables name too long in bytes": Disagreement(
        conf(glob=STRICT + "    nftables " + "\u00e9" * 200 + "\n"), 5, True,
        "global_defs._nftables measures characters, keepalived (strlen) and the kernel "
        "bytes: hivrrp check says nothing, and the daemon's table is refused (ERANGE): "
        "no_accept NOT enforced"),
}
