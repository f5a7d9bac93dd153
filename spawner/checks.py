"""The spawner's side of admission: never trust the form (nor the REST API's body).

:func:`parse_user_options` reads KubeSpawner-style ``user_options``
(``{"profile": "gpu", "image": "...", "gpus": "2"}``) into a :class:`SpawnRequest`;
:func:`server_request` resolves the profile's defaults into a
:class:`~gpulab.hub.workload.admission.WorkloadRequest` of kind ``server``, which
:mod:`gpulab.hub.workload.admission` judges by the rules jobs share; :func:`render` says each
problem in the words of the spawn page: what was wrong, with which value, what is allowed.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from gpulab.hub.field_errors import FieldError
from gpulab.hub.policy import Entitlement
from gpulab.hub.workload.admission import (
    GpuUsage,
    WorkloadRequest,
    admit,
    named_server_problems,
    request_problems,
)

__all__ = [
    "GpuUsage",
    "SpawnRequest",
    "check_named_server",
    "check_spawn_request",
    "parse_user_options",
    "render",
    "server_request",
]

MAX_OPTION_LENGTH = 512


@dataclass(frozen=True)
class SpawnRequest:
    """What the user asked for; ``None`` fields take the profile's defaults."""

    profile: str | None
    image: str | None
    gpus: str | None  # as submitted; parsed in server_request


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


def server_request(
    request: SpawnRequest,
    entitlement: Entitlement | None,
    *,
    offered_images: Mapping[str, list[str]] | None = None,
    catalogue: Collection[str] | None = None,
    server_name: str = "",
    named_servers: int = 0,
) -> tuple[WorkloadRequest | None, list[FieldError]]:
    """The server to admit, with the profile's defaults filled in, or ``None`` and why there
    is nothing to admit (no entitlement, a profile the user may not use, a GPU count that is
    not a number). ``offered_images`` maps profile name -> image references offered on the
    form (the first is the default); ``catalogue``: the catalogue's references (empty or
    ``None``: unknown); ``named_servers``: the user's other named servers."""
    if entitlement is None:
        return None, [
            FieldError(
                "groups",
                "your groups give no access to notebook servers (no group of the policy)",
                code="policy",
            )
        ]
    if request.profile is None:
        profile = entitlement.default_profile
        if profile is None:
            return None, [
                FieldError("profile", "no profile is available to your groups", code="policy")
            ]
    else:
        profile = entitlement.profile(request.profile)
        if profile is None:
            allowed = ", ".join(p.name for p in entitlement.profiles) or "none"
            return None, [
                FieldError(
                    "profile",
                    f"profile {request.profile!r} is not available to you; allowed: {allowed}",
                    allowed,
                    "policy",
                )
            ]
    if request.gpus is None:
        gpus = profile.gpus[0] if profile.is_gpu else 0
    else:
        try:
            gpus = int(request.gpus.strip())
        except ValueError:
            return None, [FieldError("gpus", f"{request.gpus!r} is not a whole number")]
    offered = (offered_images or {}).get(profile.name, [])
    return WorkloadRequest(
        kind="server",
        entitlement=entitlement,
        image=request.image or (offered[0] if offered else None),
        gpus=gpus,
        gpu_type=profile.gpu_type,
        catalogue=frozenset(catalogue) if catalogue else None,
        profile=profile,
        server_name=server_name,
        named_servers=named_servers,
    ), []


def render(problem: FieldError) -> str:
    """One problem as the spawn page says it: a GPU count with what is allowed in
    parentheses, a GPU quota after ``GPU quota:``, anything else as its message."""
    if problem.field == "gpus" and problem.code == "quota":
        return f"GPU quota: {problem.message}."
    if problem.field == "gpus":
        allowed = f" (allowed: {problem.allowed})" if problem.allowed else ""
        return f"gpus: {problem.message}{allowed}"
    return problem.message


def check_spawn_request(
    request: SpawnRequest,
    entitlement: Entitlement | None,
    *,
    offered_images: Mapping[str, list[str]] | None = None,
    catalogue: Collection[str] | None = None,
    usage: GpuUsage | None = None,
) -> list[str]:
    """All problems with ``request`` for a user with ``entitlement``, rendered; with ``usage``,
    the GPU quotas too."""
    server, problems = server_request(
        request, entitlement, offered_images=offered_images, catalogue=catalogue
    )
    if server is not None:
        problems = request_problems(server) if usage is None else admit(server, usage)
    return [render(p) for p in problems]


def check_named_server(
    entitlement: Entitlement, server_name: str, other_named_servers: int
) -> list[str]:
    """Named servers per policy, rendered."""
    return [render(p) for p in named_server_problems(entitlement, server_name, other_named_servers)]
