"""What a gpulab pod is, for a notebook server and a job alike (pure: no I/O).

:func:`pod_parts` decides the parts both kinds of pod share: the user's home and the datasets
(volumes and mounts), ``/dev/shm``, the GPU placement (extended resource, node selector,
tolerations), the security contexts, the image pull secrets and the labels. The spawner
(:mod:`gpulab.spawner.overrides`) and the jobs manifest (:mod:`gpulab.hub.jobs.manifest`) are
adapters that put these parts into a KubeSpawner pod or a ``batch/v1`` Job, and add what only
their kind has (a server's environment and resource traits, a job's runner and upload Secret).

:func:`home_claim` is the one builder of a user's home PersistentVolumeClaim: whoever creates
the claim first (the spawner on a server start, the jobs gateway on a first job), it carries
the same labels, so the nightly snapshot CronJob (selector ``app.kubernetes.io/component=home``)
sees every home.

Rules kept here, once:

* dataset volumes are named ``dataset-<name>``, cut to 63 characters (a DNS label);
* ``/dev/shm`` is memory-backed; its size is the first of: the size asked for (a job spec's
  ``shm_size``), the profile's (the policy fills it in: 1Gi on GPU profiles, 64Mi on CPU ones),
  else 1Gi when the pod has GPUs and 64Mi when it has none.
"""

from __future__ import annotations

import copy
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from gpulab.hub.names import escape_username
from gpulab.hub.policy import Policy, ProfilePolicy
from gpulab.hub.policy.model import CPU_SHM_DEFAULT, GPU_SHM_DEFAULT

from .labels import (
    GPU_TYPE_LABEL,
    GPUS_LABEL,
    GROUP_LABEL,
    HOME_COMPONENT,
    KUEUE_PRIORITY_LABEL,
    KUEUE_QUEUE_LABEL,
    USER_LABEL,
    base_labels,
)
from .security import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT

__all__ = [
    "HOME_VOLUME",
    "SHM_PATH",
    "SHM_VOLUME",
    "GpuPlacement",
    "HomeClaim",
    "PodParts",
    "dataset_volume_name",
    "gpu_placement",
    "gpu_resource_names",
    "home_claim",
    "home_labels",
    "queue_labels",
    "home_of",
    "pod_parts",
    "pull_secrets",
    "shm_size",
    "workload_labels",
]

HOME_VOLUME = "home"
SHM_VOLUME = "dshm"
SHM_PATH = "/dev/shm"
_MAX_NAME = 63  # volume names are DNS labels


@dataclass(frozen=True)
class HomeClaim:
    """The user's home PVC (created if missing, never deleted as a side effect)."""

    name: str
    storage_class: str | None
    size: str
    access_mode: str
    mount_path: str


@dataclass(frozen=True)
class GpuPlacement:
    """Where a pod with ``gpus`` GPUs of ``gpu_type`` runs (no GPUs: no type, no placement)."""

    gpus: int
    gpu_type: str | None
    resource: str | None  # the extended resource name of the type, e.g. nvidia.com/gpu
    node_selector: dict[str, str]
    tolerations: list[dict[str, Any]]

    @property
    def resources(self) -> dict[str, str]:
        """The GPU part of the container's limits (and requests)."""
        return {self.resource: str(self.gpus)} if self.resource else {}


@dataclass(frozen=True)
class PodParts:
    """The parts every gpulab pod of one user and choice has, whatever its kind."""

    home: HomeClaim
    volumes: list[dict[str, Any]]
    volume_mounts: list[dict[str, Any]]
    shm_size: str
    gpu: GpuPlacement
    pod_security_context: dict[str, Any]
    container_security_context: dict[str, Any]
    image_pull_secrets: list[str]
    labels: dict[str, str]
    all_gpu_resources: frozenset[str] = field(default_factory=frozenset)


def workload_labels(
    component: str, *, username: str, group: str, gpus: int, gpu_type: str | None
) -> dict[str, str]:
    """The labels of a server or job (pods, Jobs, Secrets): who runs it, charged to which
    quota group, holding how many GPUs of which type."""
    labels = {
        **base_labels(component),
        USER_LABEL: escape_username(username),
        GROUP_LABEL: group,
        GPUS_LABEL: str(gpus),
    }
    if gpu_type:
        labels[GPU_TYPE_LABEL] = gpu_type
    return labels


def queue_labels(local_queue: str, priority_class: str) -> dict[str, str]:
    """The labels by which a Pod or a Job joins Kueue: its LocalQueue and its priority class
    (Kueue then gates a Pod, or holds a suspended Job, until it admits it)."""
    return {KUEUE_QUEUE_LABEL: local_queue, KUEUE_PRIORITY_LABEL: priority_class}


def home_labels(username: str) -> dict[str, str]:
    """The labels every home claim carries (the snapshot CronJob selects on the component)."""
    return {**base_labels(HOME_COMPONENT), USER_LABEL: escape_username(username)}


def home_of(policy: Policy, username: str) -> HomeClaim:
    home = policy.storage.home
    return HomeClaim(
        name=home.claim_name(escape_username(username)),
        storage_class=home.storage_class,
        size=home.size,
        access_mode=home.access_mode,
        mount_path=home.mount_path,
    )


def home_claim(policy: Policy, username: str, namespace: str) -> dict[str, Any]:
    """The home PersistentVolumeClaim of ``username`` as the policy describes it."""
    home = home_of(policy, username)
    spec: dict[str, Any] = {
        "accessModes": [home.access_mode],
        "resources": {"requests": {"storage": home.size}},
    }
    if home.storage_class:
        spec["storageClassName"] = home.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": home.name, "namespace": namespace, "labels": home_labels(username)},
        "spec": spec,
    }


def dataset_volume_name(dataset: str) -> str:
    return f"dataset-{dataset}"[:_MAX_NAME].rstrip("-")


def shm_size(gpus: int, *asked: str | None) -> str:
    """The first size in ``asked`` that is set, else the default for a pod with ``gpus``."""
    for size in asked:
        if size:
            return size
    return GPU_SHM_DEFAULT if gpus > 0 else CPU_SHM_DEFAULT


def gpu_resource_names(policy: Policy) -> frozenset[str]:
    """Every extended resource name that some GPU type of the policy uses."""
    return frozenset(t.resource for t in policy.gpu_types.values())


def gpu_placement(policy: Policy, gpu_type: str | None, gpus: int) -> GpuPlacement:
    """The placement for ``gpus`` GPUs of ``gpu_type`` (a type the policy defines)."""
    if not gpu_type or gpus <= 0:
        return GpuPlacement(gpus, None, None, {}, [])
    gtype = policy.gpu_types.get(gpu_type)
    if gtype is None:
        return GpuPlacement(gpus, gpu_type, None, {}, [])
    tolerations = gtype.k8s_tolerations()
    return GpuPlacement(gpus, gpu_type, gtype.resource, dict(gtype.node_selector), tolerations)


def pull_secrets(policy: Policy) -> list[str]:
    harbor = policy.catalogue.harbor
    return [harbor.pull_secret] if harbor is not None and harbor.pull_secret else []


def _storage(
    policy: Policy, home: HomeClaim, datasets: Collection[str] | None, shm: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes: list[dict[str, Any]] = [
        {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": home.name}}
    ]
    mounts: list[dict[str, Any]] = [{"name": HOME_VOLUME, "mountPath": home.mount_path}]
    for ds in policy.storage.datasets:
        if datasets is not None and ds.name not in datasets:
            continue
        name = dataset_volume_name(ds.name)
        volumes.append(
            {
                "name": name,
                "persistentVolumeClaim": {"claimName": ds.claim, "readOnly": ds.read_only},
            }
        )
        mount: dict[str, Any] = {"name": name, "mountPath": ds.mount_path, "readOnly": ds.read_only}
        if ds.sub_path:
            mount["subPath"] = ds.sub_path
        mounts.append(mount)
    volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm}})
    mounts.append({"name": SHM_VOLUME, "mountPath": SHM_PATH})
    return volumes, mounts


def pod_parts(
    *,
    policy: Policy,
    username: str,
    group: str,
    component: str,
    profile: ProfilePolicy | None,
    gpus: int,
    gpu_type: str | None,
    shm: str | None = None,
    datasets: Collection[str] | None = None,
) -> PodParts:
    """The shared parts of a pod ``username`` runs with ``gpus`` GPUs of ``gpu_type`` under
    ``profile`` (``None``: a job of a kind the user has no profile for), charged to ``group``.

    ``component`` is the value of ``app.kubernetes.io/component`` (server or job); ``shm`` a
    size asked for explicitly; ``datasets`` the dataset names to mount (``None``: all).
    The request must have passed admission; this function only builds."""
    home = home_of(policy, username)
    gpu = gpu_placement(policy, gpu_type, gpus)
    size = shm_size(gpus, shm, profile.shm_size if profile else None)
    volumes, mounts = _storage(policy, home, datasets, size)
    return PodParts(
        home=home,
        volumes=volumes,
        volume_mounts=mounts,
        shm_size=size,
        gpu=gpu,
        pod_security_context=copy.deepcopy(POD_SECURITY_CONTEXT),
        container_security_context=copy.deepcopy(CONTAINER_SECURITY_CONTEXT),
        image_pull_secrets=pull_secrets(policy),
        labels=workload_labels(
            component, username=username, group=group, gpus=gpus, gpu_type=gpu.gpu_type
        ),
        all_gpu_resources=gpu_resource_names(policy),
    )
