"""How the GPUs that gpulab workloads hold are counted (pure: raw API dicts in, numbers out).

The spawner (quota on start, the spawn page) and the jobs gateway (quota on submit) both count
with :func:`gpu_holdings`, so a user's servers and jobs are charged the same way everywhere:

* a pod labelled ``app.kubernetes.io/managed-by: gpulab`` that has not terminated holds its
  ``gpulab.io/gpus`` (a pod being deleted still holds them until it is gone);
* a Job (``gpulab.io/job-id``) neither finished nor suspended and with no live pod holds its GPUs
  too (its pod is about to be created, or is between retries); each job counts once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .labels import APP, GPUS_LABEL, GROUP_LABEL, JOB_ID_LABEL, MANAGED_BY_LABEL, USER_LABEL

__all__ = ["gpu_holdings", "is_live_pod"]

_TERMINAL = frozenset({"Succeeded", "Failed"})


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _count(value: Any) -> int:
    try:
        return max(0, int(str(value)))
    except (TypeError, ValueError):
        return 0


def is_live_pod(pod: Mapping[str, Any]) -> bool:
    return ((pod.get("status") or {}).get("phase") or "Pending") not in _TERMINAL


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
        labels = _labels(pod)
        if labels.get(MANAGED_BY_LABEL) != APP or not is_live_pod(pod):
            continue
        job_id = labels.get(JOB_ID_LABEL)
        if job_id:
            if job_id in counted_jobs:
                continue  # a job counts once, whatever its pods
            counted_jobs.add(job_id)
        add(labels)
    for job in jobs:
        labels = _labels(job)
        job_id = labels.get(JOB_ID_LABEL)
        if labels.get(MANAGED_BY_LABEL) != APP or not job_id or job_id in counted_jobs:
            continue
        if _job_holds(job):
            counted_jobs.add(job_id)
            add(labels)
    return per_user, per_group
