"""The gateway knows its users' home claims from a watch: it creates a missing one once, however
many submits ask at the same time, and asks nothing for one that exists (kubesim in this
process, its request counts read from its audit)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gpulab.hub.jobs.gateway.homes import HomeClaims
from gpulab.hub.jobs.gateway.kube import Kube
from gpulab.hub.policy import load_policy
from gpulab.hub.workload.pod import home_claim
from gpulab.kubesim.config import KubesimConfig
from gpulab.kubesim.main import KubeSim

POLICY = Path(__file__).resolve().parents[1] / "e2e" / "policy.yaml"
CREATE_CLAIM = "create persistentvolumeclaims"


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[KubeSim]:
    async with KubeSim(KubesimConfig(data_dir=tmp_path / "data", nodes=[])) as running:
        yield running


@pytest.fixture
async def homes(sim: KubeSim) -> AsyncIterator[HomeClaims]:
    kube = await Kube.connect(
        str(sim.kubeconfig_path), user_agent="gpulab-test/0", namespace="default"
    )
    claims = HomeClaims(kube)
    claims.start()
    assert await claims.wait_synced(30)
    try:
        yield claims
    finally:
        await claims.stop()
        await kube.close()


def creates(sim: KubeSim) -> int:
    return sim.api.audit.counts[CREATE_CLAIM]


async def test_a_missing_home_claim_is_created_once_for_simultaneous_submits(
    sim: KubeSim, homes: HomeClaims
) -> None:
    policy = load_policy(POLICY)
    made = await asyncio.gather(*(homes.ensure(policy, "alice") for _ in range(5)))
    assert made.count(True) == 1
    assert creates(sim) == 1
    assert await homes.ensure(policy, "alice") is False
    assert creates(sim) == 1


async def test_an_existing_home_claim_costs_no_request(sim: KubeSim, homes: HomeClaims) -> None:
    policy = load_policy(POLICY)
    claim = home_claim(policy, "bob", "default")
    await homes.kube.create(homes.kube.pvcs_path(), claim)
    deadline = asyncio.get_running_loop().time() + 30
    while not homes.exists(claim["metadata"]["name"]):  # the watch event, bounded
        assert asyncio.get_running_loop().time() < deadline, "the watch never showed the claim"
        await asyncio.sleep(0.02)
    before = sim.api.audit.total
    assert await homes.ensure(policy, "bob") is False
    assert sim.api.audit.total == before


async def test_a_claim_made_by_someone_else_in_between_is_taken_as_there(
    sim: KubeSim, homes: HomeClaims
) -> None:
    policy = load_policy(POLICY)
    await homes.stop()  # the watch does not see it: the create answers 409
    claim = home_claim(policy, "carol", "default")
    await homes.kube.create(homes.kube.pvcs_path(), claim)
    assert await homes.ensure(policy, "carol") is False
    assert homes.exists(claim["metadata"]["name"])
