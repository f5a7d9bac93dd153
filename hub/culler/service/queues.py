"""The dashboard's queues per quota group (pure): Kueue's Workloads and LocalQueues as the
culler's watch caches hold them, and whether Kueue is installed at all.

A Workload's quota group is its LocalQueue's ``gpulab.io/group`` label (gpulab makes every
user's LocalQueues with it, :mod:`gpulab.hub.kueue`); a Workload borrows other groups' idle GPUs
when its LocalQueue points at its group's borrowing ClusterQueue (the queue of preemptible
jobs). Counting itself is :func:`gpulab.hub.workload.queueing.group_queues`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...kueue.detect import KueueStatus
from ...kueue.names import borrow_cluster_queue
from ...workload.labels import GROUP_LABEL, labels_of
from ...workload.queueing import group_queues

__all__ = ["QueueObjects", "QueuesSeen", "queues_overview"]

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class QueuesSeen:
    """What the culler's watch caches hold of Kueue: whether it is installed (None: not asked
    yet), its Workloads, and its LocalQueues by ``namespace/name``."""

    status: KueueStatus | None
    workloads: list[Obj]
    local_queues: Mapping[str, Obj]


QueueObjects = Callable[[], QueuesSeen]


def _local_queue_of(wl: Obj, local_queues: Mapping[str, Obj]) -> Obj | None:
    namespace = (wl.get("metadata") or {}).get("namespace", "")
    return local_queues.get(f"{namespace}/{(wl.get('spec') or {}).get('queueName', '')}")


def queues_overview(seen: QueuesSeen | None, gpu_resources: Iterable[str]) -> dict[str, Any]:
    """``{"kueue": {"available", "message"}, "groups": [...]}`` for the dashboard and its
    JSON (``seen`` None: no Kubernetes access)."""
    status = seen.status if seen is not None else None
    if status is None or not status.available:
        if status is not None:
            message = status.message
        elif seen is None:
            message = "the culler has no cluster access: whether Kueue is installed is not known"
        else:
            message = "the culler has not yet asked whether Kueue is installed"
        return {"kueue": {"available": False, "message": message}, "groups": []}
    assert seen is not None
    by_key = seen.local_queues

    def group_of(wl: Obj) -> str | None:
        queue = _local_queue_of(wl, by_key)
        return labels_of(queue).get(GROUP_LABEL) if queue else None

    def borrowing(wl: Obj) -> bool:
        queue = _local_queue_of(wl, by_key)
        group = labels_of(queue).get(GROUP_LABEL) if queue else None
        target = ((queue or {}).get("spec") or {}).get("clusterQueue")
        return bool(group) and target == borrow_cluster_queue(group or "")

    rows = group_queues(seen.workloads, group_of, borrowing, gpu_resources)
    return {
        "kueue": {"available": True, "message": status.message},
        "groups": [r.to_json() for r in rows],
    }
