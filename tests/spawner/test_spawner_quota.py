"""GPU counting from cluster objects: servers and jobs, and free GPUs per type."""

from __future__ import annotations

from gpulab.spawner.quota import count_usage, gpu_availability, waiting_for_gpus
from spawner_testlib import demo_policy, node, pod


def usage(pods, jobs=(), user="alice", group="vision"):
    return count_usage(pods, jobs, user=user, group=group)


def job(job_id, *, user="alice", group="vision", gpus=2, done=False, suspend=False):
    return {
        "metadata": {
            "name": f"job-{job_id}",
            "labels": {
                "app.kubernetes.io/managed-by": "gpulab",
                "gpulab.io/job-id": job_id,
                "gpulab.io/user": user,
                "gpulab.io/group": group,
                "gpulab.io/gpus": str(gpus),
            },
        },
        "spec": {"suspend": suspend},
        "status": {"conditions": [{"type": "Complete", "status": "True"}] if done else []},
    }


def test_servers_of_the_user_and_the_group_are_counted():
    u = usage([pod("a", gpus=2), pod("b", user="bob", gpus=1), pod("c", group="nlp", user="x")])
    assert (u.user, u.group) == (2, 3)


def test_finished_pods_do_not_count():
    assert usage([pod("a", phase="Succeeded"), pod("b", phase="Failed")]).user == 0


def test_pending_pods_count():
    assert usage([pod("a", phase="Pending", gpus=2)]).user == 2


def test_pods_not_managed_by_gpulab_do_not_count():
    assert usage([pod("a", managed=False)]).user == 0


def test_a_job_without_a_pod_yet_counts():
    assert usage([], [job("j1", gpus=2)]).user == 2


def test_a_job_with_its_pod_counts_once():
    assert usage([pod("j1-x", job_id="j1", gpus=2)], [job("j1", gpus=2)]).user == 2


def test_a_finished_or_suspended_job_does_not_count():
    assert usage([], [job("j1", done=True), job("j2", suspend=True)]).user == 0


def test_availability_counts_free_gpus_per_node_of_the_type():
    policy = demo_policy()
    nodes = [node("n1", 4), node("n2", 4), node("cpu", 0, product="none")]
    pods = [
        pod("a", gpus=3, node="n1"),
        pod("b", gpus=4, node="n2"),
        pod("c", node="n1", phase="Succeeded"),
    ]
    a = gpu_availability(nodes, pods, policy.gpu_types)["a100"]
    assert (a.total, a.free, a.max_free_on_node, a.nodes) == (8, 1, 1, 2)


def test_availability_ignores_nodes_that_are_not_ready():
    policy = demo_policy()
    a = gpu_availability([node("n1", 4, ready=False)], [], policy.gpu_types)["a100"]
    assert (a.total, a.free) == (0, 0)


def test_pods_of_other_owners_take_gpus_too():
    policy = demo_policy()
    a = gpu_availability(
        [node("n1", 4)], [pod("x", gpus=2, node="n1", managed=False)], policy.gpu_types
    )["a100"]
    assert a.free == 2


def waiting_pod(name: str, created: str) -> dict:
    p = pod(name, phase="Pending")
    p["metadata"]["labels"]["gpulab.io/gpu-type"] = "a100"
    p["metadata"]["creationTimestamp"] = created
    return p


def test_availability_knows_the_largest_node_and_the_pods_waiting_for_gpus():
    policy = demo_policy()
    pods = [waiting_pod("w1", "2026-01-01T00:00:01Z"), pod("bound", node="n1")]
    a = gpu_availability([node("n1", 4), node("n2", 2)], pods, policy.gpu_types)["a100"]
    assert (a.max_on_node, a.waiting) == (4, 1)


def test_the_spawns_ahead_are_those_waiting_since_earlier_but_never_itself():
    pods = [
        waiting_pod("early", "2026-01-01T00:00:01Z"),
        waiting_pod("me", "2026-01-01T00:00:05Z"),
        waiting_pod("late", "2026-01-01T00:00:09Z"),
    ]
    assert waiting_for_gpus(pods, "a100", before="2026-01-01T00:00:05Z", exclude="me") == 1
    assert waiting_for_gpus(pods, "a100", exclude="me") == 2  # our pod's time not known yet
    assert waiting_for_gpus(pods, "h100") == 0
