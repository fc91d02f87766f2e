"""Give the C allocator's free pages back to the system after one-off work.

Start-up and reloads (plan building on a worker thread, 10,000 VIP changes,
announcement bursts) leave megabytes free inside glibc's heaps, and glibc
returns memory on its own only from the top of a heap: RSS would stay at the
peak for good. malloc_trim(0) returns every free page of every arena. No
library we use offers it, hence ctypes; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable

CHECK_EVERY = 1.0        # seconds between looks at whether the burst is over
GIVE_UP_AFTER = 60       # looks: then trim anyway (a daemon never quiet still gets one)

_trim = None


def release_free_memory() -> bool:
    """Free heap pages back to the system; False where there is no malloc_trim."""
    global _trim
    if _trim is None:
        try:
            # The symbols already in this process: no library search (find_library
            # would run ldconfig, on the event loop).
            _trim = ctypes.CDLL(None).malloc_trim
            _trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _trim = False
    if not _trim:
        return False
    _trim(0)
    return True


class Trimmer:
    """One trim once the work that follows a start or a reload is over."""

    def __init__(self, loop: asyncio.AbstractEventLoop, quiet: Callable[[], bool]) -> None:
        self.loop = loop
        self.quiet = quiet          # True once VIP changes and announcements are done
        self.handle: asyncio.TimerHandle | None = None
        self.trims = 0

    def arm(self) -> None:
        """(Re)start watching: a reload during a wait starts the wait again."""
        self.close()
        self.handle = self.loop.call_later(CHECK_EVERY, self._check, GIVE_UP_AFTER)

    def _check(self, looks_left: int) -> None:
        self.handle = None
        if self.quiet() or looks_left <= 1:
            release_free_memory()
            self.trims += 1
        else:
            self.handle = self.loop.call_later(CHECK_EVERY, self._check, looks_left - 1)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
