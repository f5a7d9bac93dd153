"""The jobs gateway's Prometheus metrics (docs/metrics.md lists them for admins).

* ``gpulab_jobs_submits_total{outcome, reason}`` and ``gpulab_jobs_submit_duration_seconds
  {outcome}``: every ``POST /jobs``, counted when its answer is sent
  (:func:`submit_outcome` turns the status into the labels);
* ``gpulab_jobs{state, group}``: the jobs the gateway's watch cache holds, counted at scrape
  time by :class:`JobsCollector` (nothing is maintained by hand, so it cannot drift).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from gpulab.wire.jobs import JOB_STATES

from ...workload.labels import GROUP_LABEL
from .state import job_state

__all__ = [
    "METRICS",
    "SUBMITS",
    "SUBMIT_SECONDS",
    "JobsCollector",
    "gateway_registry",
    "observe_submit",
    "submit_outcome",
]

SUBMITS = Counter(
    "gpulab_jobs_submits_total",
    "Job submissions (POST /jobs) by outcome: accepted (reason new, or repeat for a retried "
    "Idempotency-Key), refused (the caller's problem: reason auth, forbidden, bad_request, "
    "invalid, quota, conflict, too_large, other) or error (the platform's: unavailable, "
    "internal)",
    ["outcome", "reason"],
)
SUBMIT_SECONDS = Histogram(
    "gpulab_jobs_submit_duration_seconds",
    "Time to answer a job submission, by outcome (accepted, refused, error)",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)

# A refused submit's status -> its reason class (docs/gateway.md lists the statuses).
_REFUSED = {
    400: "bad_request",
    401: "auth",
    403: "forbidden",
    404: "bad_request",
    409: "conflict",
    413: "too_large",
    415: "bad_request",
    422: "invalid",
    429: "quota",
}


def submit_outcome(status: int) -> tuple[str, str]:
    """(outcome, reason) of a submit answered ``status``."""
    if status == 201:
        return "accepted", "new"
    if status < 400:
        return "accepted", "repeat"
    if status < 500:
        return "refused", _REFUSED.get(status, "other")
    return "error", "unavailable" if status in (502, 503, 504) else "internal"


def observe_submit(status: int, seconds: float) -> None:
    outcome, reason = submit_outcome(status)
    SUBMITS.labels(outcome, reason).inc()
    SUBMIT_SECONDS.labels(outcome).observe(seconds)


class JobCache(Protocol):
    """What :class:`JobsCollector` reads of :class:`~.cache.ClusterCache`."""

    jobs: dict[str, dict[str, Any]]
    tombstones: Any  # job id -> {"job": ..., "pods": [...]}

    def job_pods(self, job_id: str) -> list[dict[str, Any]]: ...


def _group(job: dict[str, Any]) -> str:
    return str(((job.get("metadata") or {}).get("labels") or {}).get(GROUP_LABEL) or "")


class JobsCollector:
    """``gpulab_jobs{state, group}`` from the watch cache at scrape time: the Jobs it holds
    plus the cancelled or failed jobs it keeps after Kubernetes deleted them (as the job
    listing shows them). Every state is reported for every group seen, 0 included, so a
    state that empties drops to 0 instead of vanishing."""

    def __init__(self, cache: JobCache) -> None:
        self.cache = cache

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("gpulab_jobs", self._help(), labels=["state", "group"])

    @staticmethod
    def _help() -> str:
        return "Jobs by state (" + ", ".join(JOB_STATES) + ") and quota group"

    def collect(self) -> Iterator[Metric]:
        counts: Tally[tuple[str, str]] = Tally()
        groups: set[str] = set()
        for job_id, job in list(self.cache.jobs.items()):
            state, _ = job_state(job, self.cache.job_pods(job_id))
            counts[(state, _group(job))] += 1
            groups.add(_group(job))
        for job_id, stone in list(self.cache.tombstones.items()):
            if job_id in self.cache.jobs:
                continue
            state, _ = job_state(stone["job"], stone.get("pods") or ())
            counts[(state, _group(stone["job"]))] += 1
            groups.add(_group(stone["job"]))
        family = GaugeMetricFamily("gpulab_jobs", self._help(), labels=["state", "group"])
        for group in sorted(groups):
            for state in JOB_STATES:
                family.add_metric([state.lower(), group], counts[(state, group)])
        yield family


def gateway_registry(cache: JobCache) -> CollectorRegistry:
    """The gateway's own registry: the gauges computed from its cache."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(JobsCollector(cache))
    return registry


METRICS: tuple[Any, ...] = (SUBMITS, SUBMIT_SECONDS, JobsCollector(None))  # type: ignore[arg-type]
