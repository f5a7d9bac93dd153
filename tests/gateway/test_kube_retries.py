"""The gateway's Kubernetes client retries transient API failures within its budget.

kubesim runs in this process; a burst fault (below) answers the first N matching requests
with an error and then lets requests through, so each test knows exactly what failed.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from gpulab.hub.jobs.gateway.errors import from_kube
from gpulab.hub.jobs.gateway.kube import Kube, KubeError
from gpulab.hub.kube import Retry, resource_path
from gpulab.kubesim.config import KubesimConfig
from gpulab.kubesim.errors import ApiError as SimError
from gpulab.kubesim.faults import Faults
from gpulab.kubesim.main import KubeSim

CONFIGMAPS = resource_path("v1", "configmaps", "default")
FAST = Retry(attempts=3, budget=3.0, first_delay=0.01, max_delay=0.05)


@dataclass
class BurstFaults(Faults):
    """The first ``burst`` matching requests answer ``code`` (kubesim's own error answer,
    Retry-After included for 429/503); later ones go through."""

    burst: int = 0
    code: int = 503
    seen: int = 0

    def pick_error(self, rng: random.Random) -> SimError | None:
        self.seen += 1
        if self.seen > self.burst:
            return None
        return Faults(error_rate=1.0, error_codes=[self.code]).pick_error(rng)


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[KubeSim]:
    async with KubeSim(KubesimConfig(data_dir=tmp_path / "data", nodes=[])) as running:
        yield running


async def _kube(sim: KubeSim, retry: Retry) -> Kube:
    return await Kube.connect(
        str(sim.kubeconfig_path), user_agent="gpulab-test/0", namespace="default", retry=retry
    )


@pytest.fixture
async def kube(sim: KubeSim) -> AsyncIterator[Kube]:
    """A client with short pauses; the faults are cleared after each test."""
    client = await _kube(sim, FAST)
    try:
        yield client
    finally:
        sim.api.faults = Faults()
        await client.close()


def _configmap(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "data": {"a": "1"}}


async def test_a_burst_of_503s_is_absorbed(sim: KubeSim) -> None:
    kube = await _kube(sim, Retry(attempts=3, budget=3.0))  # the 503s ask for 1 s pauses
    try:
        sim.api.faults = BurstFaults(match=r"/configmaps$", burst=2, code=503)
        made = await kube.create(CONFIGMAPS, _configmap("absorbed", job="j1"))
        assert made["metadata"]["name"] == "absorbed"
        assert sim.api.faults.seen == 3
    finally:
        sim.api.faults = Faults()
        await kube.close()


async def test_a_spent_budget_answers_503_with_retry_after(sim: KubeSim, kube: Kube) -> None:
    sim.api.faults = BurstFaults(match=r"/configmaps", burst=100, code=503)
    with pytest.raises(KubeError) as failed:
        await kube.list(CONFIGMAPS)
    assert sim.api.faults.seen == FAST.attempts
    answer = from_kube(failed.value, "listing")
    assert (answer.status, answer.retry_after) == (503, 1)


async def test_a_retried_create_takes_its_own_object(sim: KubeSim, kube: Kube) -> None:
    # The first try made it and its answer was lost: here, made beforehand, and the
    # client's first try answered 503.
    await kube.create(CONFIGMAPS, _configmap("lost-answer", job="j2", key="k2"))
    sim.api.faults = BurstFaults(match=r"/configmaps$", burst=1, code=503)
    got = await kube.create(CONFIGMAPS, _configmap("lost-answer", job="j2", key="k2"))
    assert got["metadata"]["labels"] == {"job": "j2", "key": "k2"}


async def test_a_retried_create_refuses_another_object_of_that_name(
    sim: KubeSim, kube: Kube
) -> None:
    await kube.create(CONFIGMAPS, _configmap("taken", job="other", key="k3"))
    sim.api.faults = BurstFaults(match=r"/configmaps$", burst=1, code=503)
    with pytest.raises(KubeError) as conflict:
        await kube.create(CONFIGMAPS, _configmap("taken", job="mine", key="k3"))
    assert conflict.value.status == 409


async def test_calls_unsafe_to_repeat_are_tried_once(sim: KubeSim, kube: Kube) -> None:
    await kube.create(CONFIGMAPS, _configmap("patched"))
    sim.api.faults = BurstFaults(match=r"/configmaps", burst=1, code=503)
    with pytest.raises(KubeError):
        await kube.patch(
            f"{CONFIGMAPS}/patched", [{"op": "remove", "path": "/data/a"}], kind="json"
        )
    sim.api.faults = BurstFaults(match=r"/configmaps$", burst=1, code=503)
    with pytest.raises(KubeError):
        await kube.create(CONFIGMAPS, {"metadata": {"generateName": "anon-"}})
    assert sim.api.faults.seen == 1


async def test_errors_that_are_not_transient_are_not_retried(sim: KubeSim, kube: Kube) -> None:
    sim.api.faults = BurstFaults(match=r"/configmaps", burst=1, code=403)
    with pytest.raises(KubeError) as refused:
        await kube.list(CONFIGMAPS)
    assert refused.value.status == 403
    assert sim.api.faults.seen == 1
