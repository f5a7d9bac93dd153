"""GPUs per node for the dashboard (pure): free and used per node and GPU type, and where the
free GPUs are too scattered for a larger request ("3 free, but no node has 2").

Inputs are the raw objects of the culler's watch caches (nodes; gpulab's pods), so a render
costs no API call. Used GPUs are what live gpulab pods bound to the node request; a node's
capacity is its ``allocatable`` GPU resource.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from gpulab.hub.workload.holdings import is_live_pod

__all__ = ["GpuNode", "TypeSpread", "node_gpus"]

GPU_SUFFIX = "/gpu"  # nvidia.com/gpu, amd.com/gpu
PRODUCT_LABEL = "nvidia.com/gpu.product"  # GPU feature discovery's label, as the policy uses


def _int(value: Any) -> int:
    try:
        return max(0, int(str(value)))
    except (TypeError, ValueError):
        return 0


def _pod_gpus(pod: Mapping[str, Any]) -> int:
    """GPUs a pod takes on its node (requests, else limits; init containers by their max)."""

    def one(container: Mapping[str, Any]) -> int:
        res = container.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        names = {k for k in (*req, *lim) if k.endswith(GPU_SUFFIX)}
        return sum(_int(req.get(n, lim.get(n))) for n in names)

    spec = pod.get("spec") or {}
    main = sum(one(c) for c in spec.get("containers") or [])
    return max([main, *(one(c) for c in spec.get("initContainers") or [])])


def _ready(node: Mapping[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = [c for c in conditions if c.get("type") == "Ready"]
    return not ready or ready[0].get("status") == "True"


@dataclass(frozen=True)
class GpuNode:
    name: str
    gpu_type: str
    capacity: int
    used: int
    ready: bool

    @property
    def free(self) -> int:
        return max(0, self.capacity - self.used) if self.ready else 0

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "free": self.free}


@dataclass
class TypeSpread:
    """One GPU type across its nodes: how much is free and the largest request that fits."""

    gpu_type: str
    capacity: int = 0
    used: int = 0
    free: int = 0
    largest_free_on_a_node: int = 0
    largest_node: int = 0
    nodes: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def fragmentation_note(gpu_type: str, free: int, largest: int, node_size: int) -> str | None:
    """Words for free GPUs that a request one node could hold cannot get: "3 a100 GPUs free,
    but no node has 2 free (at most 1 on one node)". None when the free GPUs sit on one node,
    or when the next size up would not fit on any node even empty (``node_size``: the largest
    node's GPUs): that is the nodes' size, not fragmentation."""
    if free <= 1 or largest >= free or largest + 1 > node_size:
        return None
    unit = "GPU" if free == 1 else "GPUs"
    return (
        f"{free} {gpu_type or 'untyped'} {unit} free, but no node has {largest + 1} free "
        f"(at most {largest} on one node)"
    )


def node_gpus(
    nodes: Iterable[Mapping[str, Any]],
    pods: Iterable[Mapping[str, Any]],
    type_names: Mapping[str, str],
) -> tuple[list[GpuNode], list[TypeSpread]]:
    """Nodes with GPUs (by name) and one :class:`TypeSpread` per GPU type (by name).
    ``type_names``: the node product label -> the policy's GPU type name."""
    used: dict[str, int] = {}
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        if node_name and is_live_pod(pod):
            n = _pod_gpus(pod)
            if n:
                used[node_name] = used.get(node_name, 0) + n
    out: list[GpuNode] = []
    for node in nodes:
        md = node.get("metadata") or {}
        alloc = (node.get("status") or {}).get("allocatable") or {}
        capacity = sum(_int(v) for k, v in alloc.items() if k.endswith(GPU_SUFFIX))
        if capacity <= 0:
            continue
        product = (md.get("labels") or {}).get(PRODUCT_LABEL, "")
        name = str(md.get("name", ""))
        out.append(
            GpuNode(
                name, type_names.get(product, product), capacity, used.get(name, 0), _ready(node)
            )
        )
    out.sort(key=lambda n: (n.gpu_type, n.name))
    spreads: dict[str, TypeSpread] = {}
    for n in out:
        s = spreads.setdefault(n.gpu_type, TypeSpread(n.gpu_type))
        s.capacity += n.capacity
        s.used += n.used
        s.free += n.free
        s.largest_free_on_a_node = max(s.largest_free_on_a_node, n.free)
        s.largest_node = max(s.largest_node, n.capacity)
        s.nodes += 1
    for s in spreads.values():
        note = fragmentation_note(s.gpu_type, s.free, s.largest_free_on_a_node, s.largest_node)
        if note:
            s.notes.append(note)
    return out, [spreads[t] for t in sorted(spreads)]
