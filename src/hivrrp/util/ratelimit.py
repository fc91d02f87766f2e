"""Say a thing once, then how often it recurred: the policy of repeated log lines.

Pure: the caller passes the time and logs what it is told to. A key (say an
instance, a drop reason and a sender) is logged at its first occurrence; its
repeats are only counted, and handed back as one summary per key at most
every `period` seconds while they go on. A key that stayed quiet for a whole
period is forgotten: its next occurrence is news again and logged at once.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, NamedTuple


@dataclass
class _Entry:
    since: float         # start of the current window: the first line or the last summary
    repeats: int         # occurrences after that line, not reported yet
    item: Any            # the latest occurrence's details


class Summary(NamedTuple):       # a named tuple: thousands may be due at once
    key: Hashable
    repeats: int         # occurrences in the window after the line that opened it
    item: Any            # the latest of them
    seconds: float       # the window's length


class RateLimiter:
    def __init__(self, period: float, max_keys: int = 100_000) -> None:
        if period <= 0 or max_keys < 1:
            raise ValueError("period must be > 0 and max_keys >= 1")
        self.period = period
        self.max_keys = max_keys
        self.entries: dict[Hashable, _Entry] = {}
        # Occurrences of keys refused because max_keys were being followed
        # (a flood of forged senders must not grow memory without bound).
        self.overflow = 0

    def note(self, key: Hashable, item: Any, now: float, count: int = 1) -> bool:
        """`count` occurrences of `key`, the latest described by `item`.
        True: log `item` now (the first occurrence in a while); the other
        count - 1 go to the key's next summary."""
        entry = self.entries.get(key)
        if entry is not None:
            entry.repeats += count
            entry.item = item
            return False
        if len(self.entries) >= self.max_keys:
            self.overflow += count
            return False
        self.entries[key] = _Entry(now, count - 1, item)
        return True

    def __contains__(self, key: Hashable) -> bool:
        """Whether `key` is followed: a note() of it would not be logged."""
        return key in self.entries

    def due(self, now: float, everything: bool = False) -> list[Summary]:
        """Summaries of the keys whose window is over (every key's, with
        `everything`: the last word at exit) and that recurred in it (each
        opens a new window); the keys that did not are forgotten."""
        out = []
        for key, entry in list(self.entries.items()):
            if now - entry.since < self.period and not everything:
                continue
            if entry.repeats:
                out.append(Summary(key, entry.repeats, entry.item, now - entry.since))
                entry.repeats = 0
                entry.since = now
            else:
                del self.entries[key]
        return out

    def take_overflow(self) -> int:
        overflow, self.overflow = self.overflow, 0
        return overflow
