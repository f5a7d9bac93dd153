"""The spawner's adapter over :mod:`gpulab.hub.workload.pod`: (policy, entitlement, choice,
user) -> :class:`PodPlan`. Pure: nothing here does I/O.

A plan holds the shared :class:`~gpulab.hub.workload.pod.PodParts` and what only a notebook
server has (CPU/memory traits, environment, annotations). :class:`GPULabSpawner` sets from it
the few KubeSpawner traits KubeSpawner builds the container from (:meth:`PodPlan.spawner_traits`)
and finishes the pod from the same plan in ``modify_pod_hook``; :func:`enforce_plan_on_container`
caps the container's resources there, because ``extra_container_config`` (a trait that group
overrides may set) is applied by KubeSpawner after the resource traits.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gpulab.hub.kueue.names import PRIORITY_INTERACTIVE
from gpulab.hub.policy import Entitlement, Policy, ProfilePolicy, quantity_bytes
from gpulab.hub.workload.labels import IMAGE_ANNOTATION, PROFILE_ANNOTATION, SERVER_COMPONENT
from gpulab.hub.workload.pod import PodParts, pod_parts, queue_labels
from kubernetes_asyncio.client import V1LocalObjectReference, V1Toleration, V1Volume, V1VolumeMount
from kubespawner.utils import get_k8s_model

__all__ = [
    "PodPlan",
    "build_pod_plan",
    "deep_merge",
    "enforce_plan_on_container",
    "finish_pod",
    "merge_resources",
]


def deep_merge(*sources: Mapping[str, Any] | None) -> dict[str, Any]:
    """Merge mappings key by key, recursively; later sources win per key, never per dict.

    ``deep_merge({"a": {"x": 1}}, {"a": {"y": 2}}) == {"a": {"x": 1, "y": 2}}``. A ``None``
    value removes the key (as in KubeSpawner's overrides). Inputs are not modified.
    """
    out: dict[str, Any] = {}
    for src in sources:
        if not src:
            continue
        for key, value in src.items():
            if value is None:
                out.pop(key, None)
            elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = deep_merge(out[key], value)
            elif isinstance(value, Mapping):
                out[key] = deep_merge(value)
            else:
                out[key] = copy.deepcopy(value)
    return out


def merge_resources(*sources: Mapping[str, Any] | None) -> dict[str, str]:
    """Merge resource dicts (``extra_resource_limits`` from several options) per resource name,
    instead of letting the last option replace the whole dict (kubespawner#637). Values are
    normalised to strings; ``None`` removes a resource."""
    return {k: str(v) for k, v in deep_merge(*sources).items()}


@dataclass(frozen=True)
class PodPlan:
    """Everything gpulab decides about one notebook pod, built fresh for each start."""

    profile: str
    image: str
    parts: PodParts
    cpu_guarantee: float | None
    cpu_limit: float | None
    mem_guarantee: int | None  # bytes
    mem_limit: int | None  # bytes
    extra_resource_limits: dict[str, str]
    extra_resource_guarantees: dict[str, str]
    annotations: dict[str, str]
    env: dict[str, str]

    def spawner_traits(self) -> dict[str, Any]:
        """The KubeSpawner traits KubeSpawner builds the notebook container and names the home
        claim from (copies). The rest of the pod is finished from
        the plan in ``modify_pod_hook``."""
        return copy.deepcopy(
            {
                "image": self.image,
                "cpu_guarantee": self.cpu_guarantee,
                "cpu_limit": self.cpu_limit,
                "mem_guarantee": self.mem_guarantee,
                "mem_limit": self.mem_limit,
                "extra_resource_limits": self.extra_resource_limits,
                "extra_resource_guarantees": self.extra_resource_guarantees,
                "environment": self.env,
                "pvc_name": self.parts.home.name,
            }
        )


def build_pod_plan(
    *,
    policy: Policy,
    entitlement: Entitlement,
    profile: ProfilePolicy,
    image: str,
    gpus: int,
    username: str,
    gateway_url: str | None = None,
    culler_url: str | None = None,
    base_limits: Mapping[str, Any] | None = None,
    base_guarantees: Mapping[str, Any] | None = None,
    local_queue: str | None = None,
) -> PodPlan:
    """The plan for one start. The choice must already have passed admission; this function
    only builds.

    ``base_limits``/``base_guarantees`` are the admin's configured
    ``KubeSpawner.extra_resource_limits``/``_guarantees``: they are merged per resource with
    the GPU resource (the GPU resource name always comes from the plan).

    ``local_queue``: when Kueue admits servers, the user's LocalQueue: the pod joins it with
    the interactive priority class (Kueue gates it until admitted); None: gpulab admits it.
    """
    parts = pod_parts(
        policy=policy,
        username=username,
        group=entitlement.quota_group,
        component=SERVER_COMPONENT,
        profile=profile,
        gpus=gpus,
        gpu_type=profile.gpu_type,
    )
    if local_queue:
        queued = {**parts.labels, **queue_labels(local_queue, PRIORITY_INTERACTIVE)}
        parts = dataclasses.replace(parts, labels=queued)
    # Admin-configured extras, minus any GPU resource (only the plan decides GPUs).
    gpu_names = parts.all_gpu_resources
    base_l = {k: v for k, v in (base_limits or {}).items() if k not in gpu_names}
    base_g = {k: v for k, v in (base_guarantees or {}).items() if k not in gpu_names}

    env = {"GPULAB_IMAGE": image, "GPULAB_GPUS": str(gpus), "GPULAB_PROFILE": profile.name}
    if parts.gpu.gpu_type:
        env["GPULAB_GPU_TYPE"] = parts.gpu.gpu_type
    if gateway_url:
        env["GPULAB_GATEWAY_URL"] = gateway_url
    if culler_url:
        env["GPULAB_CULLER_URL"] = culler_url

    memory = profile.memory
    return PodPlan(
        profile=profile.name,
        image=image,
        parts=parts,
        cpu_guarantee=profile.cpu.guarantee,
        cpu_limit=profile.cpu.limit,
        mem_guarantee=quantity_bytes(memory.guarantee) if memory.guarantee else None,
        mem_limit=quantity_bytes(memory.limit) if memory.limit else None,
        extra_resource_limits=merge_resources(base_l, parts.gpu.resources),
        extra_resource_guarantees=merge_resources(base_g),
        annotations={PROFILE_ANNOTATION: profile.name, IMAGE_ANNOTATION: image},
        env=env,
    )


# ----------------------------------------------------------------------------- final caps


def _cpu_value(value: Any) -> float:
    s = str(value)
    return float(s[:-1]) / 1000 if s.endswith("m") else float(s)


def enforce_plan_on_container(
    plan: PodPlan, limits: Mapping[str, Any] | None, requests: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Cap the notebook container's resources to the plan, whatever set them
    (``extra_container_config``, which KubeSpawner applies after the resource traits).

    GPU resources: exactly the plan's (any other GPU resource name of the policy is removed).
    CPU and memory: at most the plan's limits; a request above the limit is lowered to it.
    Returns (limits, requests, notes) where notes say what was changed.
    """
    gpu = plan.parts.gpu
    lim = dict(limits or {})
    req = dict(requests or {})
    notes: list[str] = []
    for name in plan.parts.all_gpu_resources | set(gpu.resources):
        for where, d in (("limit", lim), ("request", req)):
            if name == gpu.resource:
                continue
            if name in d:
                notes.append(f"removed GPU {where} {name}={d[name]} (not in the plan)")
                d.pop(name)
    if gpu.resource:
        want = str(gpu.gpus)
        if str(lim.get(gpu.resource)) != want:
            if gpu.resource in lim:
                notes.append(f"GPU limit {gpu.resource}={lim[gpu.resource]} -> {want}")
            lim[gpu.resource] = want
        if gpu.resource in req and str(req[gpu.resource]) != want:
            notes.append(f"GPU request {gpu.resource}={req[gpu.resource]} -> {want}")
            req[gpu.resource] = want
    caps = (("cpu", plan.cpu_limit, _cpu_value), ("memory", plan.mem_limit, quantity_bytes))
    for name, cap, value in caps:
        if cap is None:
            continue
        shown = f"{cap:g}" if name == "cpu" else str(cap)
        if name not in lim or value(lim[name]) > cap:
            if name in lim:
                notes.append(f"{name} limit {lim[name]} -> {shown}")
            lim[name] = cap
        if name in req and value(req[name]) > cap:
            notes.append(f"{name} request {req[name]} -> {shown}")
            req[name] = cap
    return lim, req, notes


# ----------------------------------------------------------------------------- the finished pod


def _field(obj: Any, key: str, attr: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, attr, None)


def _by_key(current: list[Any] | None, mine: list[dict[str, Any]], key: str, model: Any) -> list:
    """``current`` entries that none of ``mine`` replaces (same ``key``), then ``mine``."""
    attr = "mount_path" if key == "mountPath" else key
    taken = {m[key] for m in mine}
    kept = [c for c in current or [] if _field(c, key, attr) not in taken]
    return kept + [get_k8s_model(model, copy.deepcopy(m)) for m in mine]


def finish_pod(plan: PodPlan, pod: Any, policy: Policy) -> list[str]:
    """Put the plan's parts into KubeSpawner's pod (a ``V1Pod``, changed in place): home,
    datasets and ``/dev/shm`` (the admin's other volumes kept), the GPU type's placement (no
    other GPU type's node selector), the restricted security contexts, no service account
    token, gpulab's labels, annotations and pull secrets, and the resources capped to the plan.
    Returns notes on what the caps changed."""
    parts, spec = plan.parts, pod.spec
    container = next(c for c in spec.containers if c.name == "notebook")
    spec.volumes = _by_key(spec.volumes, parts.volumes, "name", V1Volume)
    container.volume_mounts = _by_key(
        container.volume_mounts, parts.volume_mounts, "mountPath", V1VolumeMount
    )
    other_types = {k for t in policy.gpu_types.values() for k in t.node_selector}
    selector = {k: v for k, v in (spec.node_selector or {}).items() if k not in other_types}
    spec.node_selector = {**selector, **parts.gpu.node_selector} or None
    spec.tolerations = [get_k8s_model(V1Toleration, t) for t in parts.gpu.tolerations] or None
    spec.security_context = {**(spec.security_context or {}), **parts.pod_security_context}
    container.security_context = {
        **(container.security_context or {}),
        **parts.container_security_context,
    }
    spec.automount_service_account_token = False
    spec.service_account_name = None
    spec.image_pull_secrets = [
        V1LocalObjectReference(name=name) for name in parts.image_pull_secrets
    ] or None
    pod.metadata.labels = {**(pod.metadata.labels or {}), **parts.labels}
    pod.metadata.annotations = {**(pod.metadata.annotations or {}), **plan.annotations}
    limits, requests, notes = enforce_plan_on_container(
        plan, container.resources.limits, container.resources.requests
    )
    container.resources.limits, container.resources.requests = limits, requests
    return notes
