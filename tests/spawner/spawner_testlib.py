"""Shared helpers of the spawner tests (a plain module: tests/ has no packages)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from gpulab.hub.policy import Policy, parse_policy

ROOT = Path(__file__).resolve().parents[2]
DEMO_POLICY = ROOT / "hub" / "demo" / "policy.yaml"


@dataclass(frozen=True)
class FakeImage:
    """The catalogue contract's Image attributes the spawner reads."""

    reference: str
    display_name: str = ""
    description: str = ""
    gpu: bool = False
    framework: str | None = None
    cuda: str | None = None
    project: str = ""
    tag: str = ""
    recommended: bool = False


def demo_dict() -> dict[str, Any]:
    return yaml.safe_load(DEMO_POLICY.read_text())


def demo_policy(**changes: Any) -> Policy:
    data = copy.deepcopy(demo_dict())
    for dotted, value in changes.items():
        node = data
        *path, last = dotted.split("__")
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return parse_policy(data)


def demo_images(policy: Policy | None = None) -> list[FakeImage]:
    policy = policy or demo_policy()
    return [
        FakeImage(
            reference=i.image,
            display_name=i.display_name,
            description=i.description,
            gpu=i.gpu,
            framework=i.framework,
            cuda=i.cuda,
        )
        for i in policy.catalogue.static
    ]


def pod(
    name: str,
    *,
    user: str = "alice",
    group: str = "vision",
    gpus: int = 1,
    phase: str = "Running",
    node: str | None = None,
    job_id: str | None = None,
    resource: str = "nvidia.com/gpu",
    managed: bool = True,
) -> dict[str, Any]:
    labels = {"gpulab.io/user": user, "gpulab.io/group": group, "gpulab.io/gpus": str(gpus)}
    if managed:
        labels["app.kubernetes.io/managed-by"] = "gpulab"
    if job_id:
        labels["gpulab.io/job-id"] = job_id
    spec: dict[str, Any] = {
        "containers": [{"name": "c", "resources": {"limits": {resource: str(gpus)}}}]
    }
    if node:
        spec["nodeName"] = node
    return {
        "metadata": {"name": name, "namespace": "gpulab", "labels": labels},
        "spec": spec,
        "status": {"phase": phase},
    }


def node(name: str, gpus: int = 4, product: str = "NVIDIA-A100-SXM4-80GB", ready: bool = True):
    return {
        "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
        "spec": {},
        "status": {
            "allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "32"},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }
