"""What one user may do: the merge of the policy's rules for the user's groups.

Which groups a user is in is :meth:`.document.Policy.entitlement`'s step (the configured
groups the user is in, in policy order; a user in none gets ``(default_group,)``, or no
entitlement at all when ``default_group`` is null). The merge of those groups is this module's
(documented in docs/policy.md):

* ``quota_group``: the first of those groups in policy order; its ``quota_group`` is charged.
* numbers: the most generous value of any of the groups (the maximum; for duration rules
  where 0 means "off", 0 wins; for ``idle.gpu_threshold`` the minimum; for the per-job CPU
  and memory caps, "not capped" wins).
* CPU and memory quotas: like the GPU quota, each group's own (:mod:`.caps`); the quota
  group's is charged.
* images, profiles, GPU types, exempt users: the union.
* ``contact`` (whom the user asks for access): the first of those groups' own, else the
  platform's.
* profiles: in policy order (the groups in policy order, each group's list in its order, each
  profile once); GPU choices capped at the merged ``gpu_per_server``; a GPU profile whose
  GPU type no group of the user allows, or with no choice left, is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from .caps import group_caps
from .images import parse_image_ref
from .model import GroupPolicy, IdleRules, KernelRules, ProfilePolicy

__all__ = ["Entitlement", "merge_groups"]

_KERNEL_LENIENCY = {"shutdown": 0, "restart": 1, "warn": 2}


@dataclass(frozen=True)
class Entitlement:
    groups: tuple[str, ...]
    quota_group: str
    profiles: list[ProfilePolicy]
    image_projects: frozenset[str]
    image_patterns: tuple[str, ...]
    registries: frozenset[str]  # registry hosts project rules apply to; empty = any host
    gpu_per_server: int
    gpu_per_job: int
    gpu_quota_user: int
    gpu_quota_group: dict[str, int]  # each of the user's groups -> its quota_group
    gpu_types: frozenset[str]
    max_job_runtime_seconds: int
    job_ttl_seconds: int
    max_retries: int
    max_concurrent_jobs: int
    max_definitions: int
    job_gpu_idle_report_after_seconds: int
    job_kill_gpu_idle: bool
    idle: IdleRules
    kernels: KernelRules
    named_servers: int
    wait_for_gpus_seconds: int
    # CPU in millicores, memory in bytes; None: not capped (hub/policy/caps.py).
    job_max_cpu_millis: int | None = None
    job_max_memory_bytes: int | None = None
    max_queued_jobs: int = 20  # where Kueue queues jobs: a user's jobs waiting at once
    max_job_nodes: int = 1  # the most nodes one multi-node job may span
    cpu_quota_group: dict[str, int | None] = field(default_factory=dict)
    memory_quota_group: dict[str, int | None] = field(default_factory=dict)
    contact: str = ""  # whom to ask for access; "": nobody named
    _profile_index: dict[str, ProfilePolicy] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_profile_index", {p.name: p for p in self.profiles})

    # ------------------------------------------------------------------ queries
    @property
    def quota_group_limit(self) -> int:
        """The concurrent-GPU quota of :attr:`quota_group` (the group charged)."""
        return self.gpu_quota_group[self.quota_group]

    @property
    def cpu_quota_limit(self) -> int | None:
        """The CPU quota (millicores) of :attr:`quota_group`; None: not capped."""
        return self.cpu_quota_group.get(self.quota_group)

    @property
    def memory_quota_limit(self) -> int | None:
        """The memory quota (bytes) of :attr:`quota_group`; None: not capped."""
        return self.memory_quota_group.get(self.quota_group)

    @property
    def may_use_gpus(self) -> bool:
        return self.gpu_per_server > 0 or self.gpu_per_job > 0

    def profile(self, name: str) -> ProfilePolicy | None:
        """The (capped) profile of that name if this user may use it."""
        return self._profile_index.get(name)

    @property
    def default_profile(self) -> ProfilePolicy | None:
        """The profile marked ``default``, else the first one."""
        for p in self.profiles:
            if p.default:
                return p
        return self.profiles[0] if self.profiles else None

    def image_allowed(self, image: str) -> bool:
        """True if ``image`` is allowed: its Harbor project (the path segment after the
        registry host) is one of :attr:`image_projects` and its host is a catalogue registry,
        or the full reference matches one of :attr:`image_patterns` (``fnmatch``, case
        sensitive). A bare reference means ``:latest``; a reference that does not parse is
        refused."""
        try:
            ref = parse_image_ref(image)
        except ValueError:
            return False
        if ref.project in self.image_projects and (
            not self.registries or ref.registry in self.registries
        ):
            return True
        candidates = {image, str(ref)}
        return any(fnmatchcase(c, pat) for pat in self.image_patterns for c in candidates)


def _generous_duration(values: Iterable[int]) -> int:
    """0 means "off" (no limit): it wins; otherwise the longest."""
    vals = list(values)
    return 0 if 0 in vals else max(vals)


def _generous_cap(values: Iterable[int | None]) -> int | None:
    """None means "not capped": it wins; otherwise the largest."""
    vals = list(values)
    return None if None in vals else max(vals)


def _merge_idle(rules: list[IdleRules]) -> IdleRules:
    exempt: dict[str, None] = {}
    for r in rules:
        exempt.update(dict.fromkeys(r.exempt_users))
    return IdleRules(
        timeout=_generous_duration(r.timeout_seconds for r in rules),
        max_age=_generous_duration(r.max_age_seconds for r in rules),
        gpu_threshold=min(r.gpu_threshold for r in rules),
        gpu_idle_after=_generous_duration(r.gpu_idle_after_seconds for r in rules),
        warn_before=max(r.warn_before_seconds for r in rules),
        keep_max_count=max(r.keep_max_count for r in rules),
        keep_max_total=max(r.keep_max_total_seconds for r in rules),
        exempt_users=tuple(exempt),
    )


def _merge_kernels(rules: list[KernelRules]) -> KernelRules:
    return KernelRules(
        gpu_idle_after=_generous_duration(r.gpu_idle_after_seconds for r in rules),
        action=max((r.action for r in rules), key=_KERNEL_LENIENCY.__getitem__),
    )


def merge_groups(
    groups: Sequence[GroupPolicy],
    profiles: Mapping[str, ProfilePolicy],
    registries: frozenset[str],
    *,
    contact: str = "",
) -> Entitlement:
    """The entitlement of a user in ``groups`` (at least one, in policy order); ``profiles``
    are the policy's, ``registries`` the catalogue's registry hosts, ``contact`` the
    platform's."""
    names = [g.name for g in groups]
    caps = {g.name: group_caps(g, profiles) for g in groups}
    per_server = max(g.gpu.per_server for g in groups)
    gpu_types = frozenset(t for g in groups for t in g.gpu.types)
    profile_names: dict[str, None] = {}
    for g in groups:
        profile_names.update(dict.fromkeys(g.profiles))
    offered: list[ProfilePolicy] = []
    for pname in profile_names:
        profile = profiles.get(pname)
        if profile is None:
            continue
        if profile.gpu_type is not None and profile.gpu_type not in gpu_types:
            continue
        capped = profile.capped(per_server)
        if capped is not None:
            offered.append(capped)

    projects = frozenset(p for g in groups for p in g.images.projects)
    patterns: dict[str, None] = {}
    for g in groups:
        patterns.update(dict.fromkeys(g.images.patterns))

    return Entitlement(
        groups=tuple(names),
        quota_group=names[0],
        profiles=offered,
        image_projects=projects,
        image_patterns=tuple(patterns),
        registries=registries,
        gpu_per_server=per_server,
        gpu_per_job=max(g.gpu.per_job for g in groups),
        gpu_quota_user=max(g.gpu.quota_user for g in groups),
        gpu_quota_group={g.name: g.gpu.quota_group for g in groups},
        gpu_types=gpu_types,
        max_job_runtime_seconds=max(g.jobs.max_runtime_seconds for g in groups),
        job_ttl_seconds=max(g.jobs.ttl_after_finished_seconds for g in groups),
        max_retries=max(g.jobs.max_retries for g in groups),
        max_concurrent_jobs=max(g.jobs.max_concurrent for g in groups),
        max_queued_jobs=max(g.jobs.max_queued for g in groups),
        max_job_nodes=max(g.jobs.max_nodes for g in groups),
        max_definitions=max(g.jobs.max_definitions for g in groups),
        job_gpu_idle_report_after_seconds=_generous_duration(
            g.jobs.gpu_idle_report_after_seconds for g in groups
        ),
        job_kill_gpu_idle=all(g.jobs.kill_gpu_idle for g in groups),
        idle=_merge_idle([g.idle for g in groups]),
        kernels=_merge_kernels([g.kernels for g in groups]),
        named_servers=max(g.named_servers for g in groups),
        wait_for_gpus_seconds=max(g.wait_for_gpus_seconds for g in groups),
        job_max_cpu_millis=_generous_cap(c.job_cpu_millis for c in caps.values()),
        job_max_memory_bytes=_generous_cap(c.job_memory_bytes for c in caps.values()),
        cpu_quota_group={n: c.group_cpu_millis for n, c in caps.items()},
        memory_quota_group={n: c.group_memory_bytes for n, c in caps.items()},
        contact=next((g.contact for g in groups if g.contact), contact),
    )
