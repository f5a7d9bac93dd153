"""Applying the rendered Kueue objects to kubesim's Kueue API: the policy's objects on every
reload, a user's queues on demand."""

from __future__ import annotations

from typing import Any

import pytest
from gpulab.hub.kube import KubeClient
from gpulab.hub.kueue.sync import KueueConflict, ensure_user_queues, sync_policy
from gpulab.kubesim.main import KubeSim

from tests.kueue.conftest import USER_AGENT
from tests.kueue.kueue_policies import policy

NS = "default"
API = "/apis/kueue.x-k8s.io/v1beta2"


async def _get(kube: KubeClient, path: str) -> dict[str, Any] | None:
    return await kube.get(f"{API}/{path}")


def _quota(obj: dict[str, Any], flavor: str, resource: str) -> dict[str, Any]:
    for group in obj["spec"]["resourceGroups"]:
        for f in group["flavors"]:
            for r in f["resources"]:
                if (f["name"], r["name"]) == (flavor, resource):
                    return r
    raise LookupError((flavor, resource))


def _writes(sim: KubeSim) -> list[str]:
    return [
        f"{r.verb} {r.resource}/{r.name}"
        for r in sim.audit.recent
        if r.userAgent.startswith(USER_AGENT) and r.verb not in ("get", "list", "watch")
    ]


async def test_sync_makes_every_object_of_the_policy(kube: KubeClient) -> None:
    report = await sync_policy(kube, policy(), NS)
    assert not report.conflicts and not report.updated
    assert await _get(kube, "cohorts/gpulab-vision")
    assert await _get(kube, "clusterqueues/gpulab-nlp--borrow")
    assert await _get(kube, "workloadpriorityclasses/gpulab-interactive")
    assert await _get(kube, "resourceflavors/gpu-a100-1g")


async def test_a_second_sync_writes_nothing(kube: KubeClient, kueue_sim: KubeSim) -> None:
    await sync_policy(kube, policy(), NS)
    before = len(_writes(kueue_sim))
    report = await sync_policy(kube, policy(), NS)
    assert not report.changed and len(_writes(kueue_sim)) == before


async def test_a_sync_with_nothing_to_do_reads_only_the_lists(
    kube: KubeClient, kueue_sim: KubeSim
) -> None:
    await sync_policy(kube, policy(), NS)
    await ensure_user_queues(kube, policy(), "alice", "vision", namespace=NS)
    before = len(kueue_sim.audit.recent)
    await sync_policy(kube, policy(), NS)
    verbs = [r.verb for r in list(kueue_sim.audit.recent)[before:]]
    assert verbs == ["list"] * 5


async def test_a_policy_change_rewrites_the_objects_it_changes(kube: KubeClient) -> None:
    await sync_policy(kube, policy(), NS)
    report = await sync_policy(kube, policy(groups__nlp__gpu__quota_group=6), NS)
    assert report.updated == ["Cohort/gpulab-nlp"]
    cohort = await _get(kube, "cohorts/gpulab-nlp")
    assert _quota(cohort, "gpu-a100", "nvidia.com/gpu")["nominalQuota"] == 6


async def test_a_removed_group_loses_its_cohort_and_queues(kube: KubeClient) -> None:
    await sync_policy(kube, policy(), NS)
    await ensure_user_queues(kube, policy(), "bob", "nlp", namespace=NS)
    without_nlp = policy(groups__nlp=None)
    report = await sync_policy(kube, without_nlp, NS)
    assert set(report.deleted) == {
        "LocalQueue/default/bob",
        "LocalQueue/default/bob-preemptible",
        "ClusterQueue/gpulab-nlp-bob",
        "ClusterQueue/gpulab-nlp--borrow",
        "Cohort/gpulab-nlp",
    }


async def test_sync_updates_existing_users_queues(kube: KubeClient) -> None:
    await sync_policy(kube, policy(), NS)
    await ensure_user_queues(kube, policy(), "alice", "vision", namespace=NS)
    await sync_policy(kube, policy(groups__vision__gpu__quota_user=6), NS)
    cq = await _get(kube, "clusterqueues/gpulab-vision-alice")
    assert _quota(cq, "gpu-a100", "nvidia.com/gpu")["borrowingLimit"] == 6


async def test_an_object_gpulab_did_not_make_is_left_alone(kube: KubeClient) -> None:
    await kube.create(
        f"{API}/resourceflavors",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "ResourceFlavor",
            "metadata": {"name": "default"},
            "spec": {"nodeLabels": {"pool": "admins"}},
        },
    )
    report = await sync_policy(kube, policy(), NS)
    assert report.conflicts == ["ResourceFlavor/default"]
    flavor = await _get(kube, "resourceflavors/default")
    assert flavor["spec"]["nodeLabels"] == {"pool": "admins"}


async def test_user_queues_are_made_on_demand(kube: KubeClient) -> None:
    assert await ensure_user_queues(kube, policy(), "alice", "vision", namespace=NS) == "alice"
    lq = await kube.get(f"{API}/namespaces/{NS}/localqueues/alice-preemptible")
    assert lq["spec"]["clusterQueue"] == "gpulab-vision--borrow"
    cq = await _get(kube, "clusterqueues/gpulab-vision-alice")
    assert cq["spec"]["cohortName"] == "gpulab-vision"


async def test_user_queues_that_exist_cost_no_api_call(
    kube: KubeClient, kueue_sim: KubeSim
) -> None:
    await ensure_user_queues(kube, policy(), "alice", "vision", namespace=NS)
    before = len([r for r in kueue_sim.audit.recent if r.userAgent.startswith(USER_AGENT)])
    await ensure_user_queues(kube, policy(), "alice", "vision", namespace=NS)
    after = len([r for r in kueue_sim.audit.recent if r.userAgent.startswith(USER_AGENT)])
    assert after == before


async def test_a_user_moved_to_another_group_gets_queues_there(kube: KubeClient) -> None:
    await ensure_user_queues(kube, policy(), "alice", "vision", namespace=NS)
    await ensure_user_queues(kube, policy(), "alice", "nlp", namespace=NS)
    lq = await kube.get(f"{API}/namespaces/{NS}/localqueues/alice")
    assert lq["spec"]["clusterQueue"] == "gpulab-nlp-alice"
    assert await _get(kube, "clusterqueues/gpulab-vision-alice") is None


async def test_another_users_queue_name_is_never_taken_over(kube: KubeClient) -> None:
    await kube.create(
        f"{API}/namespaces/{NS}/localqueues",
        {
            "apiVersion": "kueue.x-k8s.io/v1beta2",
            "kind": "LocalQueue",
            "metadata": {"name": "mallory", "namespace": NS},
            "spec": {"clusterQueue": "x"},
        },
    )
    with pytest.raises(KueueConflict):
        await ensure_user_queues(kube, policy(), "mallory", "vision", namespace=NS)
