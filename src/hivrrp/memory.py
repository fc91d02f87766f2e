"""Give the C allocator's free pages back to the system after one-off work.

Start-up and reloads (plan building on a worker thread, 10,000 VIP changes,
announcement bursts) leave megabytes free inside glibc's heaps, and glibc
returns memory on its own only from the top of a heap: RSS would stay at the
peak for good. malloc_trim(0) returns every free page of every arena. No
library we use offers it, hence ctypes; elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger("hivrrp")

_trim = None


def release_free_memory() -> bool:
    """Free heap pages back to the system; False where there is no malloc_trim."""
    global _trim
    if _trim is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _trim = libc.malloc_trim
            _trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _trim = False
    if not _trim:
        return False
    _trim(0)
    return True
