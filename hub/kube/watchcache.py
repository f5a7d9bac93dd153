"""A local copy of one collection of Kubernetes objects, kept current by list + watch.

:class:`WatchCache` is gpulab's one reflector (the gateway's Jobs and Pods, the spawner's
pods, nodes and jobs, the usage recorder's pods all use it):

* list, page by page, then watch from the list's resourceVersion with ``allowWatchBookmarks``
  (bookmarks move the resourceVersion on while nothing changes, so a resumed watch rarely
  starts from a version the server has already forgotten);
* a watch the server ends (its timeout) or a cut stream resumes from the last version seen;
  410 Gone lists again at once; any other error lists again after an exponential, jittered
  backoff;
* with ``resync_seconds``, a full list again that often (it repairs whatever a hook missed:
  the usage recorder closes the intervals of pods that vanished);
* callers hook in with ``on_reset(items)`` (after every list) and ``on_event(type, obj)``
  (``ADDED``, ``MODIFIED``, ``DELETED``); a hook may be a coroutine function and is awaited in
  event order. Indexes (the gateway's jobs by user, the spawner's GPUs per node) live in the
  callers, fed by these hooks;
* every list after the first counts in ``gpulab_watch_cache_relists_total`` (by process,
  resource and reason: ``expired``, ``error``, ``resync``; :mod:`gpulab.hub.metrics`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..background import Background
from ..metrics import WATCH_RELISTS, component, resource_of
from .client import KubeClient, KubeError, Obj

__all__ = ["WatchCache", "object_key"]

log = logging.getLogger("gpulab.kube.watchcache")

ResetHook = Callable[[list[Obj]], Awaitable[None] | None]
EventHook = Callable[[str, Obj], Awaitable[None] | None]

CHANGES = ("ADDED", "MODIFIED", "DELETED")
BACKOFF_MIN = 0.5


def object_key(obj: Mapping[str, Any]) -> str:
    """``namespace/name``, or ``name`` for cluster-scoped objects."""
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{md.get('name')}" if ns else str(md.get("name"))


async def _call(hook: Callable[..., Awaitable[None] | None] | None, *args: Any) -> None:
    if hook is not None:
        result = hook(*args)
        if inspect.isawaitable(result):
            await result


class WatchCache:
    """One collection (``path``, with optional label and field selectors), listed then watched.

    ``objects`` holds the current objects by :func:`object_key`; reading it costs no API call.
    """

    def __init__(
        self,
        client: KubeClient,
        path: str,
        *,
        name: str,
        label_selector: str = "",
        field_selector: str = "",
        on_reset: ResetHook | None = None,
        on_event: EventHook | None = None,
        page_size: int = 500,
        watch_timeout: int = 300,
        resync_seconds: float | None = None,
        backoff_max: float = 30.0,
    ) -> None:
        self.client = client
        self.path = path
        self.name = name
        self.selectors = {
            "labelSelector": label_selector or None,
            "fieldSelector": field_selector or None,
        }
        self.on_reset = on_reset
        self.on_event = on_event
        self.page_size = page_size
        self.watch_timeout = watch_timeout
        self.resync_seconds = resync_seconds
        self.backoff_max = backoff_max
        self.objects: dict[str, Obj] = {}
        self.resource_version = ""
        self.synced = asyncio.Event()
        self.lists = 0  # full lists made (tests and the spawn benchmark read it)
        self._listed_at = 0.0
        self._background = Background()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Watch in the background (listing first unless :meth:`sync` already did)."""
        self._background.start(f"watch-{self.name}", self._run())

    async def start_synced(self) -> None:
        """List now (a failure, e.g. 403, raises here), then watch in the background."""
        await self.sync()
        self.start()

    async def stop(self) -> None:
        await self._background.stop()

    async def wait_synced(self, seconds: float | None = None) -> bool:
        """True once the first list is in (False after ``seconds``)."""
        try:
            await asyncio.wait_for(self.synced.wait(), seconds)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ list and watch
    async def sync(self) -> None:
        """List the collection now and replace the copy with what it holds."""
        items, rv = await self.client.list(self.path, page_size=self.page_size, **self.selectors)
        self.objects = {object_key(o): o for o in items}
        self.resource_version = rv
        self.lists += 1
        self._listed_at = time.monotonic()
        await _call(self.on_reset, items)
        self.synced.set()

    def _watch_seconds(self) -> int:
        if self.resync_seconds is None:
            return self.watch_timeout
        left = self._listed_at + self.resync_seconds - time.monotonic()
        return max(1, min(self.watch_timeout, int(left) + 1))

    def _resync_due(self) -> bool:
        return (
            self.resync_seconds is not None
            and time.monotonic() - self._listed_at >= self.resync_seconds
        )

    async def _watch(self) -> None:
        """Apply events from ``resource_version`` until the server ends the watch."""
        async for kind, obj in self.client.watch(
            self.path,
            self.resource_version,
            timeout_seconds=self._watch_seconds(),
            **self.selectors,
        ):
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if rv:
                self.resource_version = str(rv)
            if kind not in CHANGES:
                continue  # BOOKMARK: only the version moves on
            if kind == "DELETED":
                self.objects.pop(object_key(obj), None)
            else:
                self.objects[object_key(obj)] = obj
            await _call(self.on_event, kind, obj)

    async def _run(self) -> None:
        delay = BACKOFF_MIN
        need_list = not self.synced.is_set()
        reason = "error"  # why the next list is made, once a first one is in
        while True:
            try:
                if need_list or self._resync_due():
                    relist = self.lists > 0
                    await self.sync()
                    if relist:
                        WATCH_RELISTS.labels(
                            component(), resource_of(self.path), reason if need_list else "resync"
                        ).inc()
                need_list = False
                await self._watch()
                delay = BACKOFF_MIN
                continue
            except asyncio.CancelledError:
                raise
            except KubeError as exc:
                if exc.status == 410:
                    log.info("%s watch: %s; listing again", self.name, exc.message)
                    need_list, reason = True, "expired"
                    continue
                # a cut stream resumes from the last version; any other error lists again
                need_list = need_list or exc.status != 0 or not self.resource_version
                reason = "error"
                log.warning("%s watch: %s; retrying in %.1fs", self.name, exc, delay)
            except Exception:  # noqa: BLE001 - the cache must outlive any bad event or hook
                log.exception("%s watch failed; listing again in %.1fs", self.name, delay)
                need_list, reason = True, "error"
            await asyncio.sleep(delay * (0.5 + random.random()))  # noqa: S311 - jitter
            delay = min(self.backoff_max, delay * 2)
