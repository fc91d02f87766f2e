"""keepalived 2.2.7's command-line flags, and what each means to hivrrp.

Operators keep their habits and their units: Debian's keepalived.service runs
`keepalived --dont-fork $DAEMON_ARGS`, and scripts run `keepalived -t -f FILE`.
`hivrrp` without a subcommand takes the same flags (cli.main). Each one either
does in hivrrp what it does in keepalived, or is harmless because hivrrp
already behaves that way (HARMLESS), or is refused with the reason
(REFUSED): one that would change what the operator expects is never ignored.
"""

from __future__ import annotations

import re
import signal
from typing import NamedTuple


class Refused(NamedTuple):
    flags: tuple[str, ...]       # keepalived's spellings
    takes_value: bool
    why: str


# Accepted and harmless: hivrrp does this anyway. flag name -> help text.
HARMLESS = {
    "log_console": "Accepted (keepalived -l): hivrrp always logs to stderr, which systemd "
                   "sends to the journal.",
    "log_detail": "Accepted (keepalived -D): hivrrp has no detail switch; its default level "
                  "logs each transition with its cause and each kind of dropped advert with "
                  "its reason and sender (hivrrp run --log-level debug for more).",
    "vrrp_only": "Accepted (keepalived -P): VRRP is all hivrrp runs.",
    "no_bfd": "Accepted (keepalived -B): hivrrp has no BFD.",
    "no_syslog": "Accepted (keepalived -G): hivrrp never logs through syslog itself.",
    "dont_respawn": "Accepted (keepalived -R): hivrrp is one process, with no children "
                    "to respawn; systemd's Restart= restarts it.",
    "dont_release_ipvs": "Accepted (keepalived -I): hivrrp has no IPVS.",
}

REFUSED = (
    Refused(("-C", "--check"), False,
            "hivrrp has no health checker (virtual_server); keep keepalived -C for that"),
    Refused(("-S", "--log-facility"), True,
            "hivrrp logs to stderr, not syslog: under systemd set SyslogFacility= in the unit"),
    Refused(("-X", "--release-vips"), False,
            "hivrrp does not drop VIPs on a signal-driven transition"),
    Refused(("-V", "--dont-release-vrrp"), False,
            "hivrrp always releases mastership (priority 0) and removes its VIPs when it "
            "stops; its version is -v/--version"),
    Refused(("-d", "--dump-conf"), False,
            "hivrrp check --json -f FILE prints the configuration as read"),
    Refused(("-r", "--vrrp_pid"), True,
            "hivrrp is one process: its pid file is -p/--pid"),
    Refused(("-c", "--checkers_pid"), True, "hivrrp has no health-checker process"),
    Refused(("-b", "--bfd_pid"), True, "hivrrp has no BFD process"),
    Refused(("-T", "--genhash"), False, "hivrrp has no genhash"),
    Refused(("-a", "--address-monitoring"), False,
            "hivrrp does not log every address change"),
    Refused(("-x", "--snmp"), False,
            "hivrrp has no SNMP: it serves Prometheus metrics (hivrrp run --metrics)"),
    Refused(("-A", "--snmp-agent-socket"), True,
            "hivrrp has no SNMP: it serves Prometheus metrics (hivrrp run --metrics)"),
    Refused(("-s", "--namespace"), True,
            "run hivrrp inside the namespace instead: ip netns exec NAME hivrrp -n ..."),
    Refused(("-m", "--core-dump"), False,
            "hivrrp is a Python program: its crashes are tracebacks in the log"),
    Refused(("-M", "--core-dump-pattern"), True,
            "hivrrp is a Python program: its crashes are tracebacks in the log"),
    Refused(("-e", "--all-config"), False,
            "hivrrp has no strict-include mode: an `include` that matches no file is a "
            "warning, which hivrrp -t shows"),
)

# keepalived --signum: the signal for each of its functions that hivrrp
# handles the same way (daemon.wiring installs these handlers).
SIGNALS = {
    "STOP": signal.SIGTERM, "RELOAD": signal.SIGHUP,
    "DATA": signal.SIGUSR1, "STATS": signal.SIGUSR2,
}
NO_SIGNAL = {
    "STATS_CLEAR": "hivrrp's counters are never cleared (Prometheus computes rates)",
    "JSON": "hivrrp dump prints the state as JSON",
}


def signum(function: str) -> int:
    """keepalived --signum: the number of the signal for `function`; ValueError says why not."""
    name = function.upper()
    if name in SIGNALS:
        return int(SIGNALS[name])
    if name in NO_SIGNAL:
        raise ValueError(f"no signal for {name}: {NO_SIGNAL[name]}")
    raise ValueError(f"unknown signal function {function!r} "
                     f"(STOP, RELOAD, DATA, STATS, STATS_CLEAR, JSON)")


def parse_umask(text: str) -> int:
    """keepalived --umask: numeric, read as C's strtoul(..., 0) does (0x.. hex,
    0.. octal, else decimal); ValueError for anything else or beyond 0777."""
    body = text.strip().lower()
    # ASCII digits only: int() also takes "1_0" and other scripts' digits,
    # which strtoul() does not.
    if not re.fullmatch(r"0x[0-9a-f]+|[0-9]+", body):
        raise ValueError(f"umask {text!r} is not a number")
    try:
        if body.startswith("0x"):
            value = int(body, 0)
        elif body.startswith("0") and len(body) > 1:
            value = int(body[1:], 8)
        else:
            value = int(body, 10)
    except ValueError:
        raise ValueError(f"umask {text!r} is not a number") from None
    if not 0 <= value <= 0o777:
        raise ValueError(f"umask {text!r} is beyond 0777")
    return value
