"""Where a configuration problem is, and the list of problems found."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    severity: str  # "error" or "warning"
    where: Where
    message: str

    def __str__(self) -> str:
        context = self.where.context()
        suffix = f" ({context})" if context else ""
        return f"{self.where}: {self.severity}: {self.message}{suffix}"

    def as_dict(self) -> dict:
        record = {"file": self.where.file, "line": self.where.line, "message": self.message}
        context = self.where.context()
        if context:
            record["context"] = context
        return record


@dataclass
class Diagnostics:
    items: list[Diagnostic] = field(default_factory=list)

    def error(self, where: Where, message: str) -> None:
        self.items.append(Diagnostic("error", where, message))

    def warning(self, where: Where, message: str) -> None:
        self.items.append(Diagnostic("warning", where, message))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]
