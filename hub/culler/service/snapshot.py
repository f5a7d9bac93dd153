"""The dashboard's data as a snapshot: built in the background at most every ``max_age``
seconds, served as is (JSON already encoded, the page already rendered) to every request.

At 2,000 servers one build reads thousands of rows (hundreds of milliseconds on a busy
machine); a dashboard several admins keep open, refreshing itself, must not pay that per
request. A request never waits for a build except the very first: a stale snapshot is served
while the next one is built, and an admin's stop or cancel asks for a new one at once
(:meth:`OverviewSnapshot.invalidate`), so the next refresh shows it.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Built", "OverviewSnapshot"]

log = logging.getLogger("gpulab.culler")

DEFAULT_MAX_AGE = 5.0


Render = Callable[[dict[str, Any]], str]


@dataclass
class Built:
    data: dict[str, Any]
    at: float  # time.monotonic() of the build
    json: bytes = b""
    json_gzip: bytes = b""  # the same, compressed once for every client that accepts gzip
    pages: dict[str, str] = field(default_factory=dict)  # rendered pages, by key

    @classmethod
    def of(cls, data: dict[str, Any], at: float, pages: dict[str, Render]) -> Built:
        """Encode the data and render ``pages`` (pure in the data: run in a worker thread, so
        the event loop keeps answering meanwhile)."""
        encoded = json.dumps(data).encode()
        built = cls(data, at, encoded, gzip.compress(encoded, compresslevel=5))
        for key, render in pages.items():
            built.pages[key] = render(data)
        return built

    def json_for(self, accept_encoding: str) -> tuple[bytes, str | None]:
        """The encoded data and its Content-Encoding: gzip when the client takes it."""
        if "gzip" in accept_encoding.lower():
            return self.json_gzip, "gzip"
        return self.json, None

    def page(self, key: str, render: Render) -> str:
        """The page rendered once per snapshot (``render`` is pure in the data)."""
        if key not in self.pages:
            self.pages[key] = render(self.data)
        return self.pages[key]


class OverviewSnapshot:
    def __init__(
        self,
        build: Callable[[], Awaitable[dict[str, Any]]],
        max_age: float = DEFAULT_MAX_AGE,
        pages: dict[str, Render] | None = None,
    ) -> None:
        self._build = build
        self.max_age = max_age
        self._pages = pages or {}  # rendered with each build, off the event loop
        self._current: Built | None = None
        self._next: asyncio.Task[Built] | None = None
        self._stale = False

    def _start(self) -> asyncio.Task[Built]:
        if self._next is None or self._next.done():
            self._stale = False
            self._next = asyncio.get_running_loop().create_task(self._run())
        return self._next

    async def _run(self) -> Built:
        data = await self._build()
        built = await asyncio.to_thread(Built.of, data, time.monotonic(), self._pages)
        self._current = built
        return built

    def invalidate(self) -> None:
        """Something changed (an admin's action): build anew now; until then, serve the last."""
        self._stale = True
        try:
            self._start()
        except RuntimeError:  # no running loop (tests calling it bare): the next get builds
            pass

    async def get(self) -> Built:
        current = self._current
        if current is None:
            return await asyncio.shield(self._start())
        if self._stale or time.monotonic() - current.at > self.max_age:
            task = self._start()
            task.add_done_callback(_log_failure)
        return current


def _log_failure(task: asyncio.Task[Built]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("dashboard data not rebuilt: %s", task.exception())
