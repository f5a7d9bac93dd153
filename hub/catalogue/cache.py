"""``Catalogue``: the cached catalogue the spawner reads.

- Warm: :meth:`Catalogue.images` answers from memory (no registry request, no await on I/O).
- Cold (nothing loaded yet): the first callers wait for the first load, at most
  ``first_load_timeout`` seconds counted from when that load started; then they get ``[]``
  and a warning is logged. While a cold load is failing, new loads are not started more often
  than every ``retry_seconds`` (a spawn page render never triggers a registry stampede).
- A background task (:meth:`start`) reloads every ``refresh_seconds``; after a failure it
  retries after ``min(retry_seconds, refresh_seconds)``. A failed load keeps the last good
  catalogue in service and is logged once per failure streak (with the registry's error);
  the recovery is logged too.
- Nothing here raises to the caller of :meth:`images` / :meth:`snapshot`.
- Loads, failures and, once started, age and size are Prometheus metrics (:mod:`.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Protocol

from . import metrics
from .model import Image

__all__ = ["Catalogue", "CatalogueStats", "ImageSource"]


class ImageSource(Protocol):
    """Where images come from (:class:`~.harbor.HarborSource`, :class:`~.static.StaticSource`)."""

    requests: int  # registry requests made so far

    @property
    def description(self) -> str: ...

    async def fetch(self) -> list[Image]: ...


@dataclass(frozen=True)
class CatalogueStats:
    """For benchmarks and the admin dashboard. Times are ``time.time()`` seconds."""

    source: str
    warm: bool
    images: int
    requests: int  # registry requests made by the source, in all
    refreshes: int  # successful loads
    failures: int  # failed loads, in all
    consecutive_failures: int
    last_refresh: float | None  # last successful load
    last_attempt: float | None
    last_duration_seconds: float | None
    last_error: str | None  # of the current failure streak; None once a load succeeds
    cold_answers: int  # images() calls answered [] because nothing was loaded yet
    # a configuration problem an admin must fix (Harbor does not recognise the credentials);
    # shown on the dashboard; None once a load succeeds
    misconfiguration: str | None = None


class Catalogue:
    """Cached image catalogue (module docstring). Create it anywhere; it binds to the running
    event loop on first :meth:`images` or :meth:`start`."""

    def __init__(
        self,
        source: ImageSource,
        *,
        refresh_seconds: float = 300.0,
        first_load_timeout: float = 5.0,
        retry_seconds: float = 30.0,
        refresh_timeout: float | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.source = source
        self.refresh_seconds = max(0.01, float(refresh_seconds))
        self.first_load_timeout = max(0.0, float(first_load_timeout))
        self.retry_seconds = max(0.01, float(retry_seconds))
        self.refresh_timeout = refresh_timeout
        self.log = logger or logging.getLogger("gpulab.catalogue")
        self._images: tuple[Image, ...] | None = None
        self._load: asyncio.Task[bool] | None = None
        self._load_started = 0.0  # monotonic
        self._cold_warned = False  # warned about the current cold load
        self._last_failure_mono: float | None = None
        self._runner: asyncio.Task[None] | None = None
        # stats
        self._refreshes = 0
        self._failures = 0
        self._consecutive = 0
        self._last_refresh: float | None = None
        self._last_attempt: float | None = None
        self._last_duration: float | None = None
        self._last_error: str | None = None
        self._cold_answers = 0
        self._misconfiguration: str | None = None

    # ------------------------------------------------------------------ reading

    @property
    def warm(self) -> bool:
        return self._images is not None

    def snapshot(self) -> list[Image]:
        """The cached images (``[]`` before the first successful load). Sync, never blocks."""
        return list(self._images or ())

    async def images(self) -> list[Image]:
        """The catalogue: from memory when warm; never raises (module docstring)."""
        if self._images is not None:
            return list(self._images)
        try:
            return await self._cold_images()
        except asyncio.CancelledError:
            raise
        except Exception:  # never let the spawn page fail because of the catalogue
            self.log.exception("catalogue: unexpected error; offering the cached images")
            return self.snapshot()

    async def _cold_images(self) -> list[Image]:
        now = time.monotonic()
        load = self._load
        if load is None or load.done():
            recently_failed = (
                self._last_failure_mono is not None
                and now - self._last_failure_mono < self.retry_seconds
            )
            if recently_failed:
                self._cold_answers += 1
                return self.snapshot()
            load = self._start_load()
        remaining = self.first_load_timeout - (time.monotonic() - self._load_started)
        if remaining > 0 and not load.done():
            await asyncio.wait({load}, timeout=remaining)
        if self._images is not None:
            return list(self._images)
        self._cold_answers += 1
        if not load.done() and not self._cold_warned:
            self._cold_warned = True
            self.log.warning(
                "catalogue: first load from %s not finished after %g s; "
                "offering no images until it is",
                self.source.description,
                self.first_load_timeout,
            )
        return []

    # ------------------------------------------------------------------ loading

    def _start_load(self) -> asyncio.Task[bool]:
        self._load_started = time.monotonic()
        self._cold_warned = False
        self._load = asyncio.get_running_loop().create_task(
            self._load_once(), name="gpulab-catalogue-load"
        )
        return self._load

    async def _fetch(self) -> list[Image]:
        if self.refresh_timeout is None:
            return await self.source.fetch()
        async with asyncio.timeout(self.refresh_timeout):
            return await self.source.fetch()

    async def _load_once(self) -> bool:
        started_wall, started = time.time(), time.monotonic()
        self._last_attempt = started_wall
        try:
            images = await self._fetch()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # CatalogueError, or anything a source did wrong
            self._last_duration = time.monotonic() - started
            self._failure(exc)
            return False
        self._last_duration = time.monotonic() - started
        self._images = tuple(images)
        self._refreshes += 1
        metrics.REFRESHES.labels(metrics.source_kind(self.source)).inc()
        self._last_refresh = time.time()
        if self._consecutive:
            self.log.info(
                "catalogue: %s answers again after %d failed loads; %d images",
                self.source.description,
                self._consecutive,
                len(images),
            )
        self._consecutive = 0
        self._last_error = None
        self._misconfiguration = None
        self._last_failure_mono = None
        return True

    def _failure(self, exc: Exception) -> None:
        message = (
            f"timed out after {self.refresh_timeout:g} s"
            if isinstance(exc, TimeoutError) and self.refresh_timeout is not None
            else (str(exc) or type(exc).__name__)
        )
        self._failures += 1
        metrics.LOAD_ERRORS.labels(metrics.source_kind(self.source), metrics.error_class(exc)).inc()
        self._consecutive += 1
        self._last_error = message
        if getattr(exc, "status", None) == 401:  # wrong credentials: only an admin can fix it
            self._misconfiguration = message
        self._last_failure_mono = time.monotonic()
        if self._consecutive == 1:
            if self._images is not None:
                since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self._last_refresh or 0))
                serving = f"serving the last good catalogue ({len(self._images)} images, {since})"
            else:
                serving = "no catalogue loaded yet; offering no images"
            self.log.warning(
                "catalogue: cannot load from %s: %s; %s (logged once until it recovers)",
                self.source.description,
                message,
                serving,
            )
        else:
            self.log.debug("catalogue: load failed again (%d): %s", self._consecutive, message)

    async def refresh(self) -> bool:
        """Load now (joins a load already in flight). True when the catalogue was updated."""
        load = self._load if self._load is not None and not self._load.done() else None
        load = load or self._start_load()
        return await asyncio.shield(load)

    # ------------------------------------------------------------------ lifecycle

    async def _run(self) -> None:
        while True:
            ok = await self.refresh()
            await asyncio.sleep(
                self.refresh_seconds if ok else min(self.retry_seconds, self.refresh_seconds)
            )

    async def start(self) -> None:
        """Start the background refresh (returns at once; idempotent)."""
        metrics.track(self)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.get_running_loop().create_task(
                self._run(), name="gpulab-catalogue-refresh"
            )

    async def stop(self) -> None:
        """Stop the background refresh and any load in flight; the cache stays readable."""
        for task in (self._runner, self._load):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._runner = None

    # ------------------------------------------------------------------ stats

    @property
    def stats(self) -> CatalogueStats:
        return CatalogueStats(
            source=self.source.description,
            warm=self._images is not None,
            images=len(self._images or ()),
            requests=int(getattr(self.source, "requests", 0)),
            refreshes=self._refreshes,
            failures=self._failures,
            consecutive_failures=self._consecutive,
            last_refresh=self._last_refresh,
            last_attempt=self._last_attempt,
            last_duration_seconds=self._last_duration,
            last_error=self._last_error,
            cold_answers=self._cold_answers,
            misconfiguration=self._misconfiguration,
        )

    def __repr__(self) -> str:
        return f"Catalogue({self.source.description}, warm={self.warm})"
