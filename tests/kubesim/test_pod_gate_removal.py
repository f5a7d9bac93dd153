"""A pod update may remove scheduling gates, never add them (as the apiserver); the pod is
then scheduled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from gpulab.kubesim.config import KubesimConfig
from gpulab.kubesim.main import KubeSim

PODS = "/api/v1/namespaces/default/pods"
MERGE = {"Content-Type": "application/merge-patch+json"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[aiohttp.ClientSession]:
    sim = KubeSim(KubesimConfig(data_dir=tmp_path / "data"))
    await sim.start()
    try:
        async with aiohttp.ClientSession(sim.url) as http:
            yield http
    finally:
        await sim.stop()


def gated_pod(gates: list[str]) -> dict:
    return {
        "metadata": {"name": "gated"},
        "spec": {
            "schedulingGates": [{"name": g} for g in gates],
            "containers": [{"name": "main", "image": "busybox", "command": ["sleep", "30"]}],
        },
    }


async def test_removing_the_last_gate_lets_the_pod_be_scheduled(api) -> None:
    async with api.post(PODS, json=gated_pod(["example.com/a"])) as r:
        assert r.status == 201
    async with api.patch(
        f"{PODS}/gated", json={"spec": {"schedulingGates": []}}, headers=MERGE
    ) as r:
        assert r.status == 200, await r.text()
    deadline = time.monotonic() + 30
    node = None
    while time.monotonic() < deadline and not node:
        async with api.get(f"{PODS}/gated") as r:
            node = (await r.json())["spec"].get("nodeName")
        await asyncio.sleep(0.1)
    assert node


async def test_adding_a_gate_is_refused(api) -> None:
    async with api.post(PODS, json=gated_pod(["example.com/a"])) as r:
        assert r.status == 201
    body = {"spec": {"schedulingGates": [{"name": "example.com/a"}, {"name": "example.com/b"}]}}
    async with api.patch(f"{PODS}/gated", json=body, headers=MERGE) as r:
        assert r.status == 422
