"""What one user and their quota group hold now, from the watch cache (no API call).

Counted by :func:`gpulab.hub.workload.holdings.count_usage`, the rule the spawner uses too:
GPUs of servers and jobs, and the user's unfinished (neither finished nor cancelled) jobs.
"""

from __future__ import annotations

from ...workload.holdings import GpuUsage, count_usage
from .cache import ClusterCache

__all__ = ["cache_usage"]


def cache_usage(cache: ClusterCache, user_label: str, group: str) -> GpuUsage:
    """What ``user_label`` (the escaped ``gpulab.io/user`` value) and ``group`` hold."""
    return count_usage(cache.pods.values(), cache.jobs.values(), user=user_label, group=group)
