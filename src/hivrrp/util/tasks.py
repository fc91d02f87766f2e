"""Background tasks that nobody awaits still report how they ended."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine

log = logging.getLogger("hivrrp")


def spawn(coro: Coroutine, what: str) -> asyncio.Task:
    """A task whose exception is logged (with its traceback) when it ends,
    instead of vanishing with the task object."""
    task = asyncio.get_running_loop().create_task(coro, name=what)
    task.add_done_callback(_report)
    return task


def _report(task: asyncio.Task) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("%s failed", task.get_name(), exc_info=exc)
