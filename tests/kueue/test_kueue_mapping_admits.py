"""The rendered queues work in kubesim's Kueue: a user's jobs are admitted up to the user's
quota and the rest wait; a preemptible job borrows what another group lends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from gpulab.hub.kube import KubeClient
from gpulab.hub.kueue import names
from gpulab.hub.kueue.sync import ensure_user_queues, sync_policy
from gpulab.hub.workload.labels import KUEUE_PRIORITY_LABEL, KUEUE_QUEUE_LABEL

from tests.kueue.kueue_policies import policy

NS = "default"
DEADLINE_SECONDS = 30  # a bound on waiting for kubesim's Kueue, not a speed assertion
WORKLOADS = f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{NS}/workloads"


async def _job(kube: KubeClient, name: str, queue: str, gpus: int, priority: str) -> None:
    container = {
        "name": "main",
        "image": "busybox:1.36",
        "command": ["sleep", "3600"],
        "resources": {
            "requests": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": str(gpus)},
            "limits": {"nvidia.com/gpu": str(gpus)},
        },
    }
    await kube.create(
        f"/apis/batch/v1/namespaces/{NS}/jobs",
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "labels": {KUEUE_QUEUE_LABEL: queue, KUEUE_PRIORITY_LABEL: priority},
            },
            "spec": {
                "suspend": True,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "nodeSelector": {"nvidia.com/gpu.product": "A100"},
                        "containers": [container],
                    }
                },
            },
        },
    )


async def _condition(
    kube: KubeClient, job: str, type_: str, status: str | None = None
) -> dict[str, Any]:
    """The job's Workload condition ``type_`` once Kueue has set it (to ``status``, if given)."""
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            items, _ = await kube.list(WORKLOADS)
            for wl in items:
                owners = [r["name"] for r in wl["metadata"].get("ownerReferences") or []]
                for cond in (wl.get("status") or {}).get("conditions") or []:
                    if job in owners and cond["type"] == type_ and status in (None, cond["status"]):
                        return cond
            await asyncio.sleep(0.2)  # poll: kubesim's Kueue acts in the background


async def _reserved(kube: KubeClient, job: str) -> dict[str, Any]:
    """The QuotaReserved condition of the job's Workload, once Kueue has looked at it."""
    return await _condition(kube, job, "QuotaReserved")


# nlp's preemptible jobs may borrow 2 GPUs; vision lends 6 of its 8 (kueue_policies.BASE).
SHARING = policy(groups__nlp__gpu__borrow_max=2)


@pytest.fixture
async def queues(kube: KubeClient) -> None:
    await sync_policy(kube, SHARING, NS)
    for user, group in (("alice", "vision"), ("carol", "vision"), ("bob", "nlp")):
        await ensure_user_queues(kube, SHARING, user, group, namespace=NS)


async def test_a_users_jobs_are_admitted_up_to_quota_user_and_the_rest_wait(
    queues: None, kube: KubeClient
) -> None:
    await _job(kube, "big", "alice", 4, names.PRIORITY_BATCH)  # vision's quota_user: 4
    assert (await _reserved(kube, "big"))["status"] == "True"
    await _job(kube, "one-more", "alice", 1, names.PRIORITY_BATCH)
    waiting = await _reserved(kube, "one-more")
    assert waiting["status"] == "False" and waiting["reason"] == "Pending"


async def test_a_preemptible_job_beyond_borrow_max_waits(queues: None, kube: KubeClient) -> None:
    await _job(kube, "too-big", names.preemptible_local_queue("bob"), 4, names.PRIORITY_PREEMPTIBLE)
    assert (await _reserved(kube, "too-big"))["status"] == "False"


async def _pods_gone(kube: KubeClient, job: str) -> None:
    """Once none of the job's pods is left (its suspension deleted them)."""
    async with asyncio.timeout(DEADLINE_SECONDS):
        while True:
            pods, _ = await kube.list(
                f"/api/v1/namespaces/{NS}/pods", labelSelector=f"job-name={job}"
            )
            if not pods:
                return
            await asyncio.sleep(0.2)  # poll: the job controller deletes them in the background


async def test_a_borrowed_gpu_is_taken_back_when_the_lender_needs_it(
    queues: None, kube: KubeClient
) -> None:
    await _job(
        kube, "bob-borrows", names.preemptible_local_queue("bob"), 2, names.PRIORITY_PREEMPTIBLE
    )
    await _condition(kube, "bob-borrows", "Admitted", "True")  # on 2 of vision's idle GPUs
    await _job(kube, "alice-4", "alice", 4, names.PRIORITY_BATCH)
    await _condition(kube, "alice-4", "Admitted", "True")
    await _job(kube, "carol-4", "carol", 4, names.PRIORITY_BATCH)  # vision needs all 8 now
    preempted = await _condition(kube, "bob-borrows", "Preempted", "True")
    assert preempted["reason"] == "InCohortReclamation"
    await _pods_gone(kube, "bob-borrows")
    await _condition(kube, "carol-4", "Admitted", "True")  # on the GPUs bob gave back
    requeued = await _reserved(kube, "bob-borrows")
    assert requeued["status"] == "False"  # bob waits again, vision's 8 GPUs all in use
