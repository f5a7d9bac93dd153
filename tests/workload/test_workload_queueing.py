"""Reading Kueue Workloads: state, preemption, GPUs asked, a queued one's standing, group queues."""

from __future__ import annotations

from gpulab.hub.workload.queueing import (
    group_queues,
    kueue_gated,
    queue_standing,
    was_preempted,
    workload_gpus,
    workload_of,
    workload_state,
)

GPU = "nvidia.com/gpu"


def wl(
    name,
    *,
    group="vision",
    gpus=1,
    created="2026-01-01T00:00:00Z",
    priority=100,
    conds=(),
    kind="Pod",
    queue="alice",
    count=1,
    requeued=0,
):
    return {
        "metadata": {
            "name": f"wl-{name}",
            "namespace": "gpulab",
            "uid": f"uid-{name}",
            "creationTimestamp": created,
            "ownerReferences": [{"kind": kind, "name": name, "controller": True}],
            "labels": {"test/group": group},
        },
        "spec": {
            "queueName": queue,
            "priority": priority,
            "podSets": [
                {
                    "name": "main",
                    "count": count,
                    "template": {
                        "spec": {
                            "containers": [
                                {"name": "c", "resources": {"requests": {GPU: str(gpus)}}}
                            ]
                        }
                    },
                }
            ],
        },
        "status": {
            "conditions": [
                {"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conds
            ],
            **({"requeueState": {"count": requeued}} if requeued else {}),
        },
    }


ADMITTED = (("QuotaReserved", "True", "QuotaReserved", ""), ("Admitted", "True", "Admitted", ""))
WAITING = (("QuotaReserved", "False", "Pending", "insufficient unused quota for nvidia.com/gpu"),)


def group_of(w):
    return w["metadata"]["labels"]["test/group"]


def test_a_workload_is_pending_until_admitted_and_pending_again_when_evicted():
    assert workload_state(wl("a")) == "pending"
    assert workload_state(wl("a", conds=ADMITTED)) == "admitted"
    evicted = (*ADMITTED, ("Evicted", "True", "Preempted", "preempted by a lender"))
    assert workload_state(wl("a", conds=evicted)) == "pending"
    assert workload_state(wl("a", conds=(("Finished", "True", "Succeeded", ""),))) == "finished"


def test_a_preempted_workload_stays_counted_as_preempted_after_requeue():
    assert not was_preempted(wl("a", conds=ADMITTED))
    assert was_preempted(wl("a", conds=(("Evicted", "True", "Preempted", ""),)))
    assert was_preempted(wl("a", conds=ADMITTED, requeued=2))


def test_gpus_of_a_workload_are_its_pods_times_their_requests():
    assert workload_gpus(wl("a", gpus=2, count=3), [GPU]) == 6
    assert workload_gpus(wl("a", gpus=2), ["nvidia.com/mig-1g.10gb"]) == 0


def test_the_workload_of_a_pod_is_found_by_its_owner():
    mine = wl("jupyter-alice")
    assert workload_of([wl("other"), mine], "Pod", "gpulab", "jupyter-alice") is mine
    assert workload_of([wl("other")], "Pod", "gpulab", "jupyter-alice") is None


def test_standing_counts_older_pending_work_of_the_group_and_its_admitted_gpus():
    mine = wl("me", created="2026-01-01T00:05:00Z", conds=WAITING)
    others = [
        wl("older", created="2026-01-01T00:01:00Z"),
        wl("newer", created="2026-01-01T00:09:00Z"),
        wl("older-other-group", group="nlp", created="2026-01-01T00:01:00Z"),
        wl("running", gpus=3, conds=ADMITTED),
        wl("running-nlp", group="nlp", gpus=5, conds=ADMITTED),
    ]
    standing = queue_standing(mine, [mine, *others], group_of, [GPU])
    assert (standing.ahead, standing.group_gpus_admitted) == (1, 3)
    assert "insufficient unused quota" in standing.reason


def test_higher_priority_pending_work_is_ahead_even_when_newer():
    mine = wl("me", created="2026-01-01T00:05:00Z", priority=100)
    newer_higher = wl("server", created="2026-01-01T00:09:00Z", priority=1000)
    newer_lower = wl("batch", created="2026-01-01T00:09:00Z", priority=10)
    assert queue_standing(mine, [newer_higher, newer_lower], group_of, [GPU]).ahead == 1


def test_group_queues_count_pending_admitted_borrowed_and_preempted_per_group():
    workloads = [
        wl("p1"),
        wl("a1", gpus=2, conds=ADMITTED),
        wl("b1", gpus=1, conds=ADMITTED, queue="alice-preemptible", requeued=1),
        wl("n1", group="nlp", conds=(("Evicted", "True", "Preempted", ""),)),
        wl("done", conds=(("Finished", "True", "Succeeded", ""),)),
    ]
    rows = group_queues(
        workloads, group_of, lambda w: w["spec"]["queueName"].endswith("-preemptible"), [GPU]
    )
    assert [r.to_json() for r in rows] == [
        {
            "group": "nlp",
            "pending": 1,
            "admitted": 0,
            "gpus_admitted": 0,
            "gpus_borrowed": 0,
            "preempted": 1,
        },
        {
            "group": "vision",
            "pending": 1,
            "admitted": 2,
            "gpus_admitted": 3,
            "gpus_borrowed": 1,
            "preempted": 1,
        },
    ]


def test_a_pod_is_gated_while_kueues_admission_gate_is_on():
    assert kueue_gated({"spec": {"schedulingGates": [{"name": "kueue.x-k8s.io/admission"}]}})
    assert not kueue_gated({"spec": {"schedulingGates": [{"name": "example.com/other"}]}})
    assert not kueue_gated({"spec": {}})
