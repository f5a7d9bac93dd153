"""The CPU and memory caps of one group, as written or derived from its profiles (pure).

Per job, ``jobs.max_cpu`` and ``jobs.max_memory``; when a key is left out, the cap is the
largest amount one of the group's own profiles gives a server: its ``limit``, or its
``guarantee`` where it sets no limit. A job of the group can thus never be bigger than the
biggest server the group may start unless the admin says so. When none of the group's profiles
names an amount, the group's jobs are not capped (``check-policy`` warns).

Per group, ``cpu.quota_group`` and ``memory.quota_group``: what everyone charged to the group
may hold at once, servers and jobs together, counted by what their pods request. They have no
derived default: left out, the group is not capped (the namespace's ResourceQuota still is).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .model import GroupPolicy, ProfilePolicy
from .quantities import cpu_millicores, quantity_bytes

__all__ = ["GroupCaps", "group_caps", "profile_cpu_millis", "profile_memory_bytes"]


@dataclass(frozen=True)
class GroupCaps:
    """CPU in millicores and memory in bytes; ``None``: not capped."""

    job_cpu_millis: int | None
    job_memory_bytes: int | None
    group_cpu_millis: int | None
    group_memory_bytes: int | None
    job_cpu_derived: bool  # the per-job CPU cap came from the profiles, not jobs.max_cpu
    job_memory_derived: bool


def profile_cpu_millis(profile: ProfilePolicy) -> int | None:
    """The most CPU a server of this profile may use (limit, else guarantee)."""
    value = profile.cpu.limit if profile.cpu.limit is not None else profile.cpu.guarantee
    return None if value is None else cpu_millicores(value)


def profile_memory_bytes(profile: ProfilePolicy) -> int | None:
    """The most memory a server of this profile may use (limit, else guarantee)."""
    value = profile.memory.limit if profile.memory.limit is not None else profile.memory.guarantee
    return None if value is None else quantity_bytes(value)


def _largest(values: Iterable[int | None]) -> int | None:
    return max((v for v in values if v is not None), default=None)


def group_caps(group: GroupPolicy, profiles: Mapping[str, ProfilePolicy]) -> GroupCaps:
    """``group``'s caps; ``profiles``: the policy's (names the group lists but the policy
    lacks are skipped: the cross-check reports them)."""
    own = [profiles[name] for name in group.profiles if name in profiles]
    jobs = group.jobs
    job_cpu = (
        cpu_millicores(jobs.max_cpu)
        if jobs.max_cpu is not None
        else _largest(map(profile_cpu_millis, own))
    )
    job_memory = (
        quantity_bytes(jobs.max_memory)
        if jobs.max_memory is not None
        else _largest(map(profile_memory_bytes, own))
    )
    cpu_quota, memory_quota = group.cpu.quota_group, group.memory.quota_group
    return GroupCaps(
        job_cpu_millis=job_cpu,
        job_memory_bytes=job_memory,
        group_cpu_millis=None if cpu_quota is None else cpu_millicores(cpu_quota),
        group_memory_bytes=None if memory_quota is None else quantity_bytes(memory_quota),
        job_cpu_derived=jobs.max_cpu is None,
        job_memory_derived=jobs.max_memory is None,
    )
