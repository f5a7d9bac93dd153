"""A job's state for people, from its Kubernetes objects (pure, no I/O).

``job_view(job, pods)`` turns a ``batch/v1`` Job (raw API JSON, as the watch cache holds it)
and its pods into the gateway's Job JSON (docs/gateway.md): state ``Queued | Pending |
Running | Succeeded | Failed | Cancelled`` (``Queued``: a Job queued through Kueue, not
admitted yet; where it stands in its queue is added by the gateway, :mod:`.queue`), a message, times and the exit code. Everything comes from
labels, annotations and status, so a restarted gateway computes the same answer.
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
    NEVER_STARTED_ANNOTATION,
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
]

CONTAINER = "job"

_REASONS = {
    "DeadlineExceeded": "the job ran longer than its max runtime",
    "BackoffLimitExceeded": "the job failed and has no retries left",
    # a sweep: every run ended, some failed (each has its own state: see the job's runs)
    "FailedIndexes": "some runs of the sweep failed",
}


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
    }
