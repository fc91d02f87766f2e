"""What the benchmarks share for stopping cleanly."""

from __future__ import annotations

import contextlib
import signal


@contextlib.contextmanager
def ignoring_signals():
    """No second Ctrl-C or SIGTERM while daemons are stopped and namespaces deleted."""
    saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
