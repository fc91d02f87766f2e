"""The logging of `hivrrp run`: hivrrp's own lines at the level asked for, the libraries'.

At --log-level debug, pyroute2 logs every netlink message it parses and
asyncio its own internals: 22 KB for one instance's start, megabytes for
thousands, and none of it about VRRP. So other libraries stay at INFO (or the
level asked for, if higher) unless --debug-libraries asks for their debug too.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str, debug_libraries: bool = False, stream=None) -> None:
    """`level`: "debug", "info", "warning" or "error", for the "hivrrp" loggers."""
    ours = logging.getLevelName(level.upper())
    if not isinstance(ours, int):
        raise ValueError(f"not a log level: {level!r}")
    logging.basicConfig(stream=stream or sys.stderr, format=FORMAT)
    logging.getLogger().setLevel(logging.DEBUG if debug_libraries
                                 else max(ours, logging.INFO))
    logging.getLogger("hivrrp").setLevel(ours)
