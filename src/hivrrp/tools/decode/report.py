"""One line (text or JSON) per decoded advertisement, for `hivrrp decode`."""

from __future__ import annotations

import json
import time as _time
from typing import TYPE_CHECKING

from hivrrp._wire import Advert

if TYPE_CHECKING:   # the judge (the engine, the daemon's plan) only with --config
    from hivrrp.tools.decode.judge import Verdict

AUTH_TYPES = {0: "none", 1: "PASS", 2: "AH"}


def as_json(advert: Advert, when: float | None, verdict: Verdict | None = None) -> str:
    record = {"time": None if when is None else round(when, 6), **advert.as_dict()}
    if verdict is not None:
        record.update(verdict=verdict.reason, instance=verdict.instance,
                      interface=verdict.interface, detail=verdict.detail,
                      matched="vrid" if verdict.by_vrid else "interface",
                      counters=list(verdict.counters))
    return json.dumps(record, separators=(",", ":"))


def as_text(advert: Advert, when: float | None, verdict: Verdict | None = None) -> str:
    parts = [_clock(when), f"{advert.src or '?'} > {advert.dst or '?'}"]
    if advert.ttl is not None:
        parts.append(f"{'ttl' if advert.family == 4 else 'hlim'} {advert.ttl}")
    if advert.version is not None:
        parts += [f"VRRPv{advert.version}", f"vrid {advert.vrid}", f"prio {advert.priority}",
                  f"int {_interval(advert)}"]
        if advert.version == 2:
            parts.append(f"auth {_auth(advert)}")
    if advert.addresses is not None:
        parts.append("addrs " + (",".join(advert.addresses) or "-"))
    elif advert.count is not None:
        parts.append(f"count {advert.count}")
    if advert.checksum not in (None, "ok", "bad"):
        parts.append(f"checksum {advert.checksum}")
    if verdict is None:
        parts.append(f"verdict {advert.error or 'ok'}")
    else:
        # The instance (and interface) that judged it; for a drop, the
        # daemon's own log line, which names them already.
        parts.append(f"verdict {verdict.reason}")
        if verdict.detail:
            parts[-1] += ":"
            parts.append(verdict.detail)
        elif verdict.instance:
            parts.append(f"({verdict.instance}"
                         + (f" on {verdict.interface})" if verdict.interface else ")"))
    return " ".join(parts)


def _clock(when: float | None) -> str:
    if when is None:   # a pcapng Simple Packet Block has no timestamp
        return "--:--:--.------"
    micros = round(when * 1e6)
    try:
        clock = _time.strftime("%H:%M:%S", _time.gmtime(micros // 1_000_000))
    except (OverflowError, OSError, ValueError):
        # A capture's clock beyond time_t (a pcapng if_tsresol/if_tsoffset
        # written wrong): the seconds as they are, not a traceback.
        return f"{when:.6f}s"
    return f"{clock}.{micros % 1_000_000:06d}"


def _interval(advert: Advert) -> str:
    return f"{advert.interval_cs / 100:g}s"


def _auth(advert: Advert) -> str:
    name = AUTH_TYPES.get(advert.auth_type, str(advert.auth_type))
    if advert.auth_type == 1 and advert.auth_data is not None:
        # PASS carries the password in clear on the wire: showing it is what
        # makes a mismatch between two boxes visible.
        password = advert.auth_data.rstrip(b"\0").decode("ascii", "backslashreplace")
        return f'{name} "{password}"'
    return name
