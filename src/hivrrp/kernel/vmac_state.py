"""The sysctls' own values (before use_vmac changed them), kept in a file as
well as in memory: a daemon that is SIGKILLed (watchdog, OOM, crash) cannot
put them back, and the next one would read the changed values and take them
for the real ones (all.rp_filter would stay 0 for good). The file is written
before the first change and read at the next start and by `hivrrp release`.
"""

from __future__ import annotations

import json
import logging
import os

from hivrrp.kernel.vmac_policy import ParentState, RpFilter
from hivrrp.ops import runpaths
from hivrrp.util.atomicfile import write_atomically

log = logging.getLogger("hivrrp")

FILE_NAME = "vmac-sysctls.json"


def default_path() -> str:
    """Per network namespace, as the pid file (a /proc and /run/netns look-up:
    called on the netlink thread)."""
    return os.path.join(runpaths.run_dir(runpaths.namespace_name()), FILE_NAME)


def encode(rp: RpFilter, igmp: int | None, parents: dict[int, ParentState]) -> str | None:
    """The text of the file, None when nothing is changed (no file)."""
    if not rp.active and igmp is None and not any(p.saved for p in parents.values()):
        return None
    return json.dumps({
        "rp_filter": ({"all": rp.all, "default": rp.default,
                       "interfaces": {str(i): v for i, v in rp.interfaces.items()}}
                      if rp.active else None),
        "igmp_link_local_mcast_reports": igmp,
        "parents": {str(index): {"saved": p.saved, "vmacs": sorted(p.vmacs)}
                    for index, p in parents.items() if p.saved},
    }, sort_keys=True) + "\n"


def decode(text: str) -> tuple[RpFilter, int | None, dict[int, ParentState]]:
    """Raises ValueError (also for a wrong shape) for the caller to log."""
    try:
        data = json.loads(text)
        rp = RpFilter()
        if data.get("rp_filter"):
            r = data["rp_filter"]
            rp = RpFilter(int(r["all"]), None if r["default"] is None else int(r["default"]),
                          {int(i): int(v) for i, v in r["interfaces"].items()})
        igmp = data.get("igmp_link_local_mcast_reports")
        parents = {int(index): ParentState({k: int(v) for k, v in p["saved"].items()},
                                           set(p["vmacs"]))
                   for index, p in data.get("parents", {}).items()}
        return rp, None if igmp is None else int(igmp), parents
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"not a state file: {exc}") from None


class StateFile:
    """The file itself: written whole (never half) and only when its text
    changes; removed when nothing is changed any more."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self.written: str | None = None
        self.failed = False          # said once

    def load(self) -> tuple[RpFilter, int | None, dict[int, ParentState]] | None:
        if self.path is None:
            self.path = default_path()
        try:
            with open(self.path) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.error("cannot read %s: %s: the sysctls use_vmac changed before a crash "
                      "cannot be put back", self.path, exc.strerror or exc)
            return None
        try:
            state = decode(text)
        except ValueError as exc:
            log.error("%s: %s: ignored", self.path, exc)
            return None
        self.written = text
        return state

    def save(self, text: str | None) -> None:
        if text == self.written:
            return
        if self.path is None:
            self.path = default_path()
        try:
            if text is None:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
            else:
                os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
                write_atomically(self.path, text.encode(), 0o600)
            self.written = text
        except OSError as exc:
            if not self.failed:
                self.failed = True
                log.error("cannot keep the sysctls' own values in %s: %s: after a crash "
                          "they could not be put back (said once)", self.path,
                          exc.strerror or exc)
