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
        self.due = 0.0

    def start(self) -> StallProbe:
        self.worst = 0.0
        self._arm()
        return self

    def stop(self) -> float:
        """The longest stall seen, in seconds (lateness beyond the loop's own ms clock),
        up to this call: a stop in the same step as the stall (a reload's swap)
        finds its tick still pending, and counts how late it already is."""
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
            self._count(self.loop.time() - self.due - PERIOD)
        return self.worst

    def _arm(self) -> None:
        self.due = self.loop.time() + PERIOD
        self.handle = self.loop.call_at(self.due, self._tick)

    def _tick(self) -> None:
        # uvloop's clock has millisecond steps: one step late is no stall.
        self._count(self.loop.time() - self.due - PERIOD)
        self._arm()

    def _count(self, late: float) -> None:
        if late > self.worst:
            self.worst = late
