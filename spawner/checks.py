"""Pure re-validation of a spawn request: never trust the form (nor the REST API's body).

:func:`parse_user_options` reads KubeSpawner-style ``user_options``
(``{"profile": "gpu", "image": "...", "gpus": "2"}``) into a :class:`SpawnRequest`;
:func:`check_spawn_request` returns the problems, each a sentence that says what was wrong,
with which value, and what is allowed. An empty list means the request may proceed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from gpulab.hub.policy import Entitlement, ProfilePolicy

__all__ = [
    "GpuUsage",
    "SpawnRequest",
    "check_named_server",
    "check_quota",
    "check_spawn_request",
    "parse_user_options",
    "resolve_request",
]

MAX_OPTION_LENGTH = 512


@dataclass(frozen=True)
class SpawnRequest:
    """What the user asked for; ``None`` fields take the profile's defaults."""

    profile: str | None
    image: str | None
    gpus: str | None  # as submitted; parsed in check_spawn_request


@dataclass(frozen=True)
class GpuUsage:
    """GPUs in use now (servers + jobs), counted from the cluster."""

    user: int
    group: int


def _opt(options: Mapping[str, Any], key: str) -> str | None:
    value = options.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, list) and len(value) == 1:  # raw form data
        value = value[0]
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int | float):
        return str(value)
    if not isinstance(value, str):
        return repr(value)[:MAX_OPTION_LENGTH]
    return value[:MAX_OPTION_LENGTH]


def parse_user_options(options: Mapping[str, Any] | None) -> SpawnRequest:
    options = options or {}
    return SpawnRequest(
        profile=_opt(options, "profile"),
        image=_opt(options, "image"),
        gpus=_opt(options, "gpus"),
    )


def _names(items: Collection[str]) -> str:
    return ", ".join(items) if items else "none"


def resolve_request(
    request: SpawnRequest,
    entitlement: Entitlement,
    offered_images: Mapping[str, list[str]] | None,
) -> tuple[ProfilePolicy | None, str | None, int | None, list[str]]:
    """Resolve defaults and parse: (profile, image, gpus, problems). ``offered_images`` maps
    profile name -> image references offered on the form (the first is the default)."""
    problems: list[str] = []
    if request.profile is None:
        profile = entitlement.default_profile
        if profile is None:
            return None, None, None, ["no profile is available to your groups"]
    else:
        profile = entitlement.profile(request.profile)
        if profile is None:
            allowed = [p.name for p in entitlement.profiles]
            return (
                None,
                None,
                None,
                [
                    f"profile {request.profile!r} is not available to you; allowed: {_names(allowed)}"
                ],
            )

    offered = (offered_images or {}).get(profile.name, [])
    image = request.image or (offered[0] if offered else None)
    if image is None:
        problems.append(f"profile {profile.name!r}: no image was chosen and none is offered")

    gpus: int | None
    if request.gpus is None:
        gpus = profile.gpus[0] if profile.is_gpu else 0
    else:
        try:
            gpus = int(request.gpus.strip())
        except ValueError:
            problems.append(f"gpus: {request.gpus!r} is not a whole number")
            gpus = None
    return profile, image, gpus, problems


def check_spawn_request(
    request: SpawnRequest,
    entitlement: Entitlement | None,
    *,
    offered_images: Mapping[str, list[str]] | None = None,
    catalogue: Collection[str] | None = None,
    usage: GpuUsage | None = None,
) -> list[str]:
    """All problems with ``request`` for a user with ``entitlement``.

    - the profile must be one the user's groups allow;
    - the image must be allowed by the groups' image rules, and, when the catalogue is known
      (``catalogue``: its image references; empty or None = unknown), be in it;
    - the GPU count must be one of the profile's (capped) choices, within ``per_server``,
      of a GPU type the groups may use; a CPU profile takes 0 GPUs;
    - with ``usage``: the user's and the group's concurrent GPU quotas.
    """
    if entitlement is None:
        return ["your groups give no access to notebook servers (no group of the policy)"]
    profile, image, gpus, problems = resolve_request(request, entitlement, offered_images)
    if profile is None:
        return problems
    if image is not None:
        if not entitlement.image_allowed(image):
            problems.append(
                f"image {image!r} is not allowed for your groups ({', '.join(entitlement.groups)});"
                f" allowed projects: {_names(sorted(entitlement.image_projects))}"
                + (
                    f"; allowed patterns: {_names(entitlement.image_patterns)}"
                    if entitlement.image_patterns
                    else ""
                )
            )
        elif catalogue and image not in catalogue:
            problems.append(f"image {image!r} is not in the image catalogue")
    if gpus is not None:
        if not profile.is_gpu:
            if gpus != 0:
                problems.append(
                    f"gpus: profile {profile.name!r} is CPU-only, {gpus} GPUs requested (allowed: 0)"
                )
        else:
            choices = list(profile.gpus)
            if gpus > entitlement.gpu_per_server:
                problems.append(
                    f"gpus: {gpus} exceeds your groups' limit of {entitlement.gpu_per_server} "
                    f"GPUs per server (allowed: {', '.join(map(str, choices))})"
                )
            elif gpus not in choices:
                problems.append(
                    f"gpus: {gpus} is not offered for profile {profile.name!r} "
                    f"(allowed: {', '.join(map(str, choices))})"
                )
            if profile.gpu_type not in entitlement.gpu_types:
                problems.append(
                    f"GPU type {profile.gpu_type!r} is not allowed for your groups "
                    f"(allowed: {_names(sorted(entitlement.gpu_types))})"
                )
        if not problems and usage is not None:
            problems.extend(check_quota(entitlement, gpus, usage))
    return problems


def check_quota(entitlement: Entitlement, gpus: int, usage: GpuUsage) -> list[str]:
    """The concurrent-GPU quotas (user, then the charged group) for ``gpus`` more GPUs."""
    if gpus <= 0:
        return []
    problems = []
    if usage.user + gpus > entitlement.gpu_quota_user:
        problems.append(
            f"GPU quota: you already use {usage.user} of your {entitlement.gpu_quota_user} GPUs "
            f"(servers and jobs); {gpus} more requested. Stop a server or a job, or ask for "
            f"{max(entitlement.gpu_quota_user - usage.user, 0)} or fewer."
        )
    limit = entitlement.quota_group_limit
    if usage.group + gpus > limit:
        problems.append(
            f"GPU quota: group {entitlement.quota_group!r} already uses {usage.group} of its "
            f"{limit} GPUs (servers and jobs); {gpus} more requested."
        )
    return problems


def check_named_server(
    entitlement: Entitlement | None, server_name: str, other_named_servers: int
) -> list[str]:
    """Named servers per policy: ``named_servers`` is the most a user may have."""
    if not server_name:
        return []
    limit = entitlement.named_servers if entitlement else 0
    if limit <= 0:
        return ["named servers are not enabled for your groups (only the default server)"]
    if other_named_servers >= limit:
        return [f"you already have {other_named_servers} named servers (your limit is {limit})"]
    return []
