"""GPUs in use per user and per quota group, from the watch cache (no API call).

GPUs are counted by :mod:`gpulab.hub.workload`, the one rule the spawner uses too. A user's
*unfinished jobs* are those neither finished nor cancelled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ...workload.holdings import gpu_holdings
from ..validate import UsageSnapshot
from .cache import ClusterCache
from .state import is_finished

__all__ = ["gpu_usage", "usage_snapshot"]


def gpu_usage(
    pods: Iterable[Mapping[str, Any]], jobs: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, int], dict[str, int]]:
    """(GPUs per ``gpulab.io/user`` value, GPUs per ``gpulab.io/group``) over all objects,
    counted exactly as the spawner counts them (:func:`gpulab.hub.workload.gpu_holdings`)."""
    return gpu_holdings(pods, jobs)


def usage_snapshot(cache: ClusterCache, user_label: str) -> UsageSnapshot:
    """What ``validate_against_policy`` needs for one user: their GPUs, every group's GPUs
    and their unfinished jobs."""
    per_user, per_group = gpu_usage(cache.pods.values(), cache.jobs.values())
    unfinished = sum(
        1
        for job_id in cache.user_job_ids(user_label)
        if (job := cache.job(job_id)) is not None and not is_finished(job)
    )
    return UsageSnapshot(
        user_gpus=per_user.get(user_label, 0), group_gpus=per_group, user_jobs=unfinished
    )
