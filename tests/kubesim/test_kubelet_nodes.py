"""Nodes, taints and selectors on a custom node set, and process hygiene on stop.

These tests need their own node configuration or must stop kubesim, so they run a
:class:`KubeSim` in this process; they still talk to it only over HTTP with
``kubernetes_asyncio``.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from gpulab.kubesim.config import KubesimConfig, NodeConfig
from gpulab.kubesim.main import KubeSim
from kubelet_testlib import processes_with
from kubernetes_asyncio import client, config

TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
WAIT = 90.0


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[KubeSim]:
    nodes = [
        NodeConfig("gpu-a", gpus=2, taints=[TAINT], labels={"pool": "gpu"}),
        NodeConfig("cpu-a", gpus=0, cpu="4", memory="8Gi", labels={"pool": "cpu"}),
    ]
    sim = KubeSim(KubesimConfig(data_dir=tmp_path / "data", nodes=nodes))
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


@pytest.fixture
async def core(sim: KubeSim) -> AsyncIterator[client.CoreV1Api]:
    api = await config.new_client_from_config(config_file=str(sim.kubeconfig_path))
    try:
        yield client.CoreV1Api(api)
    finally:
        await api.close()


def pod(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    resources = spec.pop("resources", {})
    return {
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "main", "image": "busybox", "command": command, "resources": resources}
            ],
            **spec,
        },
    }


async def wait(what: str, fn: Any) -> Any:
    async with asyncio.timeout(WAIT):
        while True:
            if result := await fn():
                return result
            await asyncio.sleep(0.2)  # polling the API: a wait, not a timed assertion


async def scheduled_condition(core: client.CoreV1Api, name: str) -> Any:
    p = await core.read_namespaced_pod(name, "default")
    return next((c for c in p.status.conditions or [] if c.type == "PodScheduled"), None)


async def test_nodes_advertise_gpus_labels_and_taints(core: client.CoreV1Api) -> None:
    nodes = {n.metadata.name: n for n in (await core.list_node()).items}
    gpu = nodes["gpu-a"]
    assert gpu.status.capacity["nvidia.com/gpu"] == "2"
    assert gpu.status.allocatable["cpu"] == "16"
    assert gpu.metadata.labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert gpu.metadata.labels["nvidia.com/gpu.count"] == "2"
    assert gpu.metadata.labels["kubernetes.io/hostname"] == "gpu-a"
    assert gpu.spec.taints[0].key == "nvidia.com/gpu"
    assert any(c.type == "Ready" and c.status == "True" for c in gpu.status.conditions)
    assert "nvidia.com/gpu" not in (nodes["cpu-a"].status.capacity or {})


async def test_taint_needs_a_toleration(core: client.CoreV1Api) -> None:
    gpus = {"limits": {"nvidia.com/gpu": "1"}}
    await core.create_namespaced_pod("default", pod("no-tol", ["true"], resources=gpus))
    cond = await wait("Unschedulable", lambda: scheduled_condition(core, "no-tol"))
    assert cond.reason == "Unschedulable"
    assert cond.message.startswith(
        "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, "
        "1 node(s) had untolerated taint {nvidia.com/gpu: present}."
    )
    tolerations = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    await core.create_namespaced_pod(
        "default", pod("tol", ["true"], resources=gpus, tolerations=tolerations)
    )

    async def bound() -> str | None:
        return (await core.read_namespaced_pod("tol", "default")).spec.node_name

    assert await wait("bound", bound) == "gpu-a"


async def test_node_selector_and_affinity(core: client.CoreV1Api) -> None:
    await core.create_namespaced_pod(
        "default", pod("sel", ["true"], nodeSelector={"pool": "nowhere"})
    )
    cond = await wait("Unschedulable", lambda: scheduled_condition(core, "sel"))
    assert cond.message.startswith(
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "1 node(s) had untolerated taint {nvidia.com/gpu: present}."
    )
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["cpu"]}]}
                ]
            }
        }
    }
    await core.create_namespaced_pod("default", pod("aff", ["true"], affinity=affinity))

    async def bound() -> str | None:
        return (await core.read_namespaced_pod("aff", "default")).spec.node_name

    assert await wait("bound", bound) == "cpu-a"


async def test_cpu_requests_are_counted(core: client.CoreV1Api) -> None:
    big = {"requests": {"cpu": "3"}}
    sel = {"pool": "cpu"}
    await core.create_namespaced_pod(
        "default", pod("c1", ["sleep", "300"], resources=big, nodeSelector=sel)
    )
    await core.create_namespaced_pod(
        "default", pod("c2", ["sleep", "300"], resources=big, nodeSelector=sel)
    )
    cond = await wait("Unschedulable", lambda: scheduled_condition(core, "c2"))
    assert "1 Insufficient cpu" in cond.message
    await core.delete_namespaced_pod("c1", "default", grace_period_seconds=0)

    async def running() -> bool:
        return (await core.read_namespaced_pod("c2", "default")).status.phase == "Running"

    await wait("c2 running once c1 is gone", running)


async def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    token = f"kubesim-orphan-{uuid.uuid4().hex}"
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)", token]
    # One child in the container's group, one that escapes into its own session (as Jupyter
    # kernels do), and the main process itself.
    script = f"setsid {' '.join(repr(a) for a in sleeper)} & {' '.join(repr(a) for a in sleeper)} & exec {' '.join(repr(a) for a in sleeper)}"
    sim = KubeSim(KubesimConfig(data_dir=tmp_path / "data"))
    await sim.start()
    try:
        api = await config.new_client_from_config(config_file=str(sim.kubeconfig_path))
        core = client.CoreV1Api(api)
        await core.create_namespaced_pod("default", pod("tree", ["sh", "-c", script]))

        async def three() -> bool:
            return len(processes_with(token)) >= 3

        await wait("three processes", three)
        await api.close()
    finally:
        await sim.stop()
    assert processes_with(token) == []
