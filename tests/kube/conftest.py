"""``sim``: kubesim in this process (a small watch history, frequent bookmarks), and ``kube``:
a :class:`gpulab.hub.kube.KubeClient` connected to it through its kubeconfig."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gpulab.hub.kube import KubeClient
from gpulab.kubesim.config import KubesimConfig
from gpulab.kubesim.main import KubeSim

HISTORY_WINDOW = 20


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[KubeSim]:
    config = KubesimConfig(
        data_dir=tmp_path / "data", nodes=[], history_window=HISTORY_WINDOW, bookmark_interval=0.2
    )
    async with KubeSim(config) as running:
        yield running


@pytest.fixture
async def kube(sim: KubeSim) -> AsyncIterator[KubeClient]:
    client = await KubeClient.connect(str(sim.kubeconfig_path), user_agent="gpulab-test/0")
    try:
        yield client
    finally:
        await client.close()
