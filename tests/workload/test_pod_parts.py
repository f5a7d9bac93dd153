"""A notebook server and a job of the same user and profile share what a gpulab pod is: the
home, the datasets, ``/dev/shm``, the GPU placement, the security contexts and the labels
(all but the component and the job's id). Both pods are built by their real adapters
(the spawner's plan finished on a KubeSpawner-shaped pod, and the jobs manifest)."""

from __future__ import annotations

from typing import Any

import pytest
from gpulab.hub.jobs.manifest import render_job
from gpulab.hub.jobs.spec import parse_job_spec
from gpulab.hub.policy import parse_policy
from gpulab.hub.workload.labels import COMPONENT_LABEL, JOB_ID_LABEL
from gpulab.spawner.overrides import build_pod_plan, finish_pod
from kubernetes_asyncio.client import (
    ApiClient,
    V1Container,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1ResourceRequirements,
)

LONG = "a-dataset-whose-name-fits-but-not-with-the-volume-name-prefix"  # 62 characters
POLICY = parse_policy(
    f"""
version: 1
default_group: vision
groups:
  vision:
    images: {{projects: [vision]}}
    profiles: [gpu, cpu]
    gpu: {{types: [a100, t4], per_server: 2, per_job: 2, quota_user: 4, quota_group: 8}}
profiles:
  gpu: {{gpu_type: a100, gpus: [1, 2], cpu: {{guarantee: 1, limit: 4}}}}
  cpu: {{cpu: {{guarantee: 1, limit: 2}}}}
gpu_types:
  a100:
    node_selector: {{nvidia.com/gpu.product: NVIDIA-A100-SXM4-80GB}}
    tolerations: [{{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}}]
  t4: {{node_selector: {{nvidia.com/gpu.product: Tesla-T4}}}}
storage:
  home: {{mount_path: /home/jovyan, claim_name_template: "home-{{username}}"}}
  datasets:
    - {{name: coco, claim: dataset-coco, mount_path: /datasets/coco}}
    - {{name: {LONG}, claim: dataset-long, mount_path: /datasets/long, sub_path: v2}}
catalogue:
  source: harbor
  harbor: {{url: https://harbor.example.org, projects: [vision], pull_secret: harbor-pull}}
"""
)
USER = "Alice.Smith@example.org"
IMAGE = "harbor.example.org/vision/pytorch:2.4"


async def server_pod(profile: str, gpus: int) -> dict[str, Any]:
    ent = POLICY.entitlement(["vision"])
    plan = build_pod_plan(
        policy=POLICY,
        entitlement=ent,
        profile=ent.profile(profile),
        image=IMAGE,
        gpus=gpus,
        username=USER,
    )
    # The pod KubeSpawner builds before gpulab finishes it (its own labels, a stray selector).
    container = V1Container(name="notebook", image=IMAGE, resources=V1ResourceRequirements())
    spec = V1PodSpec(containers=[container], node_selector={"nvidia.com/gpu.product": "Tesla-T4"})
    pod = V1Pod(metadata=V1ObjectMeta(labels={"component": "singleuser-server"}), spec=spec)
    finish_pod(plan, pod, POLICY)
    async with ApiClient() as api:
        return api.sanitize_for_serialization(pod)


def job_pod(gpus: int) -> dict[str, Any]:
    gpu = {"gpus": gpus, "gpu_type": "a100"} if gpus else {}
    spec = parse_job_spec({"name": "train", "command": ["python", "train.py"], **gpu})
    job = render_job(
        spec,
        owner=USER,
        job_id="train-abcdef",
        entitlement=POLICY.entitlement(["vision"]),
        policy=POLICY,
        image=IMAGE,
        namespace="gpulab",
        upload_secret_name="train-abcdef-upload",
    )
    return job["spec"]["template"]


def shared(pod: dict[str, Any]) -> dict[str, Any]:
    """The parts a server and a job must agree on."""
    spec = pod["spec"]
    [container] = [c for c in spec["containers"] if c["name"] in ("notebook", "job")]
    volumes = [v for v in spec["volumes"] if v["name"] != "upload"]  # the job's own Secret
    mounts = [m for m in container["volumeMounts"] if m["name"] != "upload"]
    limits = container.get("resources", {}).get("limits", {})
    labels = dict(pod["metadata"]["labels"])
    for own in (COMPONENT_LABEL, JOB_ID_LABEL, "component"):  # the kind of workload
        labels.pop(own, None)
    return {
        "volumes": sorted(volumes, key=lambda v: v["name"]),
        "mounts": sorted(mounts, key=lambda m: m["name"]),
        "gpu": {k: v for k, v in limits.items() if k.startswith("nvidia.com/")},
        "node_selector": spec.get("nodeSelector"),
        "tolerations": spec.get("tolerations"),
        "pod_security": spec["securityContext"],
        "container_security": container["securityContext"],
        "service_account_token": spec["automountServiceAccountToken"],
        "pull_secrets": spec.get("imagePullSecrets"),
        "labels": labels,
    }


@pytest.mark.parametrize(("profile", "gpus"), [("gpu", 2), ("cpu", 0)])
async def test_a_server_and_a_job_of_the_same_user_and_profile_share_the_pod_parts(profile, gpus):
    server, job = shared(await server_pod(profile, gpus)), shared(job_pod(gpus))
    for part in server:
        assert server[part] == job[part], part


def test_the_shared_parts_are_the_policys():
    parts = shared(job_pod(2))
    assert [v["name"] for v in parts["volumes"]] == [
        "dataset-a-dataset-whose-name-fits-but-not-with-the-volume-name",
        "dataset-coco",
        "dshm",
        "home",
    ]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}} in parts[
        "volumes"
    ]
    assert parts["gpu"] == {"nvidia.com/gpu": "2"}
    assert parts["node_selector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert parts["labels"]["gpulab.io/gpu-type"] == "a100"
    assert parts["pull_secrets"] == [{"name": "harbor-pull"}]
    assert shared(job_pod(0))["volumes"][2]["emptyDir"]["sizeLimit"] == "64Mi"
