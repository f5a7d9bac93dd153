"""Policy checks of a well-formed :class:`JobSpec` for one user (pure).

The gateway runs these after the schema (:func:`gpulab.hub.jobs.spec.parse_job_spec`) and
after filling in the default image (``spec.with_image(...)``). Quota counts what the caller
measured in its cluster cache (:class:`UsageSnapshot`): GPUs held by the user's servers AND
jobs, the same for each group, and the user's unfinished jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..policy import Entitlement, Policy
from ..policy.quantities import format_duration
from .spec import FieldError, JobSpec

__all__ = ["UsageSnapshot", "effective_gpu_type", "effective_runtime", "validate_against_policy"]


@dataclass(frozen=True)
class UsageSnapshot:
    """What is in use right now (from the watch cache), not counting the job being checked.

    ``user_gpus``: GPUs requested by this user's running or pending servers and unfinished
    jobs; ``group_gpus``: the same summed per quota group (``gpulab.io/group`` label);
    ``user_jobs``: this user's unfinished (pending or running) jobs."""

    user_gpus: int = 0
    group_gpus: Mapping[str, int] = field(default_factory=dict)
    user_jobs: int = 0


def effective_gpu_type(spec: JobSpec, entitlement: Entitlement) -> str | None:
    """The GPU type a job runs on: the spec's, or, when it asks for GPUs without naming a
    type, the user's only allowed type (``None`` if it has several or none: an error)."""
    if spec.gpus == 0:
        return None
    if spec.gpu_type is not None:
        return spec.gpu_type
    if len(entitlement.gpu_types) == 1:
        return next(iter(entitlement.gpu_types))
    return None


def effective_runtime(spec: JobSpec, entitlement: Entitlement) -> int:
    """``activeDeadlineSeconds``: the spec's max_runtime, default the user's maximum."""
    return spec.max_runtime if spec.max_runtime is not None else entitlement.max_job_runtime_seconds


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def validate_against_policy(
    spec: JobSpec,
    entitlement: Entitlement,
    policy: Policy,
    *,
    usage: UsageSnapshot,
    catalogue_images: set[str] | frozenset[str] | None = None,
) -> list[FieldError]:
    """Every reason this user may not run ``spec`` now (empty list = allowed).

    ``catalogue_images``: references the catalogue offers; when given, the image must be one
    of them as well as allowed for the user's groups. Errors carry ``code='policy'`` (never
    allowed as written) or ``code='quota'`` (allowed, but not while other work holds GPUs or
    job slots)."""
    problems: list[FieldError] = []
    ent = entitlement

    # image
    if spec.image is None:
        problems.append(
            FieldError(
                "image",
                "no image given, and there is no running server to take the default from",
                "an image from the catalogue that your groups may use",
                "policy",
            )
        )
    else:
        if not ent.image_allowed(spec.image):
            problems.append(
                FieldError(
                    "image",
                    f"{spec.image} is not allowed for your groups ({', '.join(ent.groups)})",
                    _images_allowed(ent),
                    "policy",
                )
            )
        elif catalogue_images is not None and spec.image not in catalogue_images:
            problems.append(
                FieldError(
                    "image",
                    f"{spec.image} is not in the image catalogue",
                    "an image listed in the catalogue",
                    "policy",
                )
            )

    # GPUs
    gpu_ok = True
    if spec.gpus > 0:
        if ent.gpu_per_job == 0 or not ent.gpu_types:
            problems.append(
                FieldError(
                    "gpus",
                    f"you asked for {_plural(spec.gpus, 'GPU')}, but your groups may not use GPUs in jobs",
                    "0",
                    "policy",
                )
            )
            gpu_ok = False
        elif spec.gpus > ent.gpu_per_job:
            problems.append(
                FieldError(
                    "gpus",
                    f"you asked for {_plural(spec.gpus, 'GPU')}, more than your per-job limit",
                    f"at most {ent.gpu_per_job}",
                    "policy",
                )
            )
            gpu_ok = False
        gpu_type = effective_gpu_type(spec, ent)
        allowed_types = sorted(t for t in ent.gpu_types if t in policy.gpu_types)
        if ent.gpu_types and gpu_type is None:
            problems.append(
                FieldError(
                    "gpu_type",
                    "several GPU types are possible; say which one",
                    "one of: " + ", ".join(allowed_types),
                    "policy",
                )
            )
            gpu_ok = False
        elif gpu_type is not None and (
            gpu_type not in ent.gpu_types or gpu_type not in policy.gpu_types
        ):
            problems.append(
                FieldError(
                    "gpu_type",
                    f"{gpu_type} is not a GPU type your groups may use",
                    "one of: " + ", ".join(allowed_types) if allowed_types else "none",
                    "policy",
                )
            )
            gpu_ok = False
        elif (
            gpu_ok and gpu_type is not None and spec.gpus > policy.gpu_types[gpu_type].max_per_node
        ):
            problems.append(
                FieldError(
                    "gpus",
                    f"no {gpu_type} node has {spec.gpus} GPUs (a job runs on one node)",
                    f"at most {policy.gpu_types[gpu_type].max_per_node}",
                    "policy",
                )
            )
            gpu_ok = False

    # runtime, retries, datasets
    if spec.max_runtime is not None and spec.max_runtime > ent.max_job_runtime_seconds:
        problems.append(
            FieldError(
                "max_runtime",
                f"{format_duration(spec.max_runtime)} is longer than your maximum job runtime",
                f"at most {format_duration(ent.max_job_runtime_seconds)}",
                "policy",
            )
        )
    if spec.retries > ent.max_retries:
        problems.append(
            FieldError(
                "retries",
                f"{spec.retries} retries is more than your groups allow",
                f"at most {ent.max_retries}",
                "policy",
            )
        )
    known = [d.name for d in policy.storage.datasets]
    for i, name in enumerate(spec.datasets or []):
        if name not in known:
            problems.append(
                FieldError(
                    f"datasets[{i}]",
                    f"there is no dataset called {name}",
                    "one of: " + ", ".join(known) if known else "none are configured",
                    "policy",
                )
            )

    # quota: only once the request itself is allowed
    if usage.user_jobs >= ent.max_concurrent_jobs:
        problems.append(
            FieldError(
                "jobs",
                f"you already have {_plural(usage.user_jobs, 'unfinished job')}",
                f"at most {ent.max_concurrent_jobs} at a time; wait for one to finish or cancel one",
                "quota",
            )
        )
    if spec.gpus > 0 and gpu_ok:
        left = max(0, ent.gpu_quota_user - usage.user_gpus)
        if spec.gpus > left:
            problems.append(
                FieldError(
                    "gpus",
                    f"{usage.user_gpus} of your {ent.gpu_quota_user} GPUs are in use by your "
                    f"servers and jobs; this job needs {spec.gpus}",
                    f"at most {left} now",
                    "quota",
                )
            )
        group = ent.quota_group
        limit = ent.gpu_quota_group.get(group, 0)
        used = usage.group_gpus.get(group, 0)
        group_left = max(0, limit - used)
        if spec.gpus > group_left:
            problems.append(
                FieldError(
                    "gpus",
                    f"group {group} uses {used} of its {limit} GPUs; this job needs {spec.gpus}",
                    f"at most {group_left} now",
                    "quota",
                )
            )
    return problems


def _images_allowed(ent: Entitlement) -> str:
    parts = []
    if ent.image_projects:
        parts.append("images in projects " + ", ".join(sorted(ent.image_projects)))
    if ent.image_patterns:
        parts.append("images matching " + ", ".join(ent.image_patterns))
    return " or ".join(parts) if parts else "no images are allowed for your groups"
