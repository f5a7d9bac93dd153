"""The quota ledger (gpulab.hub.workload.quota_ledger) against kubesim in this process: two
checkers with their own clients stand for the spawner and the jobs gateway."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gpulab.hub.field_errors import FieldError
from gpulab.hub.kube import KubeClient, resource_path
from gpulab.hub.workload.holdings import GpuUsage
from gpulab.hub.workload.quota_ledger import QuotaLedger
from gpulab.hub.workload.reservations import Reservation, ledger_entries, ledger_name
from gpulab.kubesim.config import KubesimConfig
from gpulab.kubesim.main import KubeSim

NS = "default"
GROUP = "nlp"
QUOTA = 2  # bob's GPUs


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[KubeSim]:
    async with KubeSim(KubesimConfig(data_dir=tmp_path / "data", nodes=[])) as running:
        yield running


async def _client(sim: KubeSim) -> KubeClient:
    return await KubeClient.connect(str(sim.kubeconfig_path), user_agent="gpulab-test/0")


@pytest.fixture
async def clients(sim: KubeSim) -> AsyncIterator[tuple[KubeClient, KubeClient]]:
    a, b = await _client(sim), await _client(sim)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def quota(gpus: int):
    def check(usage: GpuUsage) -> list[FieldError]:
        if usage.user + gpus > QUOTA:
            return [FieldError("gpus", f"{usage.user} of {QUOTA} in use", "", "quota")]
        return []

    return check


async def reserve(
    ledger: QuotaLedger, name: str, gpus: int = 1, *, held: int = 1, seen=lambda e: False
) -> list[FieldError]:
    """bob, holding ``held`` GPUs in the checker's cache, asks for ``gpus`` more for ``name``."""
    return await ledger.reserve(
        GROUP,
        "pod" if name.startswith("jupyter") else "job",
        name,
        user="bob",
        gpus=gpus,
        counted=lambda: GpuUsage(user=held, group=held),
        seen=seen,
        check=quota(gpus),
    )


async def entries(kube: KubeClient) -> list[Reservation]:
    return ledger_entries(await kube.get(resource_path("v1", "configmaps", NS, ledger_name(GROUP))))


async def test_two_checkers_at_the_same_instant_admit_only_what_the_quota_holds(clients):
    spawner, gateway = (QuotaLedger(k, NS) for k in clients)
    results = await asyncio.gather(reserve(spawner, "jupyter-bob"), reserve(gateway, "bob-train-1"))
    assert sorted(bool(r) for r in results) == [False, True], results
    assert len(await entries(clients[0])) == 1


async def test_a_reservation_counts_until_the_checker_sees_its_object(clients):
    ledger = QuotaLedger(clients[0], NS)
    assert await reserve(ledger, "jupyter-bob") == []
    assert await reserve(ledger, "bob-train-1") != []
    # once the pod is in the checker's cache, the cache counts it (held=2 covers it)
    in_cache = lambda e: e.name == "jupyter-bob"  # noqa: E731
    assert await reserve(ledger, "bob-train-1", held=1, seen=in_cache) == []


async def test_an_expired_reservation_no_longer_counts_and_is_dropped(clients):
    clock = Clock()
    ledger = QuotaLedger(clients[0], NS, ttl=60, clock=clock)
    assert await reserve(ledger, "jupyter-bob") == []
    clock.now += 61
    assert await reserve(ledger, "bob-train-1") == []
    assert [e.name for e in await entries(clients[0])] == ["bob-train-1"]


async def test_a_released_reservation_frees_the_quota_at_once(clients):
    ledger = QuotaLedger(clients[0], NS)
    assert await reserve(ledger, "bob-train-1") == []
    await ledger.release(GROUP, "job", "bob-train-1")
    assert await entries(clients[0]) == []
    assert await reserve(ledger, "jupyter-bob") == []


async def test_reserving_the_same_object_again_replaces_its_reservation(clients):
    ledger = QuotaLedger(clients[0], NS)
    assert await reserve(ledger, "jupyter-bob") == []
    assert await reserve(ledger, "jupyter-bob") == []  # the server started again
    assert [e.key for e in await entries(clients[0])] == ["pod.jupyter-bob"]
