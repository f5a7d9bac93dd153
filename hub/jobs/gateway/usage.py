"""GPUs in use per user and per quota group, from the watch cache (no API call).

Counted, as the spawner counts them (gpulab.spawner.quota): a gpulab pod (notebook server or
job pod) that has not terminated holds ``gpulab.io/gpus``; an unfinished, unsuspended Job
without a live pod holds its GPUs too (its pod is about to come or is between retries); each
job counts once. A user's *unfinished jobs* are those neither finished nor cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..validate import UsageSnapshot
from .cache import ClusterCache
from .state import is_finished

__all__ = ["gpu_usage", "usage_snapshot"]

MANAGED_BY = "app.kubernetes.io/managed-by"
USER = "gpulab.io/user"
GROUP = "gpulab.io/group"
GPUS = "gpulab.io/gpus"
JOB_ID = "gpulab.io/job-id"


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _int(value: Any) -> int:
    try:
        return max(0, int(str(value)))
    except (TypeError, ValueError):
        return 0


def _live(pod: Mapping[str, Any]) -> bool:
    return ((pod.get("status") or {}).get("phase") or "Pending") not in ("Succeeded", "Failed")


def _job_holds(job: Mapping[str, Any]) -> bool:
    return not is_finished(job) and not (job.get("spec") or {}).get("suspend")


def gpu_usage(
    pods: Iterable[Mapping[str, Any]], jobs: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, int], dict[str, int]]:
    """(GPUs per ``gpulab.io/user`` value, GPUs per ``gpulab.io/group``) over all objects."""
    per_user: dict[str, int] = {}
    per_group: dict[str, int] = {}
    counted: set[str] = set()

    def add(labels: Mapping[str, str]) -> None:
        n = _int(labels.get(GPUS))
        if n:
            per_user[labels.get(USER, "")] = per_user.get(labels.get(USER, ""), 0) + n
            per_group[labels.get(GROUP, "")] = per_group.get(labels.get(GROUP, ""), 0) + n

    for pod in pods:
        labels = _labels(pod)
        if labels.get(MANAGED_BY) != "gpulab" or not _live(pod):
            continue
        job_id = labels.get(JOB_ID)
        if job_id:
            if job_id in counted:
                continue
            counted.add(job_id)
        add(labels)
    for job in jobs:
        labels = _labels(job)
        job_id = labels.get(JOB_ID)
        if not job_id or job_id in counted or not _job_holds(job):
            continue
        counted.add(job_id)
        add(labels)
    return per_user, per_group


def usage_snapshot(cache: ClusterCache, user_label: str) -> UsageSnapshot:
    """What ``validate_against_policy`` needs for one user: their GPUs, every group's GPUs
    and their unfinished jobs."""
    per_user, per_group = gpu_usage(cache.pods.values(), cache.jobs.values())
    unfinished = sum(
        1
        for job_id in cache.user_job_ids(user_label)
        if (job := cache.job(job_id)) is not None and not is_finished(job)
    )
    return UsageSnapshot(
        user_gpus=per_user.get(user_label, 0), group_gpus=per_group, user_jobs=unfinished
    )
