"""Who may run what, now: one admission check for notebook servers and jobs (pure, no I/O).

A :class:`WorkloadRequest` is a server or a job asking to run, its defaults already resolved by
its adapter (the spawner's :mod:`gpulab.spawner.checks`, the gateway's
:mod:`gpulab.hub.jobs.validate`). :func:`admit` answers with every reason it may not run, each
a :class:`~gpulab.hub.field_errors.FieldError` with code ``policy`` (never, as asked) or
``quota`` (allowed, but not while other work holds the GPUs or job slots). The rules:

* for both kinds: the image is allowed for the user's groups and, when the catalogue is
  known, in it; GPUs at all, no more than the groups' cap per server / per job, of a GPU type
  the groups may use; the user's and the quota group's concurrent GPUs, and the quota group's
  CPU and memory (servers and jobs are counted together: :mod:`.holdings`);
* servers only: named servers; the profile's GPU choices (a CPU-only profile takes none);
* jobs only: a GPU type named when several are possible; no more GPUs than one node of the
  type has; the maximum runtime, retries, known datasets; CPU and memory per job; concurrent
  jobs; a multi-node job's nodes (``jobs.max_nodes``). A multi-node job's ``gpus`` are all
  its ranks' together (N x G): ``per_job`` and the quotas count that total, and each node's
  share must fit on one node.

Quota is judged only for a request the policy allows. :func:`admit` is
:func:`request_problems`, then :func:`quota_problems`; the spawner and the gateway call the two
apart, the second inside the quota ledger's check + reserve (:mod:`.quota_ledger`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

from ..field_errors import FieldError
from ..policy import Entitlement, ProfilePolicy, format_bytes, format_cpu, format_duration
from .holdings import Demand, GpuUsage, Holder, describe_holders, profile_demand

__all__ = [
    "Demand",
    "GpuUsage",
    "Kind",
    "WorkloadRequest",
    "admit",
    "named_server_problems",
    "quota_applies",
    "quota_problems",
    "request_problems",
]

Kind = Literal["server", "job"]


@dataclass(frozen=True)
class WorkloadRequest:
    """A server or a job asking to run, for the user whose ``entitlement`` this is."""

    kind: Kind
    entitlement: Entitlement
    image: str | None  # None: none was given and there was no default to take
    gpus: int  # a multi-node job: every node's together
    gpu_type: str | None  # None with gpus > 0: not named, and several types are possible
    catalogue: frozenset[str] | None = None  # the catalogue's image references; None: unknown
    # servers
    profile: ProfilePolicy | None = None
    server_name: str = ""  # "" for the default server
    named_servers: int = 0  # the user's other named servers
    # jobs
    node_gpus: int | None = None  # the most GPUs of gpu_type one node has (None: unchecked)
    nodes: int = 1  # the pods (nodes) of a multi-node job, each with gpus // nodes GPUs
    max_runtime: int | None = None  # seconds
    retries: int = 0
    datasets: tuple[str, ...] = ()
    known_datasets: tuple[str, ...] = ()  # the policy's dataset names
    cpu_millis: int | None = None  # the most CPU the job may use (its limit); None: unset
    memory_bytes: int | None = None  # the most memory the job may use (its limit); None: unset
    # both kinds: what the pod requests, which quota charges; None: a server's profile's
    demand: Demand | None = None
    # how many such pods may run at once (a sweep's parallelism): quota charges each of them,
    # the per-job limits apply to one
    pods_at_once: int = 1

    @property
    def held_gpus(self) -> int:
        """The GPUs quota charges: every pod that may run at once."""
        return self.gpus * self.pods_at_once

    @property
    def requested(self) -> Demand:
        """CPU and memory this workload's pods request at once (what quota charges)."""
        one = self.demand
        if one is None:
            one = profile_demand(self.profile) if self.profile is not None else Demand()
        n = self.pods_at_once
        return one if n == 1 else Demand(one.cpu_millis * n, one.memory_bytes * n)


def admit(request: WorkloadRequest, usage: GpuUsage) -> list[FieldError]:
    """Every reason ``request`` may not run now (empty: it may); quota problems only once the
    policy allows the request."""
    return request_problems(request) or quota_problems(request, usage)


def request_problems(request: WorkloadRequest) -> list[FieldError]:
    """What the policy never allows, whatever else runs."""
    problems: list[FieldError] = []
    if request.kind == "server":
        problems += named_server_problems(
            request.entitlement, request.server_name, request.named_servers
        )
    problems += _image_problems(request)
    problems += _gpu_problems(request)
    if request.kind == "job":
        problems += _job_limit_problems(request)
    return problems


def quota_applies(request: WorkloadRequest) -> bool:
    """Whether any quota can refuse ``request`` (so that a caller may skip counting): it
    holds GPUs, or its quota group has a CPU or memory quota. Jobs always count (job slots)."""
    ent = request.entitlement
    return (
        request.kind == "job"
        or request.gpus > 0
        or ent.cpu_quota_limit is not None
        or ent.memory_quota_limit is not None
    )


def quota_problems(request: WorkloadRequest, usage: GpuUsage) -> list[FieldError]:
    """What other work holding GPUs or job slots forbids now (``usage`` excludes ``request``)."""
    ent, gpus, show = request.entitlement, request.held_gpus, _shower(request)
    problems: list[FieldError] = _compute_quota_problems(request, usage)
    if request.kind == "job" and usage.jobs >= ent.max_concurrent_jobs:
        problems.append(
            FieldError(
                "jobs",
                f"you already have {_plural(usage.jobs, 'unfinished job')}",
                f"at most {ent.max_concurrent_jobs} at a time; wait for one to finish or cancel one",
                "quota",
            )
        )
    if gpus <= 0:
        return problems
    left = max(0, ent.gpu_quota_user - usage.user)
    if gpus > left:
        problems.append(
            FieldError(
                "gpus", _user_quota_words(ent, usage, gpus, left), f"at most {left} now", "quota"
            )
        )
    limit = ent.quota_group_limit
    group_left = max(0, limit - usage.group)
    if gpus > group_left:
        held = _held_by(usage, lambda h: h.group == ent.quota_group)
        problems.append(
            FieldError(
                "gpus",
                f"group {show(ent.quota_group)} already uses {usage.group} of its {limit} GPUs "
                f"{held}; {gpus} more requested. {_free_some(group_left)}",
                f"at most {group_left} now",
                "quota",
            )
        )
    return problems


def _held_by(usage: GpuUsage, counts: Callable[[Holder], bool]) -> str:
    """``(your server alice/ holds 1, …)``: what holds the GPUs, in the one sentence
    :func:`~.holdings.describe_holders` builds; ``(servers and jobs)`` when nothing is named."""
    named = describe_holders([h for h in usage.holders if counts(h)], usage.counted_for)
    return f"({named})" if named else "(servers and jobs)"


def _free_some(left: int) -> str:
    return "Stop a server or a job" + (f", or ask for {left} or fewer" if left > 0 else " first")


def _user_quota_words(ent: Entitlement, usage: GpuUsage, gpus: int, left: int) -> str:
    held = _held_by(usage, lambda h: h.user == usage.counted_for)
    return (
        f"you already use {usage.user} of your {ent.gpu_quota_user} GPUs {held}; "
        f"{gpus} more requested. {_free_some(left)}"
    )


def _compute_quota_problems(request: WorkloadRequest, usage: GpuUsage) -> list[FieldError]:
    """The quota group's CPU and memory, servers and jobs together, counted by requests."""
    ent, asked, show = request.entitlement, request.requested, _shower(request)
    problems: list[FieldError] = []
    kinds = (
        ("cpu", asked.cpu_millis, usage.group_cpu_millis, ent.cpu_quota_limit, format_cpu, " CPUs"),
        ("memory", asked.memory_bytes, usage.group_memory_bytes, ent.memory_quota_limit,
         format_bytes, " of memory"),
    )  # fmt: skip
    for what, amount, held, limit, fmt, unit in kinds:
        if limit is None or amount <= 0:
            continue
        left = max(0, limit - held)
        if amount > left:
            problems.append(
                FieldError(
                    what if request.kind == "job" else "profile",
                    f"group {show(ent.quota_group)} already holds {fmt(held)} of its "
                    f"{fmt(limit)}{unit} (its members' servers and jobs); {fmt(amount)} more "
                    "requested. Stop a server or a job, or ask for less",
                    f"at most {fmt(left)}{unit} now",
                    "quota",
                )
            )
    return problems


def named_server_problems(
    entitlement: Entitlement, server_name: str, other_named_servers: int
) -> list[FieldError]:
    """Named servers per policy: ``named_servers`` is the most a user may have."""
    if not server_name:
        return []
    limit = entitlement.named_servers
    if limit <= 0:
        return [
            FieldError(
                "server_name",
                "named servers are not enabled for your groups (only the default server)",
                "the default server only",
                "policy",
            )
        ]
    if other_named_servers >= limit:
        return [
            FieldError(
                "server_name",
                f"you already have {other_named_servers} named servers (your limit is {limit})",
                f"at most {limit} named servers",
                "quota",
            )
        ]
    return []


# ----------------------------------------------------------------------------- the rules


def _shower(request: WorkloadRequest) -> Callable[[str], str]:
    """How a value is shown inside a sentence: the spawn page quotes it (its sentences have
    always read ``image 'x' is ...``); the gateway's JSON problems show it bare."""
    return repr if request.kind == "server" else str


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _names(items: Collection[str]) -> str:
    return ", ".join(items) if items else "none"


def _images_allowed(ent: Entitlement) -> str:
    parts = []
    if ent.image_projects:
        parts.append("images in projects " + ", ".join(sorted(ent.image_projects)))
    if ent.image_patterns:
        parts.append("images matching " + ", ".join(ent.image_patterns))
    return " or ".join(parts) if parts else "no images are allowed for your groups"


def _image_problems(request: WorkloadRequest) -> list[FieldError]:
    ent, image, show = request.entitlement, request.image, _shower(request)
    if image is None:
        return [
            FieldError(
                "image",
                "no image was chosen, and there is no default to take",
                "an image from the catalogue that your groups may use",
                "policy",
            )
        ]
    if not ent.image_allowed(image):
        patterns = f"; allowed patterns: {_names(ent.image_patterns)}" if ent.image_patterns else ""
        return [
            FieldError(
                "image",
                f"image {show(image)} is not allowed for your groups ({', '.join(ent.groups)});"
                f" allowed projects: {_names(sorted(ent.image_projects))}{patterns}",
                _images_allowed(ent),
                "policy",
            )
        ]
    if request.catalogue and image not in request.catalogue:
        return [
            FieldError(
                "image",
                f"image {show(image)} is not in the image catalogue",
                "an image listed in the catalogue",
                "policy",
            )
        ]
    return []


def _gpu_problems(request: WorkloadRequest) -> list[FieldError]:
    ent, gpus, kind, profile = request.entitlement, request.gpus, request.kind, request.profile
    show = _shower(request)
    if profile is not None and not profile.is_gpu:
        if gpus == 0:
            return []
        return [
            FieldError(
                "gpus",
                f"profile {show(profile.name)} is CPU-only, {gpus} GPUs requested",
                "0",
                "policy",
            )
        ]
    if gpus == 0 and profile is None:
        return []  # a GPU profile offers its choices, and 0 is never one of them
    cap = ent.gpu_per_server if kind == "server" else ent.gpu_per_job
    if cap == 0 or not ent.gpu_types:
        return [
            FieldError(
                "gpus",
                f"{_plural(gpus, 'GPU')} requested, but your groups may not use GPUs in {kind}s",
                "0",
                "policy",
            )
        ]
    # A server chooses among its profile's GPU counts (capped at per_server when the
    # entitlement was merged); a job asks for any count up to per_job.
    allowed = ", ".join(map(str, profile.gpus)) if profile is not None else f"at most {cap}"
    problems: list[FieldError] = []
    if gpus > cap:
        field, what = "gpus", str(gpus)
        if request.nodes > 1:
            field = "gpus_per_node"
            what = f"{gpus} ({request.nodes} nodes × {gpus // request.nodes})"
        problems.append(
            FieldError(
                field,
                f"{what} exceeds your groups' limit of {cap} GPUs per {kind}",
                allowed,
                "policy",
            )
        )
    elif profile is not None and gpus not in profile.gpus:
        problems.append(
            FieldError(
                "gpus", f"{gpus} is not offered for profile {show(profile.name)}", allowed, "policy"
            )
        )
    types = "one of: " + ", ".join(sorted(ent.gpu_types))
    gpu_type = request.gpu_type
    if gpu_type is None:
        problems.append(
            FieldError("gpu_type", "several GPU types are possible; say which one", types, "policy")
        )
    elif gpu_type not in ent.gpu_types:
        problems.append(
            FieldError(
                "gpu_type",
                f"GPU type {show(gpu_type)} is not allowed for your groups",
                types,
                "policy",
            )
        )
    elif not problems and request.node_gpus is not None:
        per_node = gpus // max(1, request.nodes)
        if per_node > request.node_gpus:
            field, where = (
                ("gpus_per_node", "each of a job's nodes")
                if request.nodes > 1
                else ("gpus", f"a {kind} runs on one node")
            )
            problems.append(
                FieldError(
                    field,
                    f"no {show(gpu_type)} node has {per_node} GPUs ({where})",
                    f"at most {request.node_gpus}",
                    "policy",
                )
            )
    return problems


def _job_limit_problems(request: WorkloadRequest) -> list[FieldError]:
    ent = request.entitlement
    problems: list[FieldError] = []
    if request.max_runtime is not None and request.max_runtime > ent.max_job_runtime_seconds:
        problems.append(
            FieldError(
                "max_runtime",
                f"{format_duration(request.max_runtime)} is longer than your maximum job runtime",
                f"at most {format_duration(ent.max_job_runtime_seconds)}",
                "policy",
            )
        )
    if request.retries > ent.max_retries:
        problems.append(
            FieldError(
                "retries",
                f"{request.retries} retries is more than your groups allow",
                f"at most {ent.max_retries}",
                "policy",
            )
        )
    if request.nodes > ent.max_job_nodes:
        problems.append(
            FieldError(
                "nodes",
                f"{request.nodes} nodes is more than your groups allow for one job",
                f"at most {ent.max_job_nodes}",
                "policy",
            )
        )
    problems += _job_size_problems(request)
    known = request.known_datasets
    for i, name in enumerate(request.datasets):
        if name not in known:
            problems.append(
                FieldError(
                    f"datasets[{i}]",
                    f"there is no dataset called {name}",
                    "one of: " + ", ".join(known) if known else "none are configured",
                    "policy",
                )
            )
    return problems


def _job_size_problems(request: WorkloadRequest) -> list[FieldError]:
    """CPU and memory per job: no more than the groups' cap (``jobs.max_cpu``,
    ``jobs.max_memory``, by default the largest profile's)."""
    ent = request.entitlement
    kinds = (
        ("cpu", request.cpu_millis, ent.job_max_cpu_millis, format_cpu, " CPUs"),
        ("memory", request.memory_bytes, ent.job_max_memory_bytes, format_bytes, " of memory"),
    )
    problems: list[FieldError] = []
    for what, amount, cap, fmt, unit in kinds:
        if amount is not None and cap is not None and amount > cap:
            problems.append(
                FieldError(
                    what,
                    f"{fmt(amount)}{unit} is more than your groups allow in one job",
                    f"at most {fmt(cap)}",
                    "policy",
                )
            )
    return problems
