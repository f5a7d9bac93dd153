"""Reading Kueue Workloads (pure): where a queued server or job stands, and a group's queues.

The inputs are raw ``kueue.x-k8s.io/v1beta2`` Workload dicts as a watch cache holds them. A
Workload is *pending* until Kueue reserves quota for it (condition ``QuotaReserved``),
*admitted* once ``Admitted`` is true, and *finished* once ``Finished`` is true (or it is being
deleted). A Workload Kueue evicted to make room for other work carries ``Evicted`` with reason
``Preempted`` (and ``Preempted``), and is pending again until it is readmitted.

A Workload names its owner (the Pod of a server, the Job of a job) in ``ownerReferences``; the
quota group a Workload is charged to is its owner's ``gpulab.io/group`` label, which callers
resolve (:data:`GroupOf`), since the Workload itself does not carry the owner's labels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .labels import KUEUE_ADMISSION_GATE

__all__ = [
    "GroupOf",
    "GroupQueues",
    "QueueStanding",
    "WorkloadState",
    "group_queues",
    "kueue_gated",
    "owner_key",
    "pending_reason",
    "queue_standing",
    "was_preempted",
    "workload_gpus",
    "workload_of",
    "workload_state",
]

WorkloadState = Literal["pending", "admitted", "finished"]
OwnerKey = tuple[str, str, str]  # (kind, namespace, name)
GroupOf = Callable[[Mapping[str, Any]], "str | None"]


def _conditions(wl: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    conds = (wl.get("status") or {}).get("conditions") or []
    return {c.get("type", ""): c for c in conds if isinstance(c, Mapping)}


def _true(wl: Mapping[str, Any], kind: str) -> bool:
    return (_conditions(wl).get(kind) or {}).get("status") == "True"


def kueue_gated(pod: Mapping[str, Any]) -> bool:
    """The Pod waits for Kueue's admission (its scheduling gate is still on)."""
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    return any(isinstance(g, Mapping) and g.get("name") == KUEUE_ADMISSION_GATE for g in gates)


def workload_state(wl: Mapping[str, Any]) -> WorkloadState:
    """Pending (waiting for quota, also after an eviction), admitted, or finished."""
    if _true(wl, "Finished") or (wl.get("metadata") or {}).get("deletionTimestamp"):
        return "finished"
    if _true(wl, "Admitted") and not _true(wl, "Evicted"):
        return "admitted"
    return "pending"


def was_preempted(wl: Mapping[str, Any]) -> bool:
    """Kueue preempted it at least once (evicted for other work; requeued since or not)."""
    conds = _conditions(wl)
    evicted = conds.get("Evicted") or {}
    if evicted.get("status") == "True" and evicted.get("reason") == "Preempted":
        return True
    if (conds.get("Preempted") or {}).get("status") == "True":
        return True
    return int(((wl.get("status") or {}).get("requeueState") or {}).get("count") or 0) > 0


def pending_reason(wl: Mapping[str, Any]) -> str:
    """Kueue's own words for why it has not reserved quota yet ("" when it said nothing)."""
    cond = _conditions(wl).get("QuotaReserved") or {}
    return str(cond.get("message") or "") if cond.get("status") != "True" else ""


def _int(value: Any) -> int:
    try:
        return max(0, int(str(value)))
    except (TypeError, ValueError):
        return 0


def workload_gpus(wl: Mapping[str, Any], resources: Iterable[str]) -> int:
    """GPUs (of any of ``resources``) the Workload asks for: per pod set, its count times what
    each pod's containers request (init containers by their maximum, as the scheduler counts)."""
    names = set(resources)
    total = 0
    for pod_set in (wl.get("spec") or {}).get("podSets") or []:
        spec = ((pod_set.get("template") or {}).get("spec")) or {}

        def one(container: Mapping[str, Any]) -> int:
            res = container.get("resources") or {}
            asked = {**(res.get("limits") or {}), **(res.get("requests") or {})}
            return sum(_int(asked.get(r)) for r in names)

        main = sum(one(c) for c in spec.get("containers") or [])
        init = max((one(c) for c in spec.get("initContainers") or []), default=0)
        total += max(main, init) * max(1, _int(pod_set.get("count") or 1))
    return total


def owner_key(wl: Mapping[str, Any]) -> OwnerKey | None:
    """(kind, namespace, name) of the Workload's controlling owner (a Pod or a Job)."""
    meta = wl.get("metadata") or {}
    refs = meta.get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if not ref:
        return None
    return str(ref.get("kind", "")), str(meta.get("namespace", "")), str(ref.get("name", ""))


def workload_of(
    workloads: Iterable[Mapping[str, Any]], kind: str, namespace: str, name: str
) -> Mapping[str, Any] | None:
    """The live Workload Kueue made for that Pod or Job (None: not made yet)."""
    key = (kind, namespace, name)
    found = [w for w in workloads if owner_key(w) == key and workload_state(w) != "finished"]
    return found[0] if found else None


def _created(wl: Mapping[str, Any]) -> str:
    return str((wl.get("metadata") or {}).get("creationTimestamp") or "")


def _priority(wl: Mapping[str, Any]) -> int:
    try:
        return int((wl.get("spec") or {}).get("priority") or 0)
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class QueueStanding:
    """Where one pending Workload stands in its quota group: the pending work Kueue considers
    first (higher priority, or the same priority and older) and the group's admitted GPUs."""

    ahead: int
    group_gpus_admitted: int
    reason: str  # Kueue's words (QuotaReserved's message), "" when none yet


def queue_standing(
    mine: Mapping[str, Any],
    workloads: Iterable[Mapping[str, Any]],
    group_of: GroupOf,
    gpu_resources: Iterable[str],
) -> QueueStanding:
    """``mine``'s standing among ``workloads`` of the same quota group (``group_of``)."""
    resources = list(gpu_resources)
    group = group_of(mine)
    me = (-_priority(mine), _created(mine))
    uid = (mine.get("metadata") or {}).get("uid")
    ahead = admitted = 0
    for wl in workloads:
        if (wl.get("metadata") or {}).get("uid") == uid or group_of(wl) != group:
            continue
        state = workload_state(wl)
        if state == "admitted":
            admitted += workload_gpus(wl, resources)
        elif state == "pending" and (-_priority(wl), _created(wl)) < me:
            ahead += 1
    return QueueStanding(ahead=ahead, group_gpus_admitted=admitted, reason=pending_reason(mine))


@dataclass(frozen=True)
class GroupQueues:
    """A quota group's queues on the dashboard: Workloads pending and admitted, GPUs admitted
    through its borrowing queue (other groups' idle GPUs), and its work preempted so far."""

    group: str
    pending: int = 0
    admitted: int = 0
    gpus_admitted: int = 0
    gpus_borrowed: int = 0
    preempted: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "pending": self.pending,
            "admitted": self.admitted,
            "gpus_admitted": self.gpus_admitted,
            "gpus_borrowed": self.gpus_borrowed,
            "preempted": self.preempted,
        }


_COUNTS = ("pending", "admitted", "gpus_admitted", "gpus_borrowed", "preempted")


def group_queues(
    workloads: Iterable[Mapping[str, Any]],
    group_of: GroupOf,
    borrowing: Callable[[Mapping[str, Any]], bool],
    gpu_resources: Iterable[str],
) -> list[GroupQueues]:
    """Per quota group (sorted by name): pending, admitted and preempted Workloads (finished
    ones left out), GPUs admitted, and of those the GPUs admitted through a borrowing queue
    (``borrowing``: the Workload joined a group's queue for preemptible work)."""
    resources = list(gpu_resources)
    counts: dict[str, dict[str, int]] = {}
    for wl in workloads:
        state = workload_state(wl)
        group = group_of(wl)
        if state == "finished" or not group:
            continue
        c = counts.setdefault(group, dict.fromkeys(_COUNTS, 0))
        if was_preempted(wl):
            c["preempted"] += 1
        if state == "pending":
            c["pending"] += 1
            continue
        gpus = workload_gpus(wl, resources)
        c["admitted"] += 1
        c["gpus_admitted"] += gpus
        if borrowing(wl):
            c["gpus_borrowed"] += gpus
    return [GroupQueues(group=g, **c) for g, c in sorted(counts.items())]
