"""Every watch cache counts its relists in ``gpulab_watch_cache_relists_total`` (by process,
resource and reason), against kubesim (the ``sim`` and ``kube`` fixtures of this folder)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from gpulab.hub.kube import KubeClient, WatchCache, resource_path
from gpulab.kubesim.faults import Faults
from gpulab.kubesim.main import KubeSim
from prometheus_client import REGISTRY

CONFIGMAPS = resource_path("v1", "configmaps", "default")
DEADLINE = 20.0


def relists(reason: str) -> float:
    labels = {"component": "hub", "resource": "configmaps", "reason": reason}
    return REGISTRY.get_sample_value("gpulab_watch_cache_relists_total", labels) or 0.0


async def until(what: str, pred: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if value := pred():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")


async def test_a_relist_after_410_gone_counts_as_expired(sim: KubeSim, kube: KubeClient) -> None:
    before = relists("expired")
    assert sim.api is not None
    sim.api.faults = Faults(gone_next_watch=True, match="/configmaps")
    cache = WatchCache(kube, CONFIGMAPS, name="configmaps")
    cache.start()
    try:
        await until("a relist after the injected 410", lambda: cache.lists == 2)
        await until("the relist counted", lambda: relists("expired") == before + 1)
    finally:
        sim.api.faults = Faults()
        await cache.stop()


async def test_a_periodic_resync_counts_as_resync(kube: KubeClient) -> None:
    before = relists("resync")
    cache = WatchCache(kube, CONFIGMAPS, name="configmaps", resync_seconds=0.3)
    cache.start()
    try:
        await until("a resync", lambda: cache.lists >= 2)
        await until("the resync counted", lambda: relists("resync") >= before + 1)
    finally:
        await cache.stop()


async def test_the_first_list_is_not_a_relist(kube: KubeClient) -> None:
    before = sum(relists(r) for r in ("expired", "error", "resync"))
    cache = WatchCache(kube, CONFIGMAPS, name="configmaps")
    cache.start()
    try:
        assert await cache.wait_synced(DEADLINE)
        assert sum(relists(r) for r in ("expired", "error", "resync")) == before
    finally:
        await cache.stop()
