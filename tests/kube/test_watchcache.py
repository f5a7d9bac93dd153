"""The one watch cache (gpulab.hub.kube.WatchCache) against kubesim: list + watch converge, 410
Gone relists, cut watches resume without a relist, bookmarks move the resourceVersion on,
resync lists again, errors back off and recover. And: no other list + watch loop exists in
gpulab's own code."""

from __future__ import annotations

import ast
import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gpulab.hub.kube import KubeClient, WatchCache, resource_path
from gpulab.kubesim.faults import Faults
from gpulab.kubesim.main import KubeSim

ROOT = Path(__file__).resolve().parents[2]
CONFIGMAPS = resource_path("v1", "configmaps", "default")
DEADLINE = 20.0  # seconds to wait for a state, never an assertion on speed


def config_map(name: str, value: str = "1", **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"test": "watchcache", **labels}},
        "data": {"value": value},
    }


async def until(what: str, pred: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if value := pred():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


def names(cache: WatchCache) -> set[str]:
    return {o["metadata"]["name"] for o in cache.objects.values()}


def count_watches(kube: KubeClient) -> list[str]:
    """Record the resourceVersion every watch the client opens starts from."""
    starts: list[str] = []
    watch = kube.watch

    def counting(path: str, resource_version: str, **kw: Any) -> Any:
        starts.append(resource_version)
        return watch(path, resource_version, **kw)

    kube.watch = counting  # type: ignore[method-assign]
    return starts


async def test_list_and_watch_converge_and_feed_the_hooks(kube: KubeClient) -> None:
    for i in range(5):
        await kube.create(CONFIGMAPS, config_map(f"before-{i}"))
    await kube.create(CONFIGMAPS, config_map("other", test="other"))
    resets: list[list[str]] = []
    events: list[tuple[str, str]] = []

    async def on_event(kind: str, obj: dict[str, Any]) -> None:  # hooks may be coroutines
        events.append((kind, obj["metadata"]["name"]))

    cache = WatchCache(
        kube,
        CONFIGMAPS,
        name="configmaps",
        label_selector="test=watchcache",
        page_size=2,  # three pages
        on_reset=lambda items: resets.append(sorted(o["metadata"]["name"] for o in items)),
        on_event=on_event,
    )
    cache.start()
    try:
        assert await cache.wait_synced(DEADLINE)
        assert resets == [[f"before-{i}" for i in range(5)]]
        await kube.create(CONFIGMAPS, config_map("after"))
        await kube.patch(f"{CONFIGMAPS}/before-0", {"data": {"value": "2"}})
        await kube.delete(f"{CONFIGMAPS}/before-1")
        await kube.create(CONFIGMAPS, config_map("ignored", test="other"))
        want = {"after", "before-0", "before-2", "before-3", "before-4"}
        await until("the cache matches the cluster", lambda: names(cache) == want)
        assert cache.objects["default/before-0"]["data"] == {"value": "2"}
        await until("three events", lambda: len(events) >= 3)
        assert events == [("ADDED", "after"), ("MODIFIED", "before-0"), ("DELETED", "before-1")]
        assert cache.lists == 1
    finally:
        await cache.stop()


async def test_410_gone_lists_again(sim: KubeSim, kube: KubeClient) -> None:
    history = sim.config.history_window
    cache = WatchCache(kube, CONFIGMAPS, name="configmaps")
    await cache.sync()  # listed, not yet watching
    # More changes than kubesim remembers: a watch from the listed version gets 410 Gone.
    for i in range(history + 5):
        await kube.create(CONFIGMAPS, config_map(f"cm-{i}"))
    cache.start()
    try:
        await until("a relist after 410", lambda: cache.lists == 2)
        await until("every object", lambda: len(cache.objects) == history + 5)
    finally:
        await cache.stop()
    # An injected 410 ERROR event as a watch starts: the same.
    assert sim.api is not None
    sim.api.faults = Faults(gone_next_watch=True, match="/configmaps")
    again = WatchCache(kube, CONFIGMAPS, name="configmaps")
    again.start()
    try:
        await until("a relist after the injected 410", lambda: again.lists == 2)
        await kube.create(CONFIGMAPS, config_map("late"))
        await until("the late object", lambda: "late" in names(again))
    finally:
        sim.api.faults = Faults()
        await again.stop()


async def test_a_cut_watch_resumes_from_the_last_version(sim: KubeSim, kube: KubeClient) -> None:
    starts = count_watches(kube)
    cache = WatchCache(kube, CONFIGMAPS, name="configmaps")
    assert sim.api is not None
    sim.api.faults = Faults(cut_watches_after_s=0.3, match="/configmaps")
    cache.start()
    try:
        assert await cache.wait_synced(DEADLINE)
        for i in range(5):
            await kube.create(CONFIGMAPS, config_map(f"cm-{i}"))
            await asyncio.sleep(0.2)
        await until("every object through cut watches", lambda: len(cache.objects) == 5)
        await until("several watches", lambda: len(starts) >= 3)
        assert cache.lists == 1, "a cut watch resumes; it does not list again"
        assert starts == sorted(starts, key=int), "each watch starts where the last one ended"
    finally:
        sim.api.faults = Faults()
        await cache.stop()


async def test_bookmarks_move_the_resource_version_on(kube: KubeClient) -> None:
    events: list[str] = []
    cache = WatchCache(
        kube,
        CONFIGMAPS,
        name="configmaps",
        label_selector="test=watchcache",
        on_event=lambda kind, obj: events.append(kind),
    )
    cache.start()
    try:
        assert await cache.wait_synced(DEADLINE)
        listed = int(cache.resource_version)
        # Changes the cache does not see (another label) still move kubesim's version on.
        for i in range(3):
            await kube.create(CONFIGMAPS, config_map(f"unseen-{i}", test="other"))
        await until("a bookmark", lambda: int(cache.resource_version) > listed + 2)
        assert events == [] and cache.objects == {}
    finally:
        await cache.stop()


async def test_resync_lists_again(kube: KubeClient) -> None:
    resets: list[int] = []
    cache = WatchCache(
        kube,
        CONFIGMAPS,
        name="configmaps",
        on_reset=lambda items: resets.append(len(items)),
        resync_seconds=0.5,
    )
    cache.start()
    try:
        assert await cache.wait_synced(DEADLINE)
        await kube.create(CONFIGMAPS, config_map("one"))
        await until("two resyncs", lambda: cache.lists >= 3)
        assert resets[0] == 0 and resets[-1] == 1
    finally:
        await cache.stop()


async def test_errors_back_off_and_recover(sim: KubeSim, kube: KubeClient) -> None:
    assert sim.api is not None
    sim.api.faults = Faults(error_rate=1.0, error_codes=[503], match="/configmaps")
    cache = WatchCache(kube, CONFIGMAPS, name="configmaps", backoff_max=0.5)
    cache.start()
    try:
        assert not await cache.wait_synced(1.0)
        sim.api.faults = Faults()
        assert await cache.wait_synced(DEADLINE)
        await kube.create(CONFIGMAPS, config_map("after-outage"))
        await until("the cache works", lambda: "after-outage" in names(cache))
    finally:
        sim.api.faults = Faults()
        await cache.stop()


# ----------------------------------------------------------------------------- one cache

SOURCE_DIRS = ("hub", "spawner", "extensions", "gpulab")
WATCH_MARKS = ("allowWatchBookmarks", "allow_watch_bookmarks", '"watch"', "watch=", "Watch(")


def _python_files() -> list[Path]:
    return [p for d in SOURCE_DIRS for p in (ROOT / d).rglob("*.py")]


def test_no_list_and_watch_loop_outside_the_kube_package() -> None:
    """gpulab's own code (kubesim, the API server, aside) watches only through hub/kube."""
    kube_dir = ROOT / "hub" / "kube"
    offenders = []
    for path in _python_files():
        if kube_dir in path.parents:
            continue
        # RBAC rules name "watch" among their verbs: data about rights, not a watch call.
        lines = [line for line in path.read_text().splitlines() if '"verbs"' not in line]
        text = "\n".join(lines)
        offenders += [f"{path.relative_to(ROOT)}: {m}" for m in WATCH_MARKS if m in text]
    assert offenders == []


def _receivers(cls: ast.ClassDef, method: str) -> set[str]:
    return {
        ast.unparse(call.func.value)
        for call in ast.walk(cls)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == method
    }


def test_exactly_one_watch_cache_class() -> None:
    """Classes that list and watch through the same client: the client itself (which waits
    for one object that way) and the one cache."""
    list_and_watch = set()
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and _receivers(node, "list") & _receivers(
                node, "watch"
            ):
                list_and_watch.add(node.name)
    assert list_and_watch == {"KubeClient", "WatchCache"}
