"""Session fixture ``kueue_platform``: the whole platform with kubesim's Kueue on (servers and
jobs queued by Kueue), on one node of 4 GPUs, with the policy of this folder (small quotas,
nlp lends its idle GPUs, vision's preemptible jobs borrow them). Shared by the Kueue tests of
the jobs gateway and of the spawner; tests/xdist_groups.py puts every test using it on one
worker.

The policy's Kueue objects (flavors, cohorts, the groups' queues, priority classes) are made
by the hub at start (``hub/kueue/keeper.py``); the fixture syncs them once more before the
first test, so that no test waits for the hub's first pass. A user's own queues are made by
the gateway or the spawner at their first submit or spawn.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.gateway.gateway_testlib import NAMESPACE, GatewayEnv, gateway_env

KUEUE_POLICY = Path(__file__).resolve().parent / "policy.yaml"


async def _sync_policy(kubeconfig: Path) -> None:
    from gpulab.hub.kube import KubeClient
    from gpulab.hub.kueue.sync import sync_policy
    from gpulab.hub.policy import load_policy

    client = await KubeClient.connect(str(kubeconfig), user_agent="gpulab-tests")
    try:
        await sync_policy(client, load_policy(KUEUE_POLICY), NAMESPACE)
    finally:
        await client.close()


@pytest.fixture(scope="session")
def kueue_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from gpulab.platform import LocalPlatform, PlatformConfig, free_port
    from tests.extension.conftest import extension_hub_config

    config = PlatformConfig(
        state_dir=tmp_path_factory.mktemp("kueue-platform"),
        policy_path=KUEUE_POLICY,
        port=free_port(),
        nodes=os.environ.get("GPULAB_KUEUE_TEST_NODES", "1x4"),
        extra_hub_config=extension_hub_config(),
        kueue=True,
    )
    platform = LocalPlatform(config)
    platform.start()
    try:
        asyncio.run(_sync_policy(platform.kubeconfig))
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="session")
def kgw(kueue_platform: Any) -> Iterator[GatewayEnv]:
    """The jobs gateway of the Kueue platform (as ``gw`` is of the shared platform)."""
    env = gateway_env(kueue_platform)
    yield env
    env.kubesim.faults()


@pytest.fixture(scope="module")
def kueue_browser() -> Iterator[Any]:
    """Chromium for the browser test of this folder: its own fixture, not tests/browser's
    ``browser``, so that sharing it does not put these tests in one xdist group with every
    browser test (tests/xdist_groups.py groups tests by the fixtures they share). Module-scoped,
    as tests/browser's is package-scoped: a sync Playwright left running makes every later
    asyncio test of the same worker fail ("Runner.run() cannot be called from a running event
    loop")."""
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: install Debian's chromium (`./dev.sh test` does)")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
