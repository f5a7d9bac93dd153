"""Fixtures that start kubesim for the kubesim tests (API and kubelet alike).

``kubesim`` (session): the real ``gpulab kubesim serve --kueue`` process on a free loopback
port, driven over HTTP (Kueue acts only on objects with its queue label). Attributes: ``url``, ``kubeconfig`` (Path), ``data_dir`` (Path),
``audit_log`` (Path), ``process``; helpers ``kubectl(*args)`` -> CompletedProcess and
``set_faults(**settings)`` / ``clear_faults()`` / ``requests()`` for the admin endpoints.

``kubesim_inproc`` (function, async): a :class:`KubeSim` in this process with a small watch
history window, for behaviours that need a fresh or tiny store (410 Gone).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpulab.kubesim.config import KubesimConfig
from gpulab.kubesim.main import KubeSim
from kubesim_testlib import KubesimProcess

STARTUP_SECONDS = 60  # a deadline for the child to come up, not an assertion on speed


@pytest.fixture(scope="session")
def kubesim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubesimProcess]:
    tmp = tmp_path_factory.mktemp("kubesim")
    sim = KubesimProcess.start(
        tmp, audit_log=tmp / "audit.jsonl", timeout=STARTUP_SECONDS, kueue=True
    )
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
async def kubesim_inproc(tmp_path: Path) -> AsyncIterator[KubeSim]:
    sim = KubeSim(
        KubesimConfig(data_dir=tmp_path / "data", history_window=20, bookmark_interval=0.2)
    )
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
def namespace(kubesim: KubesimProcess) -> Iterator[str]:
    """A fresh namespace per test, so tests sharing the session server do not see each other."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kubesim.kubectl("create", "namespace", name)
    yield name
    kubesim.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def k8s(kubesim: KubesimProcess) -> Iterator[Any]:
    """The official ``kubernetes`` client's ApiClient for the session kubesim."""
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(kubesim.kubeconfig))
    yield client
    client.close()


@pytest.fixture
async def k8s_async(kubesim: KubesimProcess) -> AsyncIterator[Any]:
    """A ``kubernetes_asyncio`` ApiClient for the session kubesim."""
    from kubernetes_asyncio import config

    client = await config.new_client_from_config(config_file=str(kubesim.kubeconfig))
    yield client
    await client.close()
