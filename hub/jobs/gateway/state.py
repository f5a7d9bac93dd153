"""A job's state for people, from its Kubernetes objects (pure, no I/O).

``job_view(job, pods)`` turns a ``batch/v1`` Job (raw API JSON, as the watch cache holds it)
and its pods into the gateway's Job JSON (docs/gateway.md): state ``Queued | Pending |
Running | Succeeded | Failed | Cancelled`` (``Queued``: a Job queued through Kueue, not
admitted yet; where it stands in its queue is added by the gateway, :mod:`.queue`), a message, times and the exit code. Everything comes from
labels, annotations and status, so a restarted gateway computes the same answer.

A multi-node job (an Indexed Job, one pod per rank) is one job: Running once every rank
runs, Pending until then (saying how many run), Failed when a rank failed, naming the rank
(``status.failedIndexes``) and its exit code; ``ranks`` lists each rank's pod.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from gpulab.wire.jobs import TERMINAL_STATES as TERMINAL
from gpulab.wire.jobs import JobState as State

from ...workload.holdings import job_finished as is_finished
from ...workload.labels import (
    CANCEL_REASON_ANNOTATION,
    CANCELLED_ANNOTATION,
    CANCELLED_BY_ANNOTATION,
    FAILED_REASON_ANNOTATION,
    GPU_TYPE_LABEL,
    GPUS_LABEL,
    GROUP_LABEL,
    IDEMPOTENCY_ANNOTATION,
    JOB_COMPLETION_INDEX_KEY,
    NEVER_STARTED_ANNOTATION,
    NODES_LABEL,
    OWNER_ANNOTATION,
    SPEC_ANNOTATION,
    USER_LABEL,
)
from .queue import is_kueue_job

__all__ = [
    "CANCELLED_ANNOTATION",
    "CANCELLED_BY_ANNOTATION",
    "TERMINAL",
    "State",
    "is_finished",
    "job_state",
    "job_view",
    "latest_pod",
    "nodes_of",
    "rank_of",
    "rank_pods",
]

CONTAINER = "job"

_REASONS = {
    "DeadlineExceeded": "the job ran longer than its max runtime",
    "BackoffLimitExceeded": "the job failed and has no retries left",
    # a sweep: every run ended, some failed (each has its own state: see the job's runs)
    "FailedIndexes": "some runs of the sweep failed",
}
_RANK_FAILED = ("MaxFailedIndexesExceeded", "FailedIndexes")  # an Indexed Job's rank failed


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _conditions(job: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    out: dict[str, Mapping[str, Any]] = {}
    for cond in (job.get("status") or {}).get("conditions") or []:
        if isinstance(cond, Mapping) and cond.get("status") == "True":
            out[str(cond.get("type"))] = cond
    return out


def latest_pod(pods: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The job's newest pod (retries make several), by creation time then name."""
    best = None
    for pod in pods:
        key = (_meta(pod).get("creationTimestamp") or "", _meta(pod).get("name") or "")
        if best is None or key > best[0]:
            best = (key, pod)
    return best[1] if best else None


def _container_status(pod: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if pod is None:
        return {}
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == CONTAINER:
            return status
    return statuses[0] if statuses else {}


def _exit_code(pod: Mapping[str, Any] | None) -> int | None:
    state = _container_status(pod).get("state") or {}
    terminated = state.get("terminated")
    if isinstance(terminated, Mapping) and terminated.get("exitCode") is not None:
        try:
            return int(terminated["exitCode"])
        except (TypeError, ValueError):
            return None
    return None


def _pending_message(pod: Mapping[str, Any] | None) -> str:
    if pod is None:
        return "waiting for the job's pod to be created"
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return str(cond.get("message") or cond.get("reason") or "waiting for a node")
    waiting = (_container_status(pod).get("state") or {}).get("waiting") or {}
    if waiting:
        reason = str(waiting.get("reason") or "")
        message = str(waiting.get("message") or "")
        return f"{reason}: {message}" if message else reason or "starting"
    return "starting"


def nodes_of(job: Mapping[str, Any]) -> int:
    """How many ranks (pods at once) the job runs: 1 unless it is a multi-node job."""
    try:
        return max(1, int((_meta(job).get("labels") or {}).get(NODES_LABEL, "1")))
    except ValueError:
        return 1


def rank_of(pod: Mapping[str, Any]) -> int | None:
    """The rank of a multi-node job's pod (its completion index)."""
    raw = (_meta(pod).get("annotations") or {}).get(JOB_COMPLETION_INDEX_KEY)
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def rank_pods(pods: Iterable[Mapping[str, Any]]) -> dict[int, Mapping[str, Any]]:
    """The newest pod of each rank."""
    by_rank: dict[int, list[Mapping[str, Any]]] = {}
    for pod in pods:
        rank = rank_of(pod)
        if rank is not None:
            by_rank.setdefault(rank, []).append(pod)
    return {rank: p for rank, group in by_rank.items() if (p := latest_pod(group)) is not None}


def _failed_rank(job: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> tuple[int, int | None]:
    """(rank, exit code) of the first rank that failed."""
    failed = str((job.get("status") or {}).get("failedIndexes") or "")
    first = failed.split(",")[0].split("-")[0]
    rank = int(first) if first.isdigit() else 0
    return rank, _exit_code(rank_pods(pods).get(rank))


def _multi_node_state(
    job: Mapping[str, Any], pods: list[Mapping[str, Any]]
) -> tuple[State, str] | None:
    """Running or Pending of a multi-node job whose Job has not ended (None: not one)."""
    nodes = nodes_of(job)
    if nodes == 1 or not pods:
        return None
    ranks = rank_pods(pods)
    phases = [(p.get("status") or {}).get("phase") for p in ranks.values()]
    running = phases.count("Running")
    if len(ranks) == nodes and all(ph in ("Succeeded", "Failed") for ph in phases):
        return "Running", "finishing"  # every rank ended; the Job controller has not said so
    if running == nodes:
        return "Running", ""
    if running:
        return "Running", f"{running} of {nodes} ranks running"
    return "Pending", f"0 of {nodes} ranks running"


def job_state(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> tuple[State, str]:
    """(state, message) of a job from its Job object and pods."""
    pods = list(pods)
    annotations = _meta(job).get("annotations") or {}
    conditions = _conditions(job)
    pod = latest_pod(pods)
    if CANCELLED_ANNOTATION in annotations and "Complete" not in conditions:
        who = annotations.get(CANCELLED_BY_ANNOTATION)
        why = annotations.get(CANCEL_REASON_ANNOTATION)
        said = f"cancelled by {who}" if who else "cancelled"
        return "Cancelled", f"{said}: {why}" if why else said
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        return "Succeeded", ""
    if FAILED_REASON_ANNOTATION in annotations:
        # the gateway failed the Job itself (and deleted it); the reason is for the owner
        return "Failed", str(annotations[FAILED_REASON_ANNOTATION])
    if "Failed" in conditions:
        cond = conditions["Failed"]
        reason = str(cond.get("reason") or "")
        # a sweep's Indexed Job fails the same way, but its runs are no ranks: its own reason
        if reason in _RANK_FAILED and nodes_of(job) > 1:
            rank, code = _failed_rank(job, pods)
            said = f" with exit code {code}" if code is not None else ""
            return "Failed", f"rank {rank} of {nodes_of(job)} failed{said}; the job was stopped"
        text = _REASONS.get(reason) or str(cond.get("message") or reason or "the job failed")
        code = _exit_code(pod)
        if code is not None and reason != "DeadlineExceeded":
            text = f"{text} (exit code {code})"
        return "Failed", text
    if (job.get("spec") or {}).get("suspend"):
        if is_kueue_job(job):
            # made suspended for Kueue, or evicted by it: waits until Kueue admits it
            return "Queued", "waiting in its queue"
        return "Pending", "suspended"
    if (multi := _multi_node_state(job, pods)) is not None:
        return multi
    if pod is not None:
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        if phase == "Running":
            return "Running", ""
        if phase in ("Succeeded", "Failed"):
            # the pod is done, the Job controller has not said so yet (or will retry)
            return ("Running", "finishing") if phase == "Succeeded" else ("Running", "retrying")
        return "Pending", _pending_message(pod)
    return "Pending", _pending_message(None)


def _started(job: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> str | None:
    starts = []
    for pod in pods:
        state = _container_status(pod).get("state") or {}
        for key in ("running", "terminated"):
            at = (state.get(key) or {}).get("startedAt")
            if at:
                starts.append(str(at))
    return min(starts) if starts else None


def _finished(job: Mapping[str, Any], state: State) -> str | None:
    if state == "Cancelled":
        return (_meta(job).get("annotations") or {}).get(CANCELLED_ANNOTATION)
    status = job.get("status") or {}
    if status.get("completionTime"):
        return str(status["completionTime"])
    cond = _conditions(job).get("Failed")
    if cond is not None and cond.get("lastTransitionTime"):
        return str(cond["lastTransitionTime"])
    return None


def _spec(annotations: Mapping[str, Any]) -> dict[str, Any] | None:
    raw = annotations.get(SPEC_ANNOTATION)
    if not raw:
        return None
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def job_view(
    job: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    *,
    upload: str | None = None,
) -> dict[str, Any]:
    """The Job JSON of the REST API. ``upload`` (``ok | failed | pending``) comes from the
    job's ``result.json`` in S3 when the caller knows it; ``None`` = not known yet."""
    pods = list(pods)
    meta = _meta(job)
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    state, message = job_state(job, pods)
    spec = _spec(annotations)
    containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or [{}]
    try:
        gpus = int(labels.get(GPUS_LABEL, "0"))
    except ValueError:
        gpus = 0
    pod = latest_pod(pods)
    nodes = nodes_of(job)
    ranks = rank_pods(pods) if nodes > 1 else {}
    if nodes > 1:  # the exit code that tells: the failed rank's, else rank 0's
        pod = ranks.get(_failed_rank(job, pods)[0] if state == "Failed" else 0, pod)
    if upload is None:
        # a job cancelled before it started has nothing to upload: its upload is over
        upload = "ok" if NEVER_STARTED_ANNOTATION in annotations else "pending"
    return {
        "id": meta.get("name"),
        "name": (spec or {}).get("name") or meta.get("name"),
        "owner": annotations.get(OWNER_ANNOTATION) or labels.get(USER_LABEL),
        "group": labels.get(GROUP_LABEL),
        "state": state,
        "message": message,
        "image": containers[0].get("image"),
        "gpus": gpus,
        "gpu_type": labels.get(GPU_TYPE_LABEL),
        "created": meta.get("creationTimestamp"),
        "started": _started(job, pods),
        "finished": _finished(job, state) if state in TERMINAL else None,
        "exit_code": _exit_code(pod),
        "attempts": len(pods) if pods else int((job.get("status") or {}).get("failed") or 0),
        "spec": spec,
        "upload": upload,
        "idempotency_key": annotations.get(IDEMPOTENCY_ANNOTATION),
        # who cancelled it (the owner, an admin, or the admin acting on the dashboard), and when
        "cancelled_by": annotations.get(CANCELLED_BY_ANNOTATION) if state == "Cancelled" else None,
        "cancelled_at": annotations.get(CANCELLED_ANNOTATION) if state == "Cancelled" else None,
        "cancel_reason": annotations.get(CANCEL_REASON_ANNOTATION)
        if state == "Cancelled"
        else None,
        # Kueue only (the gateway fills them in, :mod:`.queue`): where a Queued job stands,
        # and how often the job was preempted and requeued, with the GPU-hours that cost
        "queue": None,
        "preemptions": 0,
        "gpu_hours_lost": 0.0,
        "nodes": nodes,
        "ranks": [_rank_view(rank, p) for rank, p in sorted(ranks.items())],
    }


def _rank_view(rank: int, pod: Mapping[str, Any]) -> dict[str, Any]:
    status = pod.get("status") or {}
    return {
        "rank": rank,
        "phase": status.get("phase") or "Pending",
        "node": (pod.get("spec") or {}).get("nodeName"),
        "exit_code": _exit_code(pod),
    }
