"""Jobs queued through Kueue, the pure parts: the spec's ``preemptible``, the suspended Job with
Kueue's labels, the ``Queued`` state, the place in the queue and its words, what preemption
cost."""

from __future__ import annotations

import datetime as dt

import kubernetes_validate
import pytest
from gpulab.hub.jobs.gateway.queue import (
    Preemption,
    QueueBook,
    busy_gpus,
    lost_gpu_seconds,
    preemption,
    queue_info,
)
from gpulab.hub.jobs.gateway.state import job_state, job_view
from gpulab.hub.jobs.manifest import JobQueue, render_job, upload_secret_name
from gpulab.hub.jobs.spec import SpecError, parse_job_spec
from gpulab.hub.kueue.names import PRIORITY_BATCH, PRIORITY_INTERACTIVE, PRIORITY_PREEMPTIBLE
from gpulab.hub.workload.labels import (
    CANCELLED_ANNOTATION,
    GPU_TYPE_LABEL,
    GPUS_LABEL,
    GROUP_LABEL,
    JOB_ID_LABEL,
    KUEUE_ADMISSION_GATE,
    KUEUE_PRIORITY_LABEL,
    KUEUE_QUEUE_LABEL,
    PREEMPTED_GPU_SECONDS_ANNOTATION,
    PREEMPTIONS_ANNOTATION,
)
from jobs_testlib import IMAGE


def _job(
    name: str,
    *,
    created: str = "2026-01-01T10:00:00Z",
    group: str = "vision",
    priority: str = PRIORITY_BATCH,
    suspend: bool = True,
    gpus: int = 2,
    annotations: dict | None = None,
) -> dict:
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "labels": {
                JOB_ID_LABEL: name,
                GROUP_LABEL: group,
                GPUS_LABEL: str(gpus),
                GPU_TYPE_LABEL: "a100",
                KUEUE_QUEUE_LABEL: "alice",
                KUEUE_PRIORITY_LABEL: priority,
            },
            "annotations": annotations or {},
        },
        "spec": {"suspend": suspend},
    }


def test_spec_preemptible_defaults_to_false_and_refuses_non_booleans():
    base = {"name": "t", "command": ["true"]}
    assert parse_job_spec(base).preemptible is False
    assert parse_job_spec({**base, "preemptible": True}).preemptible is True
    with pytest.raises(SpecError) as err:
        parse_job_spec({**base, "preemptible": "yes"})
    assert [p.field for p in err.value.problems] == ["preemptible"]


def _render(policy, ent, queue: JobQueue | None = None) -> dict:
    spec = parse_job_spec({"name": "t", "image": IMAGE, "command": ["true"], "gpus": 1})
    return render_job(
        spec,
        owner="alice",
        job_id="t-abcdef",
        entitlement=ent,
        policy=policy,
        image=IMAGE,
        namespace="gpulab",
        upload_secret_name=upload_secret_name("t-abcdef"),
        queue=queue,
    )


def test_queued_job_is_made_suspended_with_kueue_labels(policy, vision):
    job = _render(policy, vision, JobQueue("alice-preemptible", PRIORITY_PREEMPTIBLE))
    assert job["spec"]["suspend"] is True
    labels = job["metadata"]["labels"]
    assert labels[KUEUE_QUEUE_LABEL] == "alice-preemptible"
    assert labels[KUEUE_PRIORITY_LABEL] == PRIORITY_PREEMPTIBLE
    kubernetes_validate.validate(job, "1.31.0", strict=True)


def test_job_without_queue_is_not_suspended(policy, vision):
    job = _render(policy, vision)
    assert "suspend" not in job["spec"]
    assert KUEUE_QUEUE_LABEL not in job["metadata"]["labels"]


def test_suspended_kueue_job_is_queued_and_cancelled_one_is_not():
    assert job_state(_job("a-aaaaaa"), [])[0] == "Queued"
    cancelled = _job("a-aaaaaa", annotations={CANCELLED_ANNOTATION: "2026-01-01T10:00:00Z"})
    assert job_state(cancelled, [])[0] == "Cancelled"
    assert job_state(_job("a-aaaaaa", suspend=False), [])[0] == "Pending"


def test_position_counts_higher_priority_and_earlier_work_of_the_group():
    jobs = [
        _job("old-aaaaaa", created="2026-01-01T09:00:00Z"),
        _job("mine-aaaaaa", created="2026-01-01T10:00:00Z"),
        _job("later-aaaaaa", created="2026-01-01T11:00:00Z"),
        _job("cheap-aaaaaa", created="2026-01-01T08:00:00Z", priority=PRIORITY_PREEMPTIBLE),
        _job("other-aaaaaa", created="2026-01-01T08:00:00Z", group="nlp"),
        _job("running-aaaaaa", created="2026-01-01T08:00:00Z", suspend=False),
    ]
    server = {
        "metadata": {
            "name": "jupyter-bob",
            "creationTimestamp": "2026-01-01T11:30:00Z",
            "labels": {GROUP_LABEL: "vision", KUEUE_PRIORITY_LABEL: PRIORITY_INTERACTIVE},
        },
        "spec": {"schedulingGates": [{"name": KUEUE_ADMISSION_GATE}]},
    }
    book = QueueBook.build(jobs, [server])
    assert book.ahead("mine-aaaaaa") == 2  # the waiting server and the older job
    assert book.ahead("cheap-aaaaaa") == 4  # preemptible: after every batch job
    assert book.ahead("other-aaaaaa") == 0
    assert book.ahead("running-aaaaaa") is None


def test_queue_message_says_what_the_job_waits_for():
    jobs = [_job("a-aaaaaa", created="2026-01-01T09:00:00Z"), _job("b-aaaaaa")]
    info = queue_info(jobs[1], QueueBook.build(jobs), gpus_busy=6, gpus_quota=8, workload=None)
    assert info is not None
    assert info.message() == "2 × a100 in vision: 1 job ahead, 6 of 8 GPUs busy"
    assert info.as_dict()["position"] == 2


def test_queue_reason_is_kueues_quota_reserved_message():
    workload = {
        "status": {
            "conditions": [
                {
                    "type": "QuotaReserved",
                    "status": "False",
                    "reason": "Pending",
                    "message": "insufficient unused quota for nvidia.com/gpu in flavor gpu-a100",
                }
            ]
        }
    }
    job = _job("a-aaaaaa")
    info = queue_info(job, QueueBook.build([job]), gpus_busy=8, gpus_quota=8, workload=workload)
    assert info is not None and "insufficient unused quota" in info.reason


def test_preemption_adds_recorded_and_unrecorded_evictions():
    job = _job(
        "a-aaaaaa",
        annotations={PREEMPTIONS_ANNOTATION: "1", PREEMPTED_GPU_SECONDS_ANNOTATION: "3600"},
    )
    lost = preemption(job, None, Preemption(1, 1800.0))
    assert (lost.count, lost.gpu_hours) == (2, 1.5)


def test_preemption_count_takes_kueues_requeue_count_when_larger():
    workload = {"status": {"requeueState": {"count": 3}}}
    assert preemption(_job("a-aaaaaa"), workload).count == 3


def test_lost_gpu_seconds_is_the_running_pods_time_times_gpus():
    now = dt.datetime(2026, 1, 1, 11, 0, tzinfo=dt.UTC)
    pod = {
        "status": {
            "containerStatuses": [
                {"name": "job", "state": {"running": {"startedAt": "2026-01-01T10:30:00Z"}}}
            ]
        }
    }
    assert lost_gpu_seconds(_job("a-aaaaaa", gpus=2), [pod], now) == 3600.0


def test_view_of_a_plain_job_has_no_queue():
    view = job_view(_job("a-aaaaaa", suspend=False), [])
    assert (view["queue"], view["preemptions"], view["gpu_hours_lost"]) == (None, 0, 0.0)


def test_busy_gpus_leave_out_servers_waiting_for_admission():
    def server(name: str, gated: bool) -> dict:
        return {
            "metadata": {
                "name": name,
                "labels": {
                    "app.kubernetes.io/managed-by": "gpulab",
                    GROUP_LABEL: "vision",
                    GPUS_LABEL: "1",
                },
            },
            "spec": {"schedulingGates": [{"name": KUEUE_ADMISSION_GATE}] if gated else []},
            "status": {"phase": "Pending" if gated else "Running"},
        }

    assert busy_gpus([server("a", False), server("b", True)], []) == {"vision": 1}


def test_busy_gpus_count_running_jobs_not_suspended_or_finished_ones():
    finished = _job("done-aaaaaa", suspend=False)
    finished["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    jobs = [_job("run-aaaaaa", suspend=False), _job("wait-aaaaaa"), finished]
    assert busy_gpus([], jobs) == {"vision": 2}
