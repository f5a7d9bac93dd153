"""The dashboard's queues per group: counted from Kueue's Workloads through their LocalQueues,
shown as a table, or a clear notice when Kueue is not installed."""

from __future__ import annotations

from gpulab.hub.culler.service.queues import QueuesSeen, queues_overview
from gpulab.hub.dashboard import render_dashboard
from gpulab.hub.kueue.detect import KueueStatus

GPU = "nvidia.com/gpu"
ON = KueueStatus(True, ("v1beta2",), "Kueue serves kueue.x-k8s.io/v1beta2")
OFF = KueueStatus(False, (), "Kueue is not installed (the API group kueue.x-k8s.io is not served)")


def local_queue(name: str, group: str, cluster_queue: str) -> dict:
    return {
        "metadata": {"name": name, "namespace": "gpulab", "labels": {"gpulab.io/group": group}},
        "spec": {"clusterQueue": cluster_queue},
    }


QUEUES = {
    "gpulab/alice": local_queue("alice", "vision", "gpulab-vision-alice"),
    "gpulab/alice-preemptible": local_queue("alice-preemptible", "vision", "gpulab-vision--borrow"),
    "gpulab/bob": local_queue("bob", "nlp", "gpulab-nlp-bob"),
}


def workload(name: str, queue: str, gpus: int, *conds: tuple[str, str, str]) -> dict:
    return {
        "metadata": {"name": name, "namespace": "gpulab", "uid": name},
        "spec": {
            "queueName": queue,
            "podSets": [{"name": "main", "count": 1, "template": {"spec": {"containers": [
                {"name": "c", "resources": {"requests": {GPU: str(gpus)}}}]}}}],
        },
        "status": {"conditions": [{"type": t, "status": s, "reason": r} for t, s, r in conds]},
    }  # fmt: skip


ADMITTED = (("QuotaReserved", "True", "QuotaReserved"), ("Admitted", "True", "Admitted"))


def test_queues_are_counted_per_group_through_the_workloads_local_queues():
    seen = QueuesSeen(
        ON,
        [
            workload("a", "alice", 2, *ADMITTED),
            workload("b", "alice-preemptible", 1, *ADMITTED),
            workload("c", "alice", 4),
            workload("d", "bob", 1, ("Evicted", "True", "Preempted")),
        ],
        QUEUES,
    )
    groups = {g["group"]: g for g in queues_overview(seen, [GPU])["groups"]}
    assert groups["vision"] == {"group": "vision", "pending": 1, "admitted": 2,
                                "gpus_admitted": 3, "gpus_borrowed": 1, "preempted": 0}  # fmt: skip
    assert (groups["nlp"]["pending"], groups["nlp"]["preempted"]) == (1, 1)


def test_without_kueue_the_overview_says_so_and_counts_nothing():
    overview = queues_overview(QueuesSeen(OFF, [], {}), [GPU])
    assert overview == {"kueue": {"available": False, "message": OFF.message}, "groups": []}


def page(queues: dict) -> str:
    empty = ("capacity", "in_use_by_group", "quota", "running", "idle_holders", "idle_jobs",
             "usage", "nodes", "gpu_types")  # fmt: skip
    data = {
        **dict.fromkeys(empty, []),
        "generated": "2026-12-03T10:00:00+00:00",
        "gpu_hours_by_group_day": {},
        "nodes_watched": True,
        "last_cycle": None,
        "policy": None,
        "usage_accounting": {"available": True, "problem": None},
    }
    return render_dashboard({**data, "queues": queues}, prefix="/", xsrf="t")


def test_page_shows_a_row_per_group_with_its_queue_figures():
    seen = QueuesSeen(ON, [workload("c", "alice", 4)], QUEUES)
    html = page(queues_overview(seen, [GPU]))
    assert '<tr data-group="vision"><td>vision</td><td class="num">1</td>' in html


def test_page_says_gpulab_admits_with_its_own_quotas_without_kueue():
    html = page(queues_overview(QueuesSeen(OFF, [], {}), [GPU]))
    assert "Kueue is not installed: gpulab admits with its own quotas." in html
