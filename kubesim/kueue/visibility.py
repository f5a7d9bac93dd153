"""Kueue's visibility API: the pending workloads of a ClusterQueue or LocalQueue, in order.

``GET /apis/visibility.kueue.x-k8s.io/v1beta2/clusterqueues/{cq}/pendingworkloads`` and
``GET /apis/visibility.kueue.x-k8s.io/v1beta2/namespaces/{ns}/localqueues/{lq}/pendingworkloads``
answer a ``PendingWorkloadsSummary``: each waiting Workload with its ``priority``,
``localQueueName``, ``positionInClusterQueue`` and ``positionInLocalQueue`` (0-based, the
order the engine admits in: priority, then queue time), paged with ``limit`` (default 1000)
and ``offset``, as upstream's visibility server does.
"""

from __future__ import annotations

from typing import Any

from gpulab.kubesim.errors import bad_request, not_found
from gpulab.kubesim.kueue.controller import KueueController
from gpulab.kubesim.kueue.crds import GROUP, VISIBILITY_GROUP
from gpulab.kubesim.store import ResourceType, resource

VERSION = "v1beta2"
SUBRESOURCE = "pendingworkloads"
# What discovery lists for the group (get only: the API answers, it stores nothing).
TYPES = (
    ResourceType(
        VISIBILITY_GROUP, VERSION, "ClusterQueue", "clusterqueues", False, frozenset({SUBRESOURCE})
    ),  # fmt: skip
    ResourceType(
        VISIBILITY_GROUP, VERSION, "LocalQueue", "localqueues", True, frozenset({SUBRESOURCE})
    ),  # fmt: skip
)


def _int(query: Any, name: str, default: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name}: must be a non-negative integer, got {raw!r}") from None
    if value < 0:
        raise bad_request(f"{name}: must be a non-negative integer, got {raw!r}")
    return value


def pending_workloads(
    kueue: KueueController,
    *,
    cluster_queue: str | None = None,
    namespace: str | None = None,
    local_queue: str | None = None,
    query: Any = None,
) -> dict[str, Any]:
    store = kueue.store
    query = query or {}
    limit, offset = _int(query, "limit", 1000), _int(query, "offset", 0)
    if local_queue is not None:
        lq = store.get(resource("localqueues", GROUP), namespace, local_queue)
        if lq is None:
            raise not_found("localqueues", local_queue, GROUP)
        cluster_queue = str((lq.get("spec") or {}).get("clusterQueue", ""))
    elif store.get(resource("clusterqueues", GROUP), None, cluster_queue or "") is None:
        raise not_found("clusterqueues", cluster_queue or "", GROUP)
    items: list[dict[str, Any]] = []
    per_lq: dict[tuple[str, str], int] = {}
    for position, wl in enumerate(kueue.engine.pending(cluster_queue or "")):
        ns, _, name = wl.key.partition("/")
        obj = store.get(resource("workloads", GROUP), ns, name)
        if obj is None:
            continue
        lq_name = str((obj.get("spec") or {}).get("queueName", ""))
        in_lq = per_lq.get((ns, lq_name), 0)
        per_lq[(ns, lq_name)] = in_lq + 1
        if local_queue is not None and (ns, lq_name) != (namespace, local_queue):
            continue
        md = obj["metadata"]
        items.append(
            {
                "metadata": {
                    "name": md["name"],
                    "namespace": ns,
                    "creationTimestamp": md.get("creationTimestamp"),
                    "ownerReferences": md.get("ownerReferences") or [],
                },
                "priority": wl.priority,
                "localQueueName": lq_name,
                "positionInClusterQueue": position,
                "positionInLocalQueue": in_lq,
            }
        )
    return {
        "kind": "PendingWorkloadsSummary",
        "apiVersion": f"{VISIBILITY_GROUP}/{VERSION}",
        "metadata": {"creationTimestamp": None},
        "items": items[offset : offset + limit],
    }


__all__ = ["SUBRESOURCE", "TYPES", "VERSION", "pending_workloads"]
