"""Pure pod overrides: (policy, entitlement, choice, user) -> :class:`PodPlan`.

Nothing here does I/O. :class:`GPULabSpawner` builds a fresh plan on every start and applies
it to KubeSpawner's traits (after resetting them to their configured values), then enforces
the plan once more on the finished pod manifest (:func:`enforce_plan_on_container`), so that
neither a previous profile (kubespawner#546, jupyterhub#3592) nor a group override
(``group_overrides`` run before profile overrides) can widen what the policy grants.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gpulab.hub.names import escape_username
from gpulab.hub.policy import Entitlement, Policy, ProfilePolicy, quantity_bytes
from gpulab.hub.workload.labels import (
    GPU_TYPE_LABEL,
    GPUS_LABEL,
    GROUP_LABEL,
    IMAGE_ANNOTATION,
    PROFILE_ANNOTATION,
    SERVER_COMPONENT,
    USER_LABEL,
    base_labels,
)
from gpulab.hub.workload.security import (
    CONTAINER_SECURITY_CONTEXT,
    FS_GROUP,
    POD_SECURITY_CONTEXT,
    RUN_AS_GROUP,
    RUN_AS_USER,
)

__all__ = [
    "CONTAINER_SECURITY_CONTEXT",
    "HOME_VOLUME",
    "POD_SECURITY_CONTEXT",
    "SHM_VOLUME",
    "HomeClaim",
    "PodPlan",
    "build_pod_plan",
    "deep_merge",
    "enforce_plan_on_container",
    "gpu_resource_names",
    "merge_resources",
]

HOME_VOLUME = "home"
SHM_VOLUME = "dshm"
SHM_PATH = "/dev/shm"


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


def gpu_resource_names(policy: Policy) -> frozenset[str]:
    """Every extended resource name that some GPU type of the policy uses."""
    return frozenset(t.resource for t in policy.gpu_types.values())


@dataclass(frozen=True)
class HomeClaim:
    """The user's home PVC (created if missing, never deleted by gpulab)."""

    name: str
    storage_class: str | None
    size: str
    access_mode: str
    mount_path: str


@dataclass(frozen=True)
class PodPlan:
    """Everything gpulab decides about one notebook pod, built fresh for each start."""

    profile: str
    image: str
    gpus: int
    gpu_type: str | None
    gpu_resource: str | None
    cpu_guarantee: float | None
    cpu_limit: float | None
    mem_guarantee: int | None  # bytes
    mem_limit: int | None  # bytes
    extra_resource_limits: dict[str, str]
    extra_resource_guarantees: dict[str, str]
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]
    home: HomeClaim
    volumes: list[dict[str, Any]]
    volume_mounts: list[dict[str, Any]]
    pod_security_context: dict[str, Any]
    container_security_context: dict[str, Any]
    labels: dict[str, str]
    annotations: dict[str, str]
    env: dict[str, str]
    shm_size: str
    image_pull_secrets: list[str]
    all_gpu_resources: frozenset[str] = field(default_factory=frozenset)

    def spawner_traits(self) -> dict[str, Any]:
        """KubeSpawner trait name -> value, for the traits gpulab manages (copies)."""
        return copy.deepcopy(
            {
                "image": self.image,
                "cpu_guarantee": self.cpu_guarantee,
                "cpu_limit": self.cpu_limit,
                "mem_guarantee": self.mem_guarantee,
                "mem_limit": self.mem_limit,
                "extra_resource_limits": self.extra_resource_limits,
                "extra_resource_guarantees": self.extra_resource_guarantees,
                "node_selector": self.node_selector,
                "tolerations": self.tolerations,
                "volumes": self.volumes,
                "volume_mounts": self.volume_mounts,
                "pod_security_context": self.pod_security_context,
                "container_security_context": self.container_security_context,
                "uid": RUN_AS_USER,
                "gid": RUN_AS_GROUP,
                "fs_gid": FS_GROUP,
                "privileged": False,
                "allow_privilege_escalation": False,
                "automount_service_account_token": False,
                "service_account": None,
                "extra_labels": self.labels,
                "extra_annotations": self.annotations,
                "environment": self.env,
                "image_pull_secrets": self.image_pull_secrets,
                "pvc_name": self.home.name,
                "storage_class": self.home.storage_class or "",
                "storage_capacity": self.home.size,
                "storage_access_modes": [self.home.access_mode],
            }
        )


def _profile_labels(
    username: str, quota_group: str, gpus: int, gpu_type: str | None
) -> dict[str, str]:
    labels = {
        **base_labels(SERVER_COMPONENT),
        USER_LABEL: escape_username(username),
        GROUP_LABEL: quota_group,
        GPUS_LABEL: str(gpus),
    }
    if gpu_type:
        labels[GPU_TYPE_LABEL] = gpu_type
    return labels


def _pull_secrets(policy: Policy) -> list[str]:
    harbor = policy.catalogue.harbor
    if harbor is not None and harbor.pull_secret:
        return [harbor.pull_secret]
    return []


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
) -> PodPlan:
    """The plan for one start. The choice must already have passed
    :func:`gpulab.spawner.checks.check_spawn_request`; this function only builds.

    ``base_limits``/``base_guarantees`` are the admin's configured
    ``KubeSpawner.extra_resource_limits``/``_guarantees``: they are merged per resource with
    the GPU resource (the GPU resource name always comes from the plan).
    """
    gpu_type = profile.gpu_type if gpus > 0 else None
    gtype = policy.gpu_types.get(gpu_type) if gpu_type else None
    resource = gtype.resource if gtype else None
    all_gpu = gpu_resource_names(policy)

    # Admin-configured extras, minus any GPU resource (only the plan decides GPUs).
    base_l = {k: v for k, v in (base_limits or {}).items() if k not in all_gpu}
    base_g = {k: v for k, v in (base_guarantees or {}).items() if k not in all_gpu}
    gpu_part = {resource: str(gpus)} if resource else {}
    limits = merge_resources(base_l, gpu_part)
    guarantees = merge_resources(base_g)

    node_selector = dict(gtype.node_selector) if gtype else {}
    tolerations = gtype.k8s_tolerations() if gtype else []

    home_cfg = policy.storage.home
    escaped = escape_username(username)
    home = HomeClaim(
        name=home_cfg.claim_name(escaped),
        storage_class=home_cfg.storage_class,
        size=home_cfg.size,
        access_mode=home_cfg.access_mode,
        mount_path=home_cfg.mount_path,
    )
    shm_size = profile.shm_size or ("1Gi" if profile.gpu_type else "64Mi")
    volumes: list[dict[str, Any]] = [
        {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": home.name}},
        {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm_size}},
    ]
    mounts: list[dict[str, Any]] = [
        {"name": HOME_VOLUME, "mountPath": home.mount_path},
        {"name": SHM_VOLUME, "mountPath": SHM_PATH},
    ]
    for ds in policy.storage.datasets:
        vol_name = f"dataset-{ds.name}"
        volumes.append(
            {
                "name": vol_name,
                "persistentVolumeClaim": {"claimName": ds.claim, "readOnly": ds.read_only},
            }
        )
        mount: dict[str, Any] = {
            "name": vol_name,
            "mountPath": ds.mount_path,
            "readOnly": ds.read_only,
        }
        if ds.sub_path:
            mount["subPath"] = ds.sub_path
        mounts.append(mount)

    env = {"GPULAB_IMAGE": image, "GPULAB_GPUS": str(gpus), "GPULAB_PROFILE": profile.name}
    if gpu_type:
        env["GPULAB_GPU_TYPE"] = gpu_type
    if gateway_url:
        env["GPULAB_GATEWAY_URL"] = gateway_url
    if culler_url:
        env["GPULAB_CULLER_URL"] = culler_url

    return PodPlan(
        profile=profile.name,
        image=image,
        gpus=gpus,
        gpu_type=gpu_type,
        gpu_resource=resource,
        cpu_guarantee=profile.cpu.guarantee,
        cpu_limit=profile.cpu.limit,
        mem_guarantee=quantity_bytes(profile.memory.guarantee)
        if profile.memory.guarantee
        else None,
        mem_limit=quantity_bytes(profile.memory.limit) if profile.memory.limit else None,
        extra_resource_limits=limits,
        extra_resource_guarantees=guarantees,
        node_selector=node_selector,
        tolerations=tolerations,
        home=home,
        volumes=volumes,
        volume_mounts=mounts,
        pod_security_context=dict(POD_SECURITY_CONTEXT),
        container_security_context=copy.deepcopy(CONTAINER_SECURITY_CONTEXT),
        labels=_profile_labels(username, entitlement.quota_group, gpus, gpu_type),
        annotations={PROFILE_ANNOTATION: profile.name, IMAGE_ANNOTATION: image},
        env=env,
        shm_size=shm_size,
        image_pull_secrets=_pull_secrets(policy),
        all_gpu_resources=all_gpu,
    )


# ----------------------------------------------------------------------------- final caps


def _cpu_value(value: Any) -> float:
    s = str(value)
    return float(s[:-1]) / 1000 if s.endswith("m") else float(s)


def enforce_plan_on_container(
    plan: PodPlan, limits: Mapping[str, Any] | None, requests: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Cap the notebook container's resources to the plan, whatever set them (group
    overrides, leftovers of another profile, ``extra_container_config``).

    GPU resources: exactly the plan's (any other GPU resource name of the policy is removed).
    CPU and memory: at most the plan's limits; a request above the limit is lowered to it.
    Returns (limits, requests, notes) where notes say what was changed.
    """
    lim = dict(limits or {})
    req = dict(requests or {})
    notes: list[str] = []
    for name in plan.all_gpu_resources | ({plan.gpu_resource} if plan.gpu_resource else set()):
        for where, d in (("limit", lim), ("request", req)):
            if name == plan.gpu_resource:
                continue
            if name in d:
                notes.append(f"removed GPU {where} {name}={d[name]} (not in the plan)")
                d.pop(name)
    if plan.gpu_resource:
        want = str(plan.gpus)
        if str(lim.get(plan.gpu_resource)) != want:
            if plan.gpu_resource in lim:
                notes.append(f"GPU limit {plan.gpu_resource}={lim[plan.gpu_resource]} -> {want}")
            lim[plan.gpu_resource] = want
        if plan.gpu_resource in req and str(req[plan.gpu_resource]) != want:
            notes.append(f"GPU request {plan.gpu_resource}={req[plan.gpu_resource]} -> {want}")
            req[plan.gpu_resource] = want
    if plan.cpu_limit is not None:
        if "cpu" not in lim or _cpu_value(lim["cpu"]) > plan.cpu_limit:
            if "cpu" in lim:
                notes.append(f"cpu limit {lim['cpu']} -> {plan.cpu_limit:g}")
            lim["cpu"] = plan.cpu_limit
        if "cpu" in req and _cpu_value(req["cpu"]) > plan.cpu_limit:
            notes.append(f"cpu request {req['cpu']} -> {plan.cpu_limit:g}")
            req["cpu"] = plan.cpu_limit
    if plan.mem_limit is not None:
        if "memory" not in lim or quantity_bytes(lim["memory"]) > plan.mem_limit:
            if "memory" in lim:
                notes.append(f"memory limit {lim['memory']} -> {plan.mem_limit}")
            lim["memory"] = plan.mem_limit
        if "memory" in req and quantity_bytes(req["memory"]) > plan.mem_limit:
            notes.append(f"memory request {req['memory']} -> {plan.mem_limit}")
            req["memory"] = plan.mem_limit
    return lim, req, notes
