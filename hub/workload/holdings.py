"""How the GPUs, CPU, memory and job slots that gpulab workloads hold are counted (pure: raw
API dicts in, numbers out).

The spawner (quota on start, the spawn page) and the jobs gateway (quota on submit) both count
with :func:`count_usage` (over :func:`gpu_holdings` and :func:`compute_holdings`), so a user's
servers and jobs are charged the same way everywhere:

* a pod labelled ``app.kubernetes.io/managed-by: gpulab`` that has not terminated holds its
  ``gpulab.io/gpus`` (a pod being deleted still holds them until it is gone), and the CPU and
  memory its containers request (:func:`pod_spec_demand`);
* a Job (``gpulab.io/job-id``) neither finished nor suspended and with no live pod holds its
  GPUs, CPU and memory too (its pod is about to be created, or is between retries; the amounts
  are its pod template's); each job counts once;
* a user's Job takes one of their job slots until it is finished (Complete, Failed or
  SuccessCriteriaMet) or cancelled: :func:`job_finished`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..policy import ProfilePolicy, cpu_millicores, quantity_bytes
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

__all__ = [
    "Demand",
    "GpuUsage",
    "compute_holdings",
    "count_usage",
    "gpu_holdings",
    "is_live_pod",
    "job_finished",
    "pod_spec_demand",
    "profile_demand",
]

_FINISHED_CONDITIONS = frozenset({"Complete", "Failed", "SuccessCriteriaMet"})


@dataclass(frozen=True)
class GpuUsage:
    """What one user and their quota group hold right now, not counting the workload being
    admitted: ``user`` and ``group`` GPUs (servers and jobs), ``jobs`` the user's unfinished
    jobs, and the CPU (millicores) and memory (bytes) the group's servers and jobs request."""

    user: int = 0
    group: int = 0
    jobs: int = 0
    group_cpu_millis: int = 0
    group_memory_bytes: int = 0


@dataclass(frozen=True)
class Demand:
    """CPU (millicores) and memory (bytes) a pod requests: what quota charges."""

    cpu_millis: int = 0
    memory_bytes: int = 0


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


def _amount(value: Any, read: Any) -> int:
    try:
        return read(value) if value is not None else 0
    except ValueError:
        return 0  # the API server refuses such a pod; it holds nothing


def _container_demand(container: Mapping[str, Any]) -> Demand:
    res = container.get("resources") or {}
    requests, limits = res.get("requests") or {}, res.get("limits") or {}
    # A container that sets only a limit requests the limit (the API server's default).
    cpu, memory = (
        requests.get("cpu", limits.get("cpu")),
        requests.get("memory", limits.get("memory")),
    )
    return Demand(_amount(cpu, cpu_millicores), _amount(memory, quantity_bytes))


def pod_spec_demand(spec: Mapping[str, Any]) -> Demand:
    """What a pod spec requests: its containers' sum, or its largest init container's when
    larger (as the scheduler counts)."""
    main = [_container_demand(c) for c in spec.get("containers") or []]
    init = [_container_demand(c) for c in spec.get("initContainers") or []]
    return Demand(
        max([sum(d.cpu_millis for d in main)] + [d.cpu_millis for d in init]),
        max([sum(d.memory_bytes for d in main)] + [d.memory_bytes for d in init]),
    )


def profile_demand(profile: ProfilePolicy) -> Demand:
    """What a server of ``profile`` requests: each guarantee, else the limit."""
    cpu = profile.cpu.guarantee if profile.cpu.guarantee is not None else profile.cpu.limit
    memory = (
        profile.memory.guarantee if profile.memory.guarantee is not None else profile.memory.limit
    )
    return Demand(_amount(cpu, cpu_millicores), _amount(memory, quantity_bytes))


def _job_holds(job: Mapping[str, Any]) -> bool:
    if (job.get("spec") or {}).get("suspend"):
        return False
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            return False
    return True


def _holders(
    pods: Iterable[Mapping[str, Any]], jobs: Iterable[Mapping[str, Any]]
) -> Iterator[tuple[Mapping[str, str], Mapping[str, Any]]]:
    """(labels, pod spec) of every gpulab pod or Job that holds resources, each job once."""
    counted_jobs: set[str] = set()
    for pod in pods:
        labels = labels_of(pod)
        if labels.get(MANAGED_BY_LABEL) != APP or not is_live_pod(pod):
            continue
        job_id = labels.get(JOB_ID_LABEL)
        if job_id:
            if job_id in counted_jobs:
                continue  # a job counts once, whatever its pods
            counted_jobs.add(job_id)
        yield labels, pod.get("spec") or {}
    for job in jobs:
        labels = labels_of(job)
        job_id = labels.get(JOB_ID_LABEL)
        if labels.get(MANAGED_BY_LABEL) != APP or not job_id or job_id in counted_jobs:
            continue
        if _job_holds(job):
            counted_jobs.add(job_id)
            template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
            yield labels, template


def gpu_holdings(
    pods: Iterable[Mapping[str, Any]], jobs: Iterable[Mapping[str, Any]] = ()
) -> tuple[dict[str, int], dict[str, int]]:
    """(GPUs per ``gpulab.io/user`` value, GPUs per ``gpulab.io/group`` value)."""
    per_user: dict[str, int] = {}
    per_group: dict[str, int] = {}
    for labels, _ in _holders(pods, jobs):
        n = _count(labels.get(GPUS_LABEL))
        if n:
            user, group = labels.get(USER_LABEL, ""), labels.get(GROUP_LABEL, "")
            per_user[user] = per_user.get(user, 0) + n
            per_group[group] = per_group.get(group, 0) + n
    return per_user, per_group


def compute_holdings(
    pods: Iterable[Mapping[str, Any]], jobs: Iterable[Mapping[str, Any]] = ()
) -> dict[str, Demand]:
    """CPU and memory requested per ``gpulab.io/group`` value, by the same holders as
    :func:`gpu_holdings`."""
    per_group: dict[str, Demand] = {}
    for labels, spec in _holders(pods, jobs):
        demand = pod_spec_demand(spec)
        group = labels.get(GROUP_LABEL, "")
        held = per_group.get(group, Demand())
        per_group[group] = Demand(
            held.cpu_millis + demand.cpu_millis, held.memory_bytes + demand.memory_bytes
        )
    return per_group


def count_usage(
    pods: Iterable[Mapping[str, Any]],
    jobs: Iterable[Mapping[str, Any]] = (),
    *,
    user: str,
    group: str,
) -> GpuUsage:
    """What ``user`` (the escaped ``gpulab.io/user`` value) and the quota group ``group`` hold
    among these pods and Jobs."""
    pods, jobs = list(pods), list(jobs)
    per_user, per_group = gpu_holdings(pods, jobs)
    compute = compute_holdings(pods, jobs).get(group, Demand())
    unfinished = sum(
        1
        for job in jobs
        if labels_of(job).get(MANAGED_BY_LABEL) == APP
        and labels_of(job).get(USER_LABEL) == user
        and not job_finished(job)
    )
    return GpuUsage(
        user=per_user.get(user, 0),
        group=per_group.get(group, 0),
        jobs=unfinished,
        group_cpu_millis=compute.cpu_millis,
        group_memory_bytes=compute.memory_bytes,
    )
