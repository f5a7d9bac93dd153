"""The gateway's side of admission: a well-formed :class:`JobSpec` as a job asking to run.

The gateway parses the spec (:func:`gpulab.hub.jobs.spec.parse_job_spec`), fills in the default
image (``spec.with_image(...)``), then admits :func:`job_request` with
:func:`gpulab.hub.workload.admission.admit`, by the rules servers share, against what its
cluster cache says the user holds. The manifest takes the resolved GPU type and runtime from
:func:`effective_gpu_type` and :func:`effective_runtime`, and the profile whose CPU and memory a
job that names none gets from :func:`job_profile`; admission caps and counts the same amounts.
A multi-node job (``nodes: N``) asks for N x ``gpus_per_node`` GPUs and N pods' CPU and memory;
its CPU and memory caps are per pod (per node).
"""

from __future__ import annotations

from collections.abc import Collection

from ..policy import (
    Entitlement,
    Policy,
    ProfilePolicy,
    cpu_millicores,
    profile_cpu_millis,
    profile_memory_bytes,
    quantity_bytes,
)
from ..workload.admission import WorkloadRequest
from ..workload.holdings import Demand, profile_demand
from .spec import JobSpec

__all__ = ["effective_gpu_type", "effective_runtime", "job_profile", "job_request"]


def effective_gpu_type(spec: JobSpec, entitlement: Entitlement) -> str | None:
    """The GPU type a job runs on: the spec's, or, when it asks for GPUs without naming a
    type, the user's only allowed type (``None`` if it has several or none: an error)."""
    if spec.total_gpus == 0:
        return None
    if spec.gpu_type is not None:
        return spec.gpu_type
    if len(entitlement.gpu_types) == 1:
        return next(iter(entitlement.gpu_types))
    return None


def effective_runtime(spec: JobSpec, entitlement: Entitlement) -> int:
    """``activeDeadlineSeconds``: the spec's max_runtime, default the user's maximum."""
    return spec.max_runtime if spec.max_runtime is not None else entitlement.max_job_runtime_seconds


def job_profile(ent: Entitlement, gpu_type: str | None) -> ProfilePolicy | None:
    """The user's first profile of the same kind (that GPU type, or CPU-only): its resources
    are the job's defaults when the spec names none."""
    for profile in ent.profiles:
        if profile.gpu_type == gpu_type:
            return profile
    return None


def _sizes(spec: JobSpec, profile: ProfilePolicy | None) -> tuple[int | None, int | None, Demand]:
    """(most CPU, most memory, what is requested) of the job's container: the spec's amount is
    both its request and its limit; an amount it leaves out is the profile's (the manifest's
    rule, :func:`job_profile`)."""
    default = profile_demand(profile) if profile is not None else Demand()
    cpu = cpu_millicores(spec.cpu) if spec.cpu is not None else None
    memory = quantity_bytes(spec.memory) if spec.memory is not None else None
    demand = Demand(
        cpu if cpu is not None else default.cpu_millis,
        memory if memory is not None else default.memory_bytes,
    )
    if cpu is None and profile is not None:
        cpu = profile_cpu_millis(profile)
    if memory is None and profile is not None:
        memory = profile_memory_bytes(profile)
    return cpu, memory, demand


def job_request(
    spec: JobSpec,
    entitlement: Entitlement,
    policy: Policy,
    *,
    catalogue_images: Collection[str] | None = None,
) -> WorkloadRequest:
    """``spec`` as a job to admit; ``catalogue_images``: the references the catalogue offers
    (``None`` or empty: unknown, the image need only be allowed)."""
    gpu_type = effective_gpu_type(spec, entitlement)
    node_type = policy.gpu_types.get(gpu_type) if gpu_type is not None else None
    cpu, memory, demand = _sizes(spec, job_profile(entitlement, gpu_type))
    return WorkloadRequest(
        kind="job",
        entitlement=entitlement,
        image=spec.image,
        gpus=spec.total_gpus,
        nodes=spec.nodes,
        gpu_type=gpu_type,
        catalogue=frozenset(catalogue_images) if catalogue_images else None,
        node_gpus=node_type.max_per_node if node_type is not None else None,
        max_runtime=spec.max_runtime,
        retries=spec.retries,
        datasets=tuple(spec.datasets or ()),
        known_datasets=tuple(d.name for d in policy.storage.datasets),
        cpu_millis=cpu,
        memory_bytes=memory,
        # Every rank's pod requests the same: quota charges them all.
        demand=Demand(demand.cpu_millis * spec.nodes, demand.memory_bytes * spec.nodes),
        pods_at_once=spec.parallelism,
    )
