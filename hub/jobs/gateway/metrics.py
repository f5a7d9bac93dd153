"""The jobs gateway's Prometheus metrics (docs/metrics.md lists them for admins).

* ``gpulab_jobs_submits_total{outcome, reason}`` and ``gpulab_jobs_submit_duration_seconds
  {outcome}``: every ``POST /jobs``, counted when its answer is sent
  (:func:`submit_outcome` turns the status into the labels);
* ``gpulab_jobs{state, group}``: the jobs the gateway's watch cache holds, counted at scrape
  time by :class:`JobsCollector` off the job list's index (which the cache keeps, so the
  gauge cannot drift from what the listing shows).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from gpulab.wire.jobs import JOB_STATES

from .job_index import JobIndex

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


class JobsCollector:
    """``gpulab_jobs{state, group}`` at scrape time, read off the job list's index
    (:class:`~.job_index.JobIndex`: the Jobs the watch cache holds plus the cancelled or failed
    jobs kept after Kubernetes deleted them, as the job listing shows them), so a scrape costs
    one count per list, not a walk over every job. Every state is reported for every group
    seen, 0 included, so a state that empties drops to 0 instead of vanishing."""

    def __init__(self, counts: Callable[[], Mapping[tuple[str, str], int]]) -> None:
        self.counts = counts  # (group, state) -> jobs

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("gpulab_jobs", self._help(), labels=["state", "group"])

    @staticmethod
    def _help() -> str:
        return "Jobs by state (" + ", ".join(JOB_STATES) + ") and quota group"

    def collect(self) -> Iterator[Metric]:
        counts = self.counts()
        family = GaugeMetricFamily("gpulab_jobs", self._help(), labels=["state", "group"])
        for group in sorted({group for group, _ in counts}):
            for state in JOB_STATES:
                family.add_metric([state.lower(), group], counts.get((group, state), 0))
        yield family


def gateway_registry(index: JobIndex) -> CollectorRegistry:
    """The gateway's own registry: the gauges computed from its job index."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(JobsCollector(index.counts_by_group_and_state))
    return registry


METRICS: tuple[Any, ...] = (SUBMITS, SUBMIT_SECONDS, JobsCollector(None))  # type: ignore[arg-type]
