"""Start and stop a service's background work (watch loops, heartbeats, file watchers) one way.

A :class:`Background` holds named asyncio tasks; :meth:`Background.stop` cancels them and
waits until each has ended, so a service's shutdown leaves no task behind and logs no
"Task was destroyed but it is pending".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

__all__ = ["Background"]

log = logging.getLogger("gpulab.background")


class Background:
    """The background tasks one component started."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    def start(self, name: str, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` as the task ``name`` (a task of that name still running is kept and
        ``work`` is discarded)."""
        task = self._tasks.get(name)
        if task is not None and not task.done():
            work.close()
            return task
        task = asyncio.get_running_loop().create_task(work, name=name)
        task.add_done_callback(_log_failure)
        self._tasks[name] = task
        return task

    def running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    async def stop(self) -> None:
        """Cancel every task and wait for each to end."""
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())
