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
* a multi-node job (``gpulab.io/nodes``) counts once too: its ``gpulab.io/gpus`` are every
  node's, its CPU and memory its pod's times its nodes;
* a user's Job takes one of their job slots until it is finished (Complete, Failed or
  SuccessCriteriaMet) or cancelled: :func:`job_finished`.

Beside the numbers, :class:`GpuUsage` keeps *who* holds the GPUs (:class:`Holder`: a server
or a job, its owner and its GPUs), and :func:`describe_holders` is the one sentence that names
them ("your server alice/ holds 1, your job long-train holds 3"): the spawn page and every
quota refusal (spawner and gateway) use it, so a researcher learns what to stop.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..policy import ProfilePolicy, cpu_millicores, quantity_bytes
from .labels import (
    APP,
    CANCELLED_ANNOTATION,
    FAILED_REASON_ANNOTATION,
    GPUS_LABEL,
    GROUP_LABEL,
    JOB_COMPLETION_INDEX_KEY,
    JOB_ID_LABEL,
    KUBESPAWNER_SERVERNAME_ANNOTATION,
    KUBESPAWNER_USERNAME_ANNOTATION,
    MANAGED_BY_LABEL,
    NODES_LABEL,
    OWNER_ANNOTATION,
    SPEC_ANNOTATION,
    SWEEP_LABEL,
    USER_LABEL,
    USERNAME_ANNOTATION,
    labels_of,
)

__all__ = [
    "Demand",
    "GpuUsage",
    "Holder",
    "compute_holdings",
    "count_usage",
    "describe_holders",
    "gpu_holders",
    "gpu_holdings",
    "is_live_pod",
    "job_finished",
    "pod_spec_demand",
    "profile_demand",
]

_FINISHED_CONDITIONS = frozenset({"Complete", "Failed", "SuccessCriteriaMet"})

HolderKind = Literal["server", "job"]


@dataclass(frozen=True)
class Holder:
    """One server or job holding GPUs: ``name`` is what its owner knows it by (``alice/``,
    ``alice/big`` for a named server, the job's name); ``user`` the escaped ``gpulab.io/user``
    value, ``owner`` the name as JupyterHub spells it, ``group`` the quota group charged;
    ``starting``: reserved in the quota ledger, not in the cluster yet."""

    kind: HolderKind
    name: str
    user: str
    owner: str
    gpus: int
    group: str = ""
    starting: bool = False


@dataclass(frozen=True)
class GpuUsage:
    """What one user and their quota group hold right now, not counting the workload being
    admitted: ``user`` and ``group`` GPUs (servers and jobs), ``jobs`` the user's unfinished
    jobs, and the CPU (millicores) and memory (bytes) the group's servers and jobs request.
    ``holders``: the servers and jobs holding those GPUs (the user's and the group's);
    ``counted_for``: the user (escaped ``gpulab.io/user`` value) they were counted for."""

    user: int = 0
    group: int = 0
    jobs: int = 0
    group_cpu_millis: int = 0
    group_memory_bytes: int = 0
    holders: tuple[Holder, ...] = ()
    counted_for: str = ""


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
) -> Iterator[tuple[Mapping[str, str], Mapping[str, Any], Mapping[str, Any]]]:
    """(labels, pod spec, object) of every gpulab pod or Job that holds resources, each job
    once."""
    # A job counts once, whatever its pods (a retry's pod may overlap the failed one); a
    # sweep (SWEEP_LABEL) once per run, up to its parallelism of runs at once.
    counted: set[tuple[str, str]] = set()
    pods_of: dict[str, int] = {}
    for pod in pods:
        labels = labels_of(pod)
        if labels.get(MANAGED_BY_LABEL) != APP or not is_live_pod(pod):
            continue
        job_id = labels.get(JOB_ID_LABEL)
        if job_id:
            annotations = (pod.get("metadata") or {}).get("annotations") or {}
            index = annotations.get(JOB_COMPLETION_INDEX_KEY, "")
            key = (job_id, str(index) if labels.get(SWEEP_LABEL) else "")
            if key in counted:
                continue
            counted.add(key)
            pods_of[job_id] = pods_of.get(job_id, 0) + 1
        yield labels, pod.get("spec") or {}, pod
    for job in jobs:
        labels = labels_of(job)
        job_id = labels.get(JOB_ID_LABEL)
        if labels.get(MANAGED_BY_LABEL) != APP or not job_id or not _job_holds(job):
            continue
        # the indexes it may still start: its parallelism less the pods already counted
        spec = job.get("spec") or {}
        template = (spec.get("template") or {}).get("spec") or {}
        status = job.get("status") or {}
        at_once = 1
        if labels.get(SWEEP_LABEL):
            at_once = min(
                _count(spec.get("parallelism", 1)),
                _count(spec.get("completions", 1)) - _count(status.get("succeeded")),
            )
        for _ in range(max(0, at_once - pods_of.get(job_id, 0))):
            yield labels, template, job


def gpu_holdings(
    pods: Iterable[Mapping[str, Any]], jobs: Iterable[Mapping[str, Any]] = ()
) -> tuple[dict[str, int], dict[str, int]]:
    """(GPUs per ``gpulab.io/user`` value, GPUs per ``gpulab.io/group`` value)."""
    per_user: dict[str, int] = {}
    per_group: dict[str, int] = {}
    for labels, _, _ in _holders(pods, jobs):
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
    for labels, spec, _ in _holders(pods, jobs):
        one = pod_spec_demand(spec)
        pods_of_it = max(1, _count(labels.get(NODES_LABEL)))  # a multi-node job: every rank
        demand = Demand(one.cpu_millis * pods_of_it, one.memory_bytes * pods_of_it)
        group = labels.get(GROUP_LABEL, "")
        held = per_group.get(group, Demand())
        per_group[group] = Demand(
            held.cpu_millis + demand.cpu_millis, held.memory_bytes + demand.memory_bytes
        )
    return per_group


def _job_name(job: Mapping[str, Any]) -> str | None:
    """The name its owner gave a Job (in the spec the gateway annotated), if it says one."""
    raw = ((job.get("metadata") or {}).get("annotations") or {}).get(SPEC_ANNOTATION)
    if not raw:
        return None
    try:
        name = json.loads(raw).get("name")
    except (TypeError, ValueError, AttributeError):
        return None
    return name if isinstance(name, str) and name else None


def _holder(labels: Mapping[str, str], obj: Mapping[str, Any], job_name: str | None) -> Holder:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    user = labels.get(USER_LABEL, "")
    owner = (
        annotations.get(OWNER_ANNOTATION)
        or annotations.get(USERNAME_ANNOTATION)
        or annotations.get(KUBESPAWNER_USERNAME_ANNOTATION)
        or user
    )
    gpus, group = _count(labels.get(GPUS_LABEL)), labels.get(GROUP_LABEL, "")
    job_id = labels.get(JOB_ID_LABEL)
    if job_id:
        return Holder("job", job_name or job_id, user, owner, gpus, group)
    server = annotations.get(KUBESPAWNER_SERVERNAME_ANNOTATION) or ""
    return Holder("server", f"{owner}/{server}", user, owner, gpus, group)


def gpu_holders(
    pods: Iterable[Mapping[str, Any]],
    jobs: Iterable[Mapping[str, Any]] = (),
    *,
    user: str,
    group: str,
) -> tuple[Holder, ...]:
    """The servers and jobs holding GPUs that count against ``user`` or the quota group
    ``group``: most GPUs first. Only those holders' names are read (a gateway holds thousands
    of finished Jobs)."""
    pods, jobs = list(pods), list(jobs)
    by_id: dict[str, Mapping[str, Any]] | None = None
    found: list[Holder] = []
    merged: dict[str, int] = {}
    for labels, _, obj in _holders(pods, jobs):
        if not _count(labels.get(GPUS_LABEL)):
            continue
        if labels.get(USER_LABEL) != user and labels.get(GROUP_LABEL) != group:
            continue
        job_id, named = labels.get(JOB_ID_LABEL), obj
        if job_id and "template" not in (obj.get("spec") or {}):  # a job's pod: ask its Job
            if by_id is None:
                by_id = {labels_of(j).get(JOB_ID_LABEL, ""): j for j in jobs}
            named = by_id.get(job_id, obj)
        holder = _holder(labels, obj, _job_name(named) if job_id else None)
        if job_id and job_id in merged:  # a sweep's runs: one holder, all their GPUs
            found[merged[job_id]] = replace(
                found[merged[job_id]], gpus=found[merged[job_id]].gpus + holder.gpus
            )
            continue
        if job_id:
            merged[job_id] = len(found)
        found.append(holder)
    return tuple(sorted(found, key=lambda h: (-h.gpus, h.kind, h.name)))


def describe_holders(holders: Iterable[Holder], user: str, *, most: int = 5) -> str:
    """The servers and jobs holding GPUs, in one phrase a researcher can act on: ``your
    server alice/ holds 1, your job long-train holds 3, bob's job sweep holds 2`` (the user's
    own first; ``user`` is the escaped ``gpulab.io/user`` value). At most ``most`` are named;
    the rest are summed. Empty when nothing holds GPUs."""
    ordered = sorted(holders, key=lambda h: (h.user != user, -h.gpus, h.kind, h.name))
    parts = []
    for h in ordered[:most]:
        whose = "your" if h.user == user else f"{h.owner}'s"
        what = f"{h.kind} {h.name}" + (" (starting)" if h.starting else "")
        parts.append(f"{whose} {what} holds {h.gpus}")
    rest = ordered[most:]
    if rest:
        held = sum(h.gpus for h in rest)
        parts.append(f"{len(rest)} more {'holds' if len(rest) == 1 else 'hold'} {held}")
    return ", ".join(parts)


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
        holders=gpu_holders(pods, jobs, user=user, group=group),
        counted_for=user,
    )
