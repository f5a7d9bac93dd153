"""The mapping from the policy to Kueue objects (golden checks of quotas, limits, priorities
and a user's queues)."""

from __future__ import annotations

from typing import Any

from gpulab.hub.kueue import names
from gpulab.hub.kueue.render import NO_QUOTA_CPU, PRIORITY_VALUES, render_policy, render_user

from tests.kueue.kueue_policies import NAMESPACE, policy


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


def _quotas(obj: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(flavor, resource) -> its quota fields."""
    out = {}
    for group in obj["spec"]["resourceGroups"]:
        for flavor in group["flavors"]:
            for res in flavor["resources"]:
                out[flavor["name"], res["name"]] = {k: v for k, v in res.items() if k != "name"}
    return out


def test_every_object_is_v1beta2_and_labelled_as_gpulabs() -> None:
    for obj in render_policy(policy(), NAMESPACE) + render_user(
        policy(), "alice", "vision", NAMESPACE
    ):
        assert obj["apiVersion"] == "kueue.x-k8s.io/v1beta2"
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "gpulab"
        assert labels["app.kubernetes.io/component"] == "kueue"


def test_priority_classes_put_servers_over_jobs_over_preemptible_jobs() -> None:
    objects = render_policy(policy(), NAMESPACE)
    values = {
        name: _find(objects, "WorkloadPriorityClass", name)["value"] for name in PRIORITY_VALUES
    }
    assert (
        values[names.PRIORITY_INTERACTIVE]
        > values[names.PRIORITY_BATCH]
        > values[names.PRIORITY_PREEMPTIBLE]
    )


def test_a_flavor_per_gpu_type_selects_its_nodes() -> None:
    flavor = _find(render_policy(policy(), NAMESPACE), "ResourceFlavor", "gpu-a100-1g")
    assert flavor["spec"]["nodeLabels"] == {"nvidia.com/gpu.product": "A100"}


def test_group_cohort_holds_the_group_quotas_lends_lend_idle_and_borrows_nothing() -> None:
    cohort = _find(render_policy(policy(), NAMESPACE), "Cohort", "gpulab-vision")
    assert cohort["spec"]["parentName"] == "gpulab"
    assert _quotas(cohort) == {
        ("default", "cpu"): {"nominalQuota": "16500m", "borrowingLimit": 0},
        ("default", "memory"): {"nominalQuota": "64Gi", "borrowingLimit": 0},
        ("gpu-a100", "nvidia.com/gpu"): {
            "nominalQuota": 8,
            "borrowingLimit": 0,
            "lendingLimit": 6,
        },
        ("gpu-a100-1g", "nvidia.com/mig-1g.10gb"): {
            "nominalQuota": 8,
            "borrowingLimit": 0,
            "lendingLimit": 6,
        },
    }


def test_a_group_that_lends_no_gpus_lends_nothing() -> None:
    cohort = _find(render_policy(policy(), NAMESPACE), "Cohort", "gpulab-nlp")
    assert {q.get("lendingLimit") for q in _quotas(cohort).values()} == {0}


def test_a_group_without_cpu_quota_gets_one_no_cluster_reaches() -> None:
    cohort = _find(render_policy(policy(), NAMESPACE), "Cohort", "gpulab-nlp")
    assert _quotas(cohort)["default", "cpu"]["nominalQuota"] == NO_QUOTA_CPU


def test_slices_are_a_resource_group_of_their_own() -> None:
    cohort = _find(render_policy(policy(), NAMESPACE), "Cohort", "gpulab-vision")
    covered = [g["coveredResources"] for g in cohort["spec"]["resourceGroups"]]
    assert covered == [["cpu", "memory"], ["nvidia.com/gpu"], ["nvidia.com/mig-1g.10gb"]]


def test_borrow_queue_borrows_at_most_borrow_max_from_the_root() -> None:
    queue = _find(render_policy(policy(), NAMESPACE), "ClusterQueue", "gpulab-vision--borrow")
    assert queue["spec"]["cohortName"] == "gpulab"
    assert _quotas(queue)["gpu-a100", "nvidia.com/gpu"] == {
        "nominalQuota": 0,
        "borrowingLimit": 4,
    }
    assert queue["spec"]["preemption"]["reclaimWithinCohort"] == "Never"


def test_user_queue_borrows_quota_user_from_the_group_and_takes_back_what_it_lent() -> None:
    cq, *_ = render_user(policy(), "alice", "vision", NAMESPACE)
    assert cq["metadata"]["name"] == "gpulab-vision-alice"
    assert cq["spec"]["cohortName"] == "gpulab-vision"
    assert _quotas(cq)["gpu-a100", "nvidia.com/gpu"] == {"nominalQuota": 0, "borrowingLimit": 4}
    assert cq["spec"]["preemption"] == {
        "withinClusterQueue": "Never",
        "reclaimWithinCohort": "Any",
    }


def test_user_local_queues_point_at_the_users_and_the_borrow_queue() -> None:
    _, ordinary, preemptible = render_user(policy(), "alice", "vision", NAMESPACE)
    assert (ordinary["metadata"]["name"], ordinary["spec"]["clusterQueue"]) == (
        "alice",
        "gpulab-vision-alice",
    )
    assert (preemptible["metadata"]["name"], preemptible["spec"]["clusterQueue"]) == (
        "alice-preemptible",
        "gpulab-vision--borrow",
    )
    assert ordinary["metadata"]["namespace"] == NAMESPACE
    assert ordinary["metadata"]["annotations"] == {"gpulab.io/username": "alice"}


def test_queues_take_workloads_of_the_users_namespace_only() -> None:
    cq, *_ = render_user(policy(), "alice", "vision", NAMESPACE)
    assert cq["spec"]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": NAMESPACE}
    }


def test_a_group_without_gpus_covers_cpu_and_memory_only() -> None:
    cq, *_ = render_user(policy(), "carol", "default", NAMESPACE)
    assert [g["coveredResources"] for g in cq["spec"]["resourceGroups"]] == [["cpu", "memory"]]
