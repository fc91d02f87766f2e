"""How long the event loop was held up while something ran (a reload).

A ticker re-arms itself every millisecond and keeps the worst lateness. It
runs only while measuring, so steady state pays nothing for it.
"""

from __future__ import annotations

import asyncio

PERIOD = 0.001


class StallProbe:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.worst = 0.0
        self.handle: asyncio.TimerHandle | None = None

    def start(self) -> StallProbe:
        self.worst = 0.0
        self._arm()
        return self

    def stop(self) -> float:
        """The longest stall seen, in seconds (lateness beyond the loop's own ms clock)."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
        return self.worst

    def _arm(self) -> None:
        due = self.loop.time() + PERIOD
        self.handle = self.loop.call_at(due, self._tick, due)

    def _tick(self, due: float) -> None:
        # uvloop's clock has millisecond steps: one step late is no stall.
        late = self.loop.time() - due - PERIOD
        if late > self.worst:
            self.worst = late
        self._arm()
