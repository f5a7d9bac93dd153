"""Counting GPUs from the cluster's objects (pure), for quota checks and the spawn page.

The inputs are the raw API dicts a watch-backed cache holds (:mod:`gpulab.spawner.cluster`):
never the spawner's memory of what it started. What a user and their quota group hold is
counted by :func:`gpulab.hub.workload.holdings.count_usage`, the rule the jobs gateway uses
too (re-exported here for the cluster view). :func:`gpu_availability` computes free GPUs per
GPU type from nodes and all pods bound to them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gpulab.hub.policy import GpuType
from gpulab.hub.workload.holdings import count_usage, is_live_pod
from gpulab.hub.workload.labels import GPU_TYPE_LABEL

from .form import GpuTypeAvailability

__all__ = [
    "count_usage",
    "gpu_availability",
    "is_live_pod",
    "pod_gpu_request",
    "waiting_for_gpus",
]


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _int(value: Any) -> int:
    try:
        return max(0, int(str(value)))
    except (TypeError, ValueError):
        return 0


def pod_gpu_request(pod: Mapping[str, Any], resource: str) -> int:
    """GPUs of ``resource`` a pod takes on its node (requests, else limits; init containers
    count by their maximum, as the scheduler does)."""

    def one(container: Mapping[str, Any]) -> int:
        res = container.get("resources") or {}
        value = (res.get("requests") or {}).get(resource)
        if value is None:
            value = (res.get("limits") or {}).get(resource)
        return _int(value)

    spec = pod.get("spec") or {}
    main = sum(one(c) for c in spec.get("containers") or [])
    init = max((one(c) for c in spec.get("initContainers") or []), default=0)
    return max(main, init)


def _node_ready(node: Mapping[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _waiting(pod: Mapping[str, Any]) -> bool:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    return not spec.get("nodeName") and (status.get("phase") or "Pending") == "Pending"


def waiting_for_gpus(
    pods: Iterable[Mapping[str, Any]],
    gpu_type: str,
    *,
    before: str | None = None,
    exclude: str | None = None,
) -> int:
    """gpulab pods of ``gpu_type`` (``gpulab.io/gpu-type``) waiting for GPUs: Pending and not
    yet bound to a node; with ``before`` (a creationTimestamp), only those created earlier:
    the spawns ahead of that one; the pod named ``exclude`` (that one) never counts."""
    count = 0
    for pod in pods:
        if (_labels(pod).get(GPU_TYPE_LABEL) != gpu_type) or not _waiting(pod):
            continue
        meta = pod.get("metadata") or {}
        if exclude is not None and meta.get("name") == exclude:
            continue
        created = meta.get("creationTimestamp") or ""
        if before is None or created < before:
            count += 1
    return count


def gpu_availability(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    gpu_types: Mapping[str, GpuType],
) -> dict[str, GpuTypeAvailability]:
    """Free GPUs per GPU type: nodes whose labels match the type's node selector and that
    advertise its resource; minus what live pods bound to them request; and how many pods of
    the type wait for GPUs."""
    node_list = [n for n in nodes if _node_ready(n)]
    pods = list(pods)
    used: dict[tuple[str, str], int] = {}
    resources = {t.resource for t in gpu_types.values()}
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name or not is_live_pod(pod):
            continue
        for r in resources:
            n = pod_gpu_request(pod, r)
            if n:
                used[(node_name, r)] = used.get((node_name, r), 0) + n
    out: dict[str, GpuTypeAvailability] = {}
    for name, gtype in gpu_types.items():
        total = free = best = largest = count = 0
        for node in node_list:
            labels = _labels(node)
            if any(labels.get(k) != v for k, v in gtype.node_selector.items()):
                continue
            alloc = _int(((node.get("status") or {}).get("allocatable") or {}).get(gtype.resource))
            if alloc <= 0:
                continue
            node_name = (node.get("metadata") or {}).get("name", "")
            node_free = max(0, alloc - used.get((node_name, gtype.resource), 0))
            total += alloc
            free += node_free
            best = max(best, node_free)
            largest = max(largest, alloc)
            count += 1
        out[name] = GpuTypeAvailability(
            gpu_type=name,
            total=total,
            free=free,
            max_free_on_node=best,
            nodes=count,
            max_on_node=largest,
            waiting=waiting_for_gpus(pods, name),
        )
    return out
