"""kubesim in this process for the Kueue sync tests: ``kueue_sim`` serves Kueue's API
(``--kueue``), ``plain_sim`` does not; ``kube`` is a KubeClient on ``kueue_sim``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gpulab.hub.kube import KubeClient
from gpulab.kubesim.config import KubesimConfig
from gpulab.kubesim.main import KubeSim

USER_AGENT = "gpulab-test/kueue"


def _config(tmp_path: Path, kueue: bool) -> KubesimConfig:
    return KubesimConfig(data_dir=tmp_path / "data", nodes=[], kueue=kueue)


@pytest.fixture
async def kueue_sim(tmp_path: Path) -> AsyncIterator[KubeSim]:
    async with KubeSim(_config(tmp_path, kueue=True)) as running:
        yield running


@pytest.fixture
async def plain_sim(tmp_path: Path) -> AsyncIterator[KubeSim]:
    async with KubeSim(_config(tmp_path, kueue=False)) as running:
        yield running


async def connect(sim: KubeSim) -> KubeClient:
    return await KubeClient.connect(str(sim.kubeconfig_path), user_agent=USER_AGENT)


@pytest.fixture
async def kube(kueue_sim: KubeSim) -> AsyncIterator[KubeClient]:
    client = await connect(kueue_sim)
    try:
        yield client
    finally:
        await client.close()
