"""How the GPUs and job slots that gpulab workloads hold are counted (pure: raw API dicts in,
numbers out).

The spawner (quota on start, the spawn page) and the jobs gateway (quota on submit) both count
with :func:`count_usage` (over :func:`gpu_holdings`), so a user's servers and jobs are charged
the same way everywhere:

* a pod labelled ``app.kubernetes.io/managed-by: gpulab`` that has not terminated holds its
  ``gpulab.io/gpus`` (a pod being deleted still holds them until it is gone);
* a Job (``gpulab.io/job-id``) neither finished nor suspended and with no live pod holds its GPUs
  too (its pod is about to be created, or is between retries); each job counts once;
* a user's Job takes one of their job slots until it is finished (Complete, Failed or
  SuccessCriteriaMet) or cancelled: :func:`job_finished`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .labels import (
    APP,
    CANCELLED_ANNOTATION,
    FAILED_REASON_ANNOTATION,
    GPUS_LABEL,
    GROUP_LABEL,
    JOB_ID_LABEL,
    MANAGED_BY_LABEL,
    USER_LABEL,
    labels_of,
)

__all__ = ["GpuUsage", "count_usage", "gpu_holdings", "is_live_pod", "job_finished"]

_FINISHED_CONDITIONS = frozenset({"Complete", "Failed", "SuccessCriteriaMet"})


@dataclass(frozen=True)
class GpuUsage:
    """What one user and their quota group hold right now, not counting the workload being
    admitted: ``user`` and ``group`` GPUs (servers and jobs), ``jobs`` the user's unfinished
    jobs."""

    user: int = 0
    group: int = 0
    jobs: int = 0


_TERMINAL = frozenset({"Succeeded", "Failed"})


def _count(value: Any) -> int:
    try:
        return max(0, int(str(value)))
    except (TypeError, ValueError):
        return 0


def is_live_pod(pod: Mapping[str, Any]) -> bool:
    return ((pod.get("status") or {}).get("phase") or "Pending") not in _TERMINAL


def job_finished(job: Mapping[str, Any]) -> bool:
    """True once the Job is Complete, Failed or SuccessCriteriaMet, or cancelled or failed by
    the gateway (no pod of it will run again)."""
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    if CANCELLED_ANNOTATION in annotations or FAILED_REASON_ANNOTATION in annotations:
        return True
    return any(
        cond.get("type") in _FINISHED_CONDITIONS and cond.get("status") == "True"
        for cond in (job.get("status") or {}).get("conditions") or []
        if isinstance(cond, Mapping)
    )


def _job_holds(job: Mapping[str, Any]) -> bool:
    if (job.get("spec") or {}).get("suspend"):
        return False
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return False
    return True


def gpu_holdings(
    pods: Iterable[Mapping[str, Any]], jobs: Iterable[Mapping[str, Any]] = ()
) -> tuple[dict[str, int], dict[str, int]]:
    """(GPUs per ``gpulab.io/user`` value, GPUs per ``gpulab.io/group`` value)."""
    per_user: dict[str, int] = {}
    per_group: dict[str, int] = {}
    counted_jobs: set[str] = set()

    def add(labels: Mapping[str, str]) -> None:
        n = _count(labels.get(GPUS_LABEL))
        if n:
            user, group = labels.get(USER_LABEL, ""), labels.get(GROUP_LABEL, "")
            per_user[user] = per_user.get(user, 0) + n
            per_group[group] = per_group.get(group, 0) + n

    for pod in pods:
        labels = labels_of(pod)
        if labels.get(MANAGED_BY_LABEL) != APP or not is_live_pod(pod):
            continue
        job_id = labels.get(JOB_ID_LABEL)
        if job_id:
            if job_id in counted_jobs:
                continue  # a job counts once, whatever its pods
            counted_jobs.add(job_id)
        add(labels)
    for job in jobs:
        labels = labels_of(job)
        job_id = labels.get(JOB_ID_LABEL)
        if labels.get(MANAGED_BY_LABEL) != APP or not job_id or job_id in counted_jobs:
            continue
        if _job_holds(job):
            counted_jobs.add(job_id)
            add(labels)
    return per_user, per_group


def count_usage(
    pods: Iterable[Mapping[str, Any]],
    jobs: Iterable[Mapping[str, Any]] = (),
    *,
    user: str,
    group: str,
) -> GpuUsage:
    """What ``user`` (the escaped ``gpulab.io/user`` value) and the quota group ``group`` hold
    among these pods and Jobs."""
    jobs = list(jobs)
    per_user, per_group = gpu_holdings(pods, jobs)
    unfinished = sum(
        1
        for job in jobs
        if labels_of(job).get(MANAGED_BY_LABEL) == APP
        and labels_of(job).get(USER_LABEL) == user
        and not job_finished(job)
    )
    return GpuUsage(user=per_user.get(user, 0), group=per_group.get(group, 0), jobs=unfinished)
