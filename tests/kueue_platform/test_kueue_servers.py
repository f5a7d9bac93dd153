"""Servers through Kueue, end to end on the Kueue-on platform: the pod joins the user's queue as
interactive work and starts once admitted; a server that must wait says where it stands on the
progress page and gives up after the group's wait_for_gpus, leaving no pod and no Workload;
the dashboard shows the group's queues."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gpulab.hub.kueue.names import PRIORITY_INTERACTIVE, user_local_queue
from gpulab.hub.policy import load_policy
from gpulab.hub.workload.labels import KUEUE_PRIORITY_LABEL, KUEUE_QUEUE_LABEL
from gpulab.hub.workload.queueing import kueue_gated, workload_state
from kueue_testlib import POLICY, Cluster, Hub, new_user, poll, server_pod

pytestmark = [pytest.mark.e2e]


@pytest.fixture
def cluster(kueue_platform) -> Iterator[Cluster]:
    cluster = Cluster(kueue_platform)
    yield cluster
    cluster.close()


@pytest.fixture
def hub(kueue_platform) -> Iterator[Hub]:
    hub = Hub(kueue_platform, new_user(kueue_platform, "nlp", "srv"))
    yield hub
    try:
        hub.stop()
    finally:
        hub.close()


def progress_messages(platform: Any, user: str, limit: float = 150) -> list[str]:
    """The progress page's messages (its event stream) until the spawn ends (ready or failed)."""
    seen: list[str] = []
    url = f"{platform.hub_url}/hub/api/users/{user}/server/progress"
    headers = {"Authorization": f"token {platform.admin_token}"}
    with httpx.stream("GET", url, headers=headers, timeout=limit) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                seen.append(json.loads(line[5:]).get("message", ""))
    return seen


def test_a_server_joins_its_users_queue_as_interactive_work_and_starts_once_admitted(hub, cluster):
    assert hub.start() in (201, 202)
    pod = poll(lambda: server_pod(cluster, hub.user), "the server's pod")
    labels = pod["metadata"]["labels"]
    assert labels[KUEUE_QUEUE_LABEL] == user_local_queue(hub.user)
    assert labels[KUEUE_PRIORITY_LABEL] == PRIORITY_INTERACTIVE
    poll(lambda: (m := hub.server()) and m["ready"], "the server ready")
    workload = cluster.workload_of("Pod", pod["metadata"]["name"])
    assert workload is not None and workload_state(workload) == "admitted"
    assert not kueue_gated(cluster.pod(pod["metadata"]["name"]) or {})


def test_a_queued_server_says_where_it_stands_then_gives_up_after_wait_for_gpus(
    kueue_platform, hub, cluster
):
    policy = load_policy(POLICY)
    # Another user of nlp holds the group's 2 GPUs: a server cannot preempt that job (another
    # ClusterQueue; a server only outranks its own user's batch jobs).
    others = [new_user(kueue_platform, "nlp", "hold")]
    holders = []
    for other in others:
        cluster.ensure_queues(policy, other, "nlp")
        holders.append(cluster.submit_queued_job(other, "nlp", 2))
    try:
        poll(
            lambda: all(
                (w := cluster.workload_of("Job", job)) and workload_state(w) == "admitted"
                for job in holders
            ),
            "the jobs holding nlp's quota admitted",
        )
        assert hub.start() in (201, 202)
        pod = poll(lambda: server_pod(cluster, hub.user), "the server's pod")
        assert kueue_gated(pod)
        name = pod["metadata"]["name"]
        # The stream ends when the start does: nlp's wait_for_gpus is 30 s.
        messages = progress_messages(kueue_platform, hub.user)
        queued = [m for m in messages if m.startswith("queued for")]
        assert queued, messages
        assert queued[0].startswith("queued for a free A100 GPU in nlp: nothing ahead")
        assert "2 of 2 GPUs of nlp in use" in queued[0] and "up to 30s in the queue" in queued[0]
        poll(lambda: hub.server() is None, "the start given up")
        # Asked again once the start has ended, the hub answers with how it ended.
        ended = progress_messages(kueue_platform, hub.user)
        assert "waited 30s in the queue of nlp without being admitted" in ended[-1], ended
        poll(lambda: cluster.pod(name) is None, "the queued pod removed")
        poll(lambda: cluster.workload_of("Pod", name) is None, "its Workload removed")
    finally:
        for job in holders:
            cluster.delete_job(job)


def test_the_dashboard_shows_a_groups_pending_and_admitted_work(kueue_platform, cluster):
    policy = load_policy(POLICY)
    holder, waiter = (new_user(kueue_platform, "nlp", "dash") for _ in range(2))
    jobs = []
    for user, gpus in ((holder, 2), (waiter, 1)):
        cluster.ensure_queues(policy, user, "nlp")
        jobs.append(cluster.submit_queued_job(user, "nlp", gpus))
    token = kueue_platform.user_token("admin")
    url = f"{kueue_platform.hub_url}/services/culler/api/v1/overview"

    def nlp() -> dict[str, Any] | None:
        queues = httpx.get(url, headers={"Authorization": f"token {token}"}, timeout=30).json()
        assert queues["queues"]["kueue"]["available"], queues["queues"]
        row = next((g for g in queues["queues"]["groups"] if g["group"] == "nlp"), None)
        return row if row and row["pending"] >= 1 and row["gpus_admitted"] >= 2 else None

    try:
        row = poll(nlp, "nlp's queue on the dashboard: 1 pending, 2 GPUs admitted")
        assert row["gpus_borrowed"] == 0
    finally:
        for job in jobs:
            cluster.delete_job(job)
