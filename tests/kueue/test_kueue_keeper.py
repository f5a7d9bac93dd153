"""The hub's keeper: the policy's Kueue objects at start and after every reload, and a clear
log line when the cluster has no Kueue."""

from __future__ import annotations

import copy
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from gpulab.hub.kube import KubeClient
from gpulab.hub.kueue.keeper import KueueKeeper
from gpulab.hub.policy import PolicyFile
from gpulab.kubesim.main import KubeSim

from tests.kueue.conftest import connect
from tests.kueue.kueue_policies import BASE

NS = "default"
RESYNC_SECONDS = 0.2
DEADLINE_SECONDS = 30  # a bound on the resync, not a speed assertion
COHORT = "/apis/kueue.x-k8s.io/v1beta2/cohorts/gpulab-nlp"


def _write(path: Path, nlp_quota: int) -> None:
    data = copy.deepcopy(BASE)
    data["groups"]["nlp"]["gpu"]["quota_group"] = nlp_quota
    path.write_text(yaml.safe_dump(data))


def _nlp_gpus(cohort: dict) -> int:
    return cohort["spec"]["resourceGroups"][1]["flavors"][0]["resources"][0]["nominalQuota"]


@pytest.fixture
def policy_file(tmp_path: Path) -> PolicyFile:
    path = tmp_path / "policy.yaml"
    _write(path, 4)
    return PolicyFile(path)


@pytest.fixture
async def started(policy_file: PolicyFile, kueue_sim: KubeSim) -> AsyncIterator[KueueKeeper]:
    keeper = KueueKeeper(policy_file, NS, connect=lambda: connect(kueue_sim))
    await keeper.start()
    try:
        yield keeper
    finally:
        await keeper.stop()
        await policy_file.stop()


async def test_the_keeper_applies_the_policy_at_start(
    started: KueueKeeper, kube: KubeClient
) -> None:
    assert started.status is not None and started.status.available
    assert _nlp_gpus(await kube.get(COHORT)) == 4


async def test_a_policy_reload_applies_the_new_policy(
    started: KueueKeeper, policy_file: PolicyFile, kube: KubeClient
) -> None:
    _write(policy_file.path, 6)
    assert await policy_file.check()
    await started.settled()
    assert _nlp_gpus(await kube.get(COHORT)) == 6


async def test_an_object_deleted_by_hand_comes_back(
    policy_file: PolicyFile, kueue_sim: KubeSim, kube: KubeClient
) -> None:
    keeper = KueueKeeper(
        policy_file, NS, connect=lambda: connect(kueue_sim), resync_seconds=RESYNC_SECONDS
    )
    await keeper.start()
    try:
        await kube.delete(COHORT)
        cohorts, name = COHORT.rsplit("/", 1)
        assert await kube.wait_for(cohorts, name, lambda o: o is not None, DEADLINE_SECONDS)
    finally:
        await keeper.stop()
        await policy_file.stop()


async def test_without_kueue_the_hub_log_says_gpulab_admits_itself(
    policy_file: PolicyFile, plain_sim: KubeSim, caplog: pytest.LogCaptureFixture
) -> None:
    keeper = KueueKeeper(policy_file, NS, connect=lambda: connect(plain_sim))
    with caplog.at_level(logging.WARNING, logger="gpulab.kueue"):
        status = await keeper.start()
    await keeper.stop()
    assert not status.available
    assert any(r.getMessage().startswith("Kueue: Kueue is not installed") for r in caplog.records)
