"""What one user and their quota group hold now, from the watch cache (no API call).

Counted by :func:`gpulab.hub.workload.holdings.count_usage`, the rule the spawner uses too:
GPUs of servers and jobs, and the user's unfinished (neither finished nor cancelled) jobs.
A check that reads only the user's job slots (:func:`cache_job_slots`) counts them from the
cache's by-user index instead: the user's own Jobs, not every pod and Job in the namespace.
"""

from __future__ import annotations

from ...workload.holdings import GpuUsage, count_usage, job_finished
from .cache import ClusterCache

__all__ = ["cache_job_slots", "cache_usage"]


def cache_usage(cache: ClusterCache, user_label: str, group: str) -> GpuUsage:
    """What ``user_label`` (the escaped ``gpulab.io/user`` value) and ``group`` hold."""
    return count_usage(cache.pods.values(), cache.jobs.values(), user=user_label, group=group)


def cache_job_slots(cache: ClusterCache, user_label: str) -> GpuUsage:
    """Only the unfinished jobs of ``user_label`` (as :func:`cache_usage` counts them; GPUs,
    CPU and memory left at 0): all a check of a job that holds no GPUs, in a group without a
    CPU or memory quota, reads."""
    jobs = (cache.job(name) for name in cache.user_job_ids(user_label))
    return GpuUsage(jobs=sum(1 for job in jobs if job is not None and not job_finished(job)))
