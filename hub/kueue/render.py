"""The Kueue objects a policy stands for (pure): :func:`render_policy` for the objects of the
whole policy, :func:`render_user` for one user's queues (made on the user's first spawn or
submit). docs/scheduling.md draws the tree; in short:

* a ResourceFlavor per policy GPU type (``nodeLabels``: the type's node selector) and
  ``default`` for CPU and memory;
* WorkloadPriorityClasses: interactive (servers) > batch (jobs) > preemptible (jobs marked
  ``preemptible: true``);
* the root Cohort ``gpulab``, and under it a Cohort per group holding the group's quotas
  (``gpu.quota_group`` per GPU flavor of the group, ``cpu``/``memory.quota_group``), lending
  at most ``gpu.lend_idle`` GPUs per flavor and borrowing nothing, so ordinary work never
  exceeds the group's quota;
* per group, a ClusterQueue for preemptible jobs directly under the root: no quota of its own,
  borrowing at most ``gpu.borrow_max`` GPUs per flavor of what other groups lend;
* per user, a ClusterQueue in their group's Cohort (no quota of its own, borrowing at most
  ``gpu.quota_user`` GPUs per flavor from the group) and two LocalQueues in the users'
  namespace: ``<user>`` and ``<user>-preemptible``.

Every object carries gpulab's labels (``app.kubernetes.io/managed-by: gpulab``, component
``kueue``; a group's and a user's objects also ``gpulab.io/group`` / ``gpulab.io/user``), which
is how a sync finds the objects that are gpulab's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from ..names import username_label
from ..policy.document import Policy
from ..policy.model import GpuType, GroupPolicy
from ..policy.quantities import cpu_millicores
from ..workload.labels import (
    GPU_TYPE_LABEL,
    GROUP_LABEL,
    KUEUE_COMPONENT,
    USER_LABEL,
    USERNAME_ANNOTATION,
    base_labels,
)
from . import names

__all__ = [
    "KINDS",
    "NO_QUOTA_CPU",
    "NO_QUOTA_MEMORY",
    "PRIORITY_VALUES",
    "render_policy",
    "render_user",
]

Obj = dict[str, Any]

# kind -> (plural, namespaced): the REST names of the kinds gpulab renders.
KINDS: Final[dict[str, tuple[str, bool]]] = {
    "WorkloadPriorityClass": ("workloadpriorityclasses", False),
    "ResourceFlavor": ("resourceflavors", False),
    "Cohort": ("cohorts", False),
    "ClusterQueue": ("clusterqueues", False),
    "LocalQueue": ("localqueues", True),
}

PRIORITY_VALUES: Final[dict[str, int]] = {
    names.PRIORITY_INTERACTIVE: 1000,
    names.PRIORITY_BATCH: 100,
    names.PRIORITY_PREEMPTIBLE: 10,
}
_PRIORITY_TEXT: Final[dict[str, str]] = {
    names.PRIORITY_INTERACTIVE: "gpulab notebook servers: admitted first, never preempted",
    names.PRIORITY_BATCH: "gpulab jobs",
    names.PRIORITY_PREEMPTIBLE: (
        "gpulab jobs marked preemptible: may run on other groups' idle GPUs, "
        "and are preempted when those groups need them"
    ),
}

# A group without a CPU or memory quota gets one no cluster reaches: Kueue admits nothing a
# ClusterQueue's tree has no quota for, and gpulab renders without asking the cluster.
NO_QUOTA_CPU: Final = "100k"
NO_QUOTA_MEMORY: Final = "1Pi"
_NAMESPACE_LABEL: Final = "kubernetes.io/metadata.name"


# ----------------------------------------------------------------------------- helpers


def _meta(name: str, *, group: str | None = None, extra: dict[str, str] | None = None) -> Obj:
    labels = base_labels(KUEUE_COMPONENT)
    if group is not None:
        labels[GROUP_LABEL] = group
    labels.update(extra or {})
    return {"name": name, "labels": labels}


def _object(kind: str, metadata: Obj, **body: Any) -> Obj:
    return {"apiVersion": names.GROUP_VERSION, "kind": kind, "metadata": metadata, **body}


def _cpu(cpus: float) -> str | int:
    millis = cpu_millicores(cpus)
    return millis // 1000 if millis % 1000 == 0 else f"{millis}m"


def _quota(nominal: Any, *, borrowing: Any = None, lending: Any = None) -> Obj:
    out: Obj = {"nominalQuota": nominal}
    if borrowing is not None:
        out["borrowingLimit"] = borrowing
    if lending is not None:
        out["lendingLimit"] = lending
    return out


def _gpu_types(policy: Policy, group: GroupPolicy) -> list[GpuType]:
    """The group's GPU types that the policy defines, in the group's order."""
    return [policy.gpu_types[t] for t in group.gpu.types if t in policy.gpu_types]


def _resource_groups(types: Iterable[GpuType], cpu_memory: tuple[Obj, Obj], gpu: Obj) -> list[Obj]:
    """CPU and memory in flavor ``default``; then one group per GPU resource (a whole-GPU
    resource and each MIG or time-sliced one), each GPU type of it a flavor. Kueue wants each
    resource and each flavor in one resource group only: a GPU type names one resource."""
    cpu, memory = cpu_memory
    groups: list[Obj] = [
        {
            "coveredResources": ["cpu", "memory"],
            "flavors": [
                {
                    "name": names.DEFAULT_FLAVOR,
                    "resources": [{"name": "cpu", **cpu}, {"name": "memory", **memory}],
                }
            ],
        }
    ]
    by_resource: dict[str, list[GpuType]] = {}
    for t in types:
        by_resource.setdefault(t.resource, []).append(t)
    for resource, of_resource in by_resource.items():
        groups.append(
            {
                "coveredResources": [resource],
                "flavors": [
                    {"name": names.gpu_flavor(t.name), "resources": [{"name": resource, **gpu}]}
                    for t in of_resource
                ],
            }
        )
    return groups


def _namespace_selector(namespace: str) -> Obj:
    return {"matchLabels": {_NAMESPACE_LABEL: namespace}}


# ----------------------------------------------------------------------------- the policy


def _priority_classes() -> list[Obj]:
    return [
        _object("WorkloadPriorityClass", _meta(name), value=value, description=_PRIORITY_TEXT[name])
        for name, value in PRIORITY_VALUES.items()
    ]


def _flavors(policy: Policy) -> list[Obj]:
    out = [_object("ResourceFlavor", _meta(names.DEFAULT_FLAVOR), spec={})]
    for gpu_type in policy.gpu_types.values():
        spec: Obj = {}
        if gpu_type.node_selector:
            spec["nodeLabels"] = dict(gpu_type.node_selector)
        out.append(
            _object(
                "ResourceFlavor",
                _meta(names.gpu_flavor(gpu_type.name), extra={GPU_TYPE_LABEL: gpu_type.name}),
                spec=spec,
            )
        )
    return out


def _group_cohort(policy: Policy, group: GroupPolicy) -> Obj:
    gpu = group.gpu
    lends = gpu.lend_idle > 0
    # A group that lends GPUs lends CPU and memory too: a borrowed GPU needs both to run.
    cpu_memory_lending = None if lends else 0
    cpu = _cpu(group.cpu.quota_group) if group.cpu.quota_group is not None else NO_QUOTA_CPU
    memory = group.memory.quota_group or NO_QUOTA_MEMORY
    return _object(
        "Cohort",
        _meta(names.group_cohort(group.name), group=group.name),
        spec={
            "parentName": names.ROOT_COHORT,
            "resourceGroups": _resource_groups(
                _gpu_types(policy, group),
                (
                    _quota(cpu, borrowing=0, lending=cpu_memory_lending),
                    _quota(memory, borrowing=0, lending=cpu_memory_lending),
                ),
                _quota(gpu.quota_group, borrowing=0, lending=min(gpu.lend_idle, gpu.quota_group)),
            ),
        },
    )


def _cluster_queue(
    metadata: Obj,
    *,
    cohort: str,
    namespace: str,
    preemption: Obj,
    gpu_types: list[GpuType],
    gpu_borrowing: int,
) -> Obj:
    """A ClusterQueue with no quota of its own: it borrows from its cohort, GPUs at most
    ``gpu_borrowing`` per flavor (Kueue wants a nominal quota, 0 here, to borrow at all)."""
    return _object(
        "ClusterQueue",
        metadata,
        spec={
            "cohortName": cohort,
            "namespaceSelector": _namespace_selector(namespace),
            "queueingStrategy": "BestEffortFIFO",
            "preemption": preemption,
            "resourceGroups": _resource_groups(
                gpu_types, (_quota(0), _quota(0)), _quota(0, borrowing=gpu_borrowing)
            ),
        },
    )


def _borrow_queue(policy: Policy, group: GroupPolicy, namespace: str) -> Obj:
    return _cluster_queue(
        _meta(names.borrow_cluster_queue(group.name), group=group.name),
        cohort=names.ROOT_COHORT,
        namespace=namespace,
        # Preemptible jobs only borrow: they never preempt anything themselves.
        preemption={"withinClusterQueue": "Never", "reclaimWithinCohort": "Never"},
        gpu_types=_gpu_types(policy, group),
        gpu_borrowing=group.gpu.borrow_max,
    )


def render_policy(policy: Policy, namespace: str) -> list[Obj]:
    """The objects of the whole policy, in the order they can be created (what a queue names
    first). ``namespace``: the users' namespace, the only one whose workloads the queues take.
    """
    cohorts = [_object("Cohort", _meta(names.ROOT_COHORT), spec={})]
    queues = []
    for group in policy.groups.values():
        cohorts.append(_group_cohort(policy, group))
        queues.append(_borrow_queue(policy, group, namespace))
    return [*_priority_classes(), *_flavors(policy), *cohorts, *queues]


# ----------------------------------------------------------------------------- a user


def render_user(policy: Policy, user: str, group: str, namespace: str) -> list[Obj]:
    """One hub user's ClusterQueue (in ``group``, their quota group) and LocalQueues.
    KeyError when the policy has no such group."""
    quota_group = policy.groups[group]
    queue_names = names.user_queue_names(user, group)
    user_labels = {USER_LABEL: username_label(user)}

    def meta(name: str) -> Obj:
        out = _meta(name, group=group, extra=user_labels)
        out["annotations"] = {USERNAME_ANNOTATION: user}
        return out

    cluster_queue = _cluster_queue(
        meta(queue_names.cluster_queue),
        cohort=queue_names.cohort,
        namespace=namespace,
        # Only jobs marked preemptible are ever preempted: the group takes back what it lent
        # (the borrowers are other groups' preemptible jobs), but within the user's queue
        # priority orders admission only. A server that waits never evicts the user's own
        # running training job, which did not agree to be stopped.
        preemption={"withinClusterQueue": "Never", "reclaimWithinCohort": "Any"},
        gpu_types=_gpu_types(policy, quota_group),
        gpu_borrowing=quota_group.gpu.quota_user,
    )

    def local_queue(name: str, cluster_queue_name: str) -> Obj:
        metadata = meta(name)
        metadata["namespace"] = namespace
        return _object("LocalQueue", metadata, spec={"clusterQueue": cluster_queue_name})

    return [
        cluster_queue,
        local_queue(queue_names.local_queue, queue_names.cluster_queue),
        local_queue(queue_names.preemptible_local_queue, queue_names.borrow_cluster_queue),
    ]
