"""A server spawn and a job submit racing for the last GPU of a user's and a group's quota never
hold more than the quota, when Kueue admits both (kubesim's Kueue, as on a production cluster).

On the Kueue-on platform: ``u`` of ``nlp`` (``quota_user`` 2, ``quota_group`` 2 in
tests/kueue_platform/policy.yaml) holds 1 GPU with a job, so one GPU is left of the group's
quota and of ``u``'s. Then, 20 times, ``u``'s 1-GPU server and a 1-GPU job are asked for at
the same instant: the job is ``u``'s in even rounds (the user's last GPU) and ``v``'s in odd
rounds (the group's last GPU). Kueue admits one of them; the other waits in its queue (a
waiting server evicts nothing: only preemptible jobs are ever preempted). All along, a sampler
reads every Workload and every pod of the users from kubesim and records any moment where the
GPUs Kueue admitted, or the pods of admitted work hold, exceed a quota. (Should a job be
preempted, its pod stops within its grace period: those GPUs are counted apart and printed,
not as admitted work.)

The job is made as the jobs gateway submits one with Kueue (a suspended Job with the queue
and priority labels), straight through the Kubernetes API.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from gpulab.hub.kueue.names import user_local_queue
from gpulab.hub.policy import load_policy
from gpulab.hub.workload.labels import GROUP_LABEL
from gpulab.hub.workload.queueing import kueue_gated, owner_key, workload_state
from gpulab.spawner.quota import pod_gpu_request
from kueue_testlib import GPU, POLICY, Cluster, Hub, new_user, poll, server_pod

pytestmark = [pytest.mark.e2e]

T = TypeVar("T")

QUOTA_USER, QUOTA_GROUP = 2, 2
ROUNDS = 20


class Sampler(threading.Thread):
    """Reads Kueue's Workloads and the users' pods again and again (its own client) and keeps
    every moment a quota was exceeded."""

    def __init__(self, platform: Any, users: list[str], group: str) -> None:
        super().__init__(daemon=True)
        self.cluster = Cluster(platform)
        self.users, self.group = users, group
        self.stopped = threading.Event()
        self.samples = 0
        self.violations: list[str] = []
        # The most GPUs seen on pods of evicted jobs not yet deleted (Kueue releases an evicted
        # Workload's quota at once; its pods stop within their grace period): reported.
        self.victims_stopping = 0

    def run(self) -> None:
        try:
            while not self.stopped.is_set():
                self.sample()
        finally:
            self.cluster.close()

    def sample(self) -> None:
        workloads = self.cluster.workloads()
        queues = self.cluster.local_queues()
        group_queues = {
            name
            for name, q in queues.items()
            if (q["metadata"].get("labels") or {}).get(GROUP_LABEL) == self.group
        }
        group_used = self.cluster.admitted_gpus(workloads, group_queues)
        if group_used > QUOTA_GROUP:
            self.violations.append(f"{self.group}: {group_used} GPUs admitted")
        for user in self.users:
            used = self.cluster.admitted_gpus(workloads, {user_local_queue(user)})
            admitted_jobs = {
                key[2]
                for w in workloads
                if (key := owner_key(w)) and key[0] == "Job" and workload_state(w) == "admitted"
            }
            held = stopping = 0
            for pod in self.cluster.user_pods(user):
                if (
                    kueue_gated(pod)
                    or pod["metadata"].get("deletionTimestamp")
                    or pod["status"].get("phase") not in ("Pending", "Running")
                ):
                    continue
                owner = pod["metadata"].get("labels", {}).get("job-name")
                if owner is None or owner in admitted_jobs:
                    held += pod_gpu_request(pod, GPU)
                else:  # a preempted job's pod, between its eviction and its deletion
                    stopping += pod_gpu_request(pod, GPU)
            self.victims_stopping = max(self.victims_stopping, stopping)
            if used > QUOTA_USER or held > QUOTA_USER:
                self.violations.append(f"{user}: {used} GPUs admitted, {held} held by pods")
        self.samples += 1


def describe(cluster: Cluster, user: str, jobs: list[str]) -> str:
    """What is left: the server's pod and the jobs' Workloads, with their conditions."""
    pod = server_pod(cluster, user)
    out = [f"server pod: {pod['metadata']['name'] if pod else None}"]
    for job in jobs:
        wl = cluster.workload_of("Job", job) or {}
        conds = [
            (c["type"], c["status"], c.get("reason"))
            for c in (wl.get("status") or {}).get("conditions") or []
        ]
        out.append(f"{job}: {workload_state(wl) if wl else None} {conds}")
    return "; ".join(out)


def at_once(*calls: Callable[[], T]) -> list[T]:
    """Run ``calls`` in threads released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(i: int, call: Callable[[], T]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def cluster(kueue_platform) -> Iterator[Cluster]:
    cluster = Cluster(kueue_platform)
    yield cluster
    cluster.close()


@pytest.mark.timeout(1200)  # 20 rounds of a spawn and a submit, each undone before the next
def test_a_server_and_a_job_racing_for_the_last_gpu_never_exceed_the_quotas(
    kueue_platform, cluster
):
    policy = load_policy(POLICY)
    users = [new_user(kueue_platform, "nlp", "race") for _ in range(2)]
    u, v = users
    for user in users:
        cluster.ensure_queues(policy, user, "nlp")
    holds = [cluster.submit_queued_job(u, "nlp", 1)]
    hub = Hub(kueue_platform, u)
    sampler = Sampler(kueue_platform, users, "nlp")
    wins = {"server": 0, "job": 0}
    try:
        poll(
            lambda: all(
                (wl := cluster.workload_of("Job", job)) and workload_state(wl) == "admitted"
                for job in holds
            ),
            "the holding job admitted",
        )
        sampler.start()
        for i in range(ROUNDS):
            owner = u if i % 2 == 0 else v
            status, job = at_once(hub.start, lambda o=owner: cluster.submit_queued_job(o, "nlp", 1))
            assert status in (201, 202), f"round {i}: the server start answered {status}"

            def settled(job: str = job) -> str | None:
                """Who Kueue gave the GPU: the server (admitted), or the job (admitted while
                the server waits, Kueue having said why)."""
                pod = server_pod(cluster, u)
                server = cluster.workload_of("Pod", pod["metadata"]["name"]) if pod else None
                other = cluster.workload_of("Job", job)
                if server is None or other is None:
                    return None
                if workload_state(server) == "admitted":
                    return "server"
                waits = (server.get("status") or {}).get("conditions") or []
                considered = any(
                    c["type"] == "QuotaReserved" and c["status"] == "False" for c in waits
                )
                return "job" if considered and workload_state(other) == "admitted" else None

            winner = poll(settled, f"round {i}: the GPU given to one of the two")
            wins[winner] += 1
            print(f"round {i}: {winner} admitted ({sampler.samples} samples)")  # noqa: T201
            hub.stop()
            cluster.delete_job(job)
            try:
                poll(
                    lambda job=job: (
                        server_pod(cluster, u) is None
                        and cluster.workload_of("Job", job) is None
                        and all(
                            (w := cluster.workload_of("Job", hold))
                            and workload_state(w) == "admitted"
                            for hold in holds
                        )
                    ),
                    f"round {i}: the server and the job gone, the holding jobs running again",
                )
            except AssertionError as exc:
                raise AssertionError(f"{exc}; {describe(cluster, u, [job, *holds])}") from None
        print(  # noqa: T201
            f"{ROUNDS} rounds: {wins}; {sampler.samples} samples; at most "
            f"{sampler.victims_stopping} GPUs on pods of preempted jobs still stopping"
        )
    finally:
        sampler.stopped.set()
        sampler.join(timeout=30)
        hub.close()
        for job in holds:
            cluster.delete_job(job)
    assert sampler.samples > ROUNDS, "the sampler never ran"
    assert not sampler.violations, sampler.violations[:5]
