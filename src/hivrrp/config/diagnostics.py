"""Where a configuration problem is, and the list of problems found."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from hivrrp.util.text import plural


def _where(file: str, line: int, chain: tuple, note: str | None) -> Where:
    return Where(sys.intern(file), line, chain, note)


@dataclass(frozen=True, slots=True)
class Where:
    file: str
    line: int
    chain: tuple[tuple[str, int], ...] = ()   # (file, line) of each include, outermost first
    note: str | None = None                   # macro expansion that produced the line

    def with_note(self, note: str) -> Where:
        # Direct construction: dataclasses.replace() was a third of the load
        # time of a 10,000-instance generated config.
        return Where(self.file, self.line, self.chain, note)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    def __reduce__(self):
        # Pickled without a memo (hivrrp.config.isolated): one file name per
        # file again rather than a copy for each of 20,000 positions.
        return (_where, (self.file, self.line, self.chain, self.note))

    def context(self) -> str:
        """What led to this line: the include chain and any macro expansion."""
        parts = []
        if self.chain:
            parts.append("included from " + " < ".join(f"{f}:{n}" for f, n in reversed(self.chain)))
        if self.note:
            parts.append(self.note)
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    severity: str  # "error", "warning" or "info" (accepted, no effect on VRRP)
    where: Where
    message: str
    key: str | None = None  # the keyword, for warnings that repeat once per occurrence
    # False: one of keepalived's config errors that it corrects and runs with
    # (strict mode taking authentication away): `check` fails, as keepalived
    # -t does (exit 5), but the daemon logs it and runs, as keepalived does.
    fatal: bool = True

    def __str__(self) -> str:
        context = self.where.context()
        suffix = f" ({context})" if context else ""
        return f"{self.where}: {self.severity}: {self.message}{suffix}"

    def as_dict(self) -> dict:
        record = {"file": self.where.file, "line": self.where.line, "message": self.message}
        if not self.fatal:
            record["fatal"] = False
        context = self.where.context()
        if context:
            record["context"] = context
        return record


@dataclass
class Diagnostics:
    items: list[Diagnostic] = field(default_factory=list)
    # Where a setting the model keeps no position for was written, for checks
    # made after the build (validate.scripts): a Script by its id(), a
    # global_defs keyword by its name. (where, keyword as written)
    places: dict[object, tuple[Where, str]] = field(default_factory=dict)

    def written(self, key: object, where: Where, keyword: str) -> None:
        self.places[key] = (where, keyword)

    def error(self, where: Where, message: str, key: str | None = None, *,
              fatal: bool = True) -> None:
        self.items.append(Diagnostic("error", where, message, key, fatal))

    def warning(self, where: Where, message: str, key: str | None = None) -> None:
        self.items.append(Diagnostic("warning", where, message, key))

    def info(self, where: Where, message: str) -> None:
        self.items.append(Diagnostic("info", where, message))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    @property
    def infos(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "info"]


class NoEffect:
    """Keywords that change nothing VRRP does (keepalived's e-mail alerts and
    the router_id that names the sender), gathered into one info line.

    The article's own global_defs has five of them: five warnings on every
    start and reload teach operators to skip warnings. The line stands where
    the first one is written and names them all, in order.
    """

    def __init__(self) -> None:
        self.seen: dict[str, Where] = {}

    def add(self, keyword: str, where: Where) -> None:
        self.seen.setdefault(keyword, where)

    def report(self, diag: Diagnostics) -> None:
        if self.seen:
            first = min(self.seen.values(), key=lambda w: (w.file, w.line))
            diag.info(first, f"{', '.join(self.seen)}: no effect on VRRP; hivrrp sends no "
                             "e-mail alerts, so these are accepted and ignored")


REPEATS_SHOWN = 5


def condense(diagnostics: list[Diagnostic], shown: int = REPEATS_SHOWN) -> list[str]:
    """The lines to print: all of them, but a keyed one only `shown` times.

    A generated config can track a script in each of 4,000 instances, or
    have strict mode take the authentication of each away; 4,000 identical
    lines would bury everything else. The rest become one line at the first
    one left out; `--json` and the counts keep every occurrence. A key counts
    apart for each severity, so a warning never stands in for errors.
    """
    seen: dict[tuple[str, str], int] = {}
    lines: list[str] = []
    summary_at: dict[tuple[str, str], int] = {}
    for diagnostic in diagnostics:
        if diagnostic.key is None:
            lines.append(str(diagnostic))
            continue
        group = (diagnostic.severity, diagnostic.key)
        seen[group] = seen.get(group, 0) + 1
        if seen[group] <= shown:
            lines.append(str(diagnostic))
        elif group not in summary_at:
            summary_at[group] = len(lines)
            lines.append(f"{diagnostic.where}: {diagnostic.severity}: ")
    for (severity, key), index in summary_at.items():
        more = seen[severity, key] - shown
        lines[index] += (f"... and {plural(more, f'more {key} {severity}')} "
                         "like these (hivrrp check --json lists every one)")
    return lines


def log_problems(result, log) -> None:
    """A load's problems in the daemon's log (start and reload alike), as
    `check` prints them: warnings, infos, then errors, repeats condensed.
    The errors here are mostly keepalived's corrections the daemon runs
    with (strict mode's), one per instance of a generated file: logged in
    full they would be thousands of lines at every start and reload."""
    for line in condense(result.warnings):
        log.warning("%s", line)
    for diagnostic in result.infos:
        log.info("%s", diagnostic)
    for line in condense(result.errors):
        log.error("%s", line)
