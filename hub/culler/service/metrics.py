"""The culler service's Prometheus metrics (docs/metrics.md lists them for admins).

* ``gpulab_culler_warnings_total{cause}``, ``gpulab_culler_culls_total{cause}``,
  ``gpulab_culler_cull_errors_total`` and ``gpulab_culler_cycle_duration_seconds``: counted by
  the cycle (:mod:`.cycle`) as it decides and stops;
* ``gpulab_gpus_allocated{group, gpu_type, kind}`` and ``gpulab_gpus_idle{group, gpu_type}``:
  computed at scrape time by :class:`GpuCollector` from the pods the usage recorder's watch
  cache holds (what is allocated) and the culler's last decision per server (which of those
  sit idle), so they cannot drift from either.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from ...usage.recorder import interval_from_pod

if TYPE_CHECKING:  # the cycle counts in this module's counters
    from .cycle import ServerView

__all__ = [
    "CULLS",
    "CULL_ERRORS",
    "CYCLE_SECONDS",
    "METRICS",
    "WARNINGS",
    "GpuCollector",
    "culler_registry",
]

WARNINGS = Counter(
    "gpulab_culler_warnings_total",
    "Servers warned that they will be culled, by cause (idle, max_age); a dry run counts too",
    ["cause"],
)
CULLS = Counter(
    "gpulab_culler_culls_total",
    "Servers the culler stopped, by cause (idle, max_age); a dry run stops nothing",
    ["cause"],
)
CULL_ERRORS = Counter(
    "gpulab_culler_cull_errors_total",
    "Servers the culler decided to cull but could not stop (the hub refused or did not answer)",
)
CYCLE_SECONDS = Histogram(
    "gpulab_culler_cycle_duration_seconds",
    "Time of one cull cycle (reading the hub's users, deciding, stopping)",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)

# Server states in which the culler counts a server's GPUs as idle.
IDLE_STATES = ("idle", "warned")
_ALLOCATED_HELP = (
    "GPUs held by running gpulab pods, by quota group, GPU type and kind (server, job)"
)
_IDLE_HELP = "GPUs held by servers the culler last judged idle or warned, by quota group and type"


class GpuCollector:
    """``gpulab_gpus_allocated`` and ``gpulab_gpus_idle`` at scrape time (module docstring).

    ``pods``: the current gpulab pods (the usage recorder's watch cache; None when the culler
    records no usage, then nothing is reported); ``servers``: the culler's last view of each
    ready server, by (user, server name)."""

    def __init__(
        self,
        pods: Callable[[], Iterable[Mapping[str, Any]]] | None,
        servers: Callable[[], Mapping[tuple[str, str], ServerView]],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.pods = pods
        self.servers = servers
        self.now = now

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "gpulab_gpus_allocated", _ALLOCATED_HELP, labels=["group", "gpu_type", "kind"]
        )
        yield GaugeMetricFamily("gpulab_gpus_idle", _IDLE_HELP, labels=["group", "gpu_type"])

    def collect(self) -> Iterator[Metric]:
        allocated: Tally[tuple[str, str, str]] = Tally()
        idle: Tally[tuple[str, str]] = Tally()
        now = self.now()
        views = self.servers()
        for pod in list(self.pods() if self.pods is not None else ()):
            held = interval_from_pod(pod, now)
            if held is None or held.ended_at is not None or held.gpus <= 0:
                continue
            allocated[(held.group, held.gpu_type, held.kind)] += held.gpus
            view = views.get((held.user, held.server_name)) if held.kind == "server" else None
            if view is not None and view.decision is not None:
                if view.decision.state in IDLE_STATES:
                    idle[(held.group, held.gpu_type)] += held.gpus
        family = GaugeMetricFamily(
            "gpulab_gpus_allocated", _ALLOCATED_HELP, labels=["group", "gpu_type", "kind"]
        )
        for key, gpus in sorted(allocated.items()):
            family.add_metric(list(key), gpus)
        yield family
        # Every group and type holding GPUs has an idle series, 0 when none sits idle.
        family = GaugeMetricFamily("gpulab_gpus_idle", _IDLE_HELP, labels=["group", "gpu_type"])
        for group, gpu_type in sorted({(g, t) for g, t, _ in allocated}):
            family.add_metric([group, gpu_type], idle[(group, gpu_type)])
        yield family


def culler_registry(collector: GpuCollector) -> CollectorRegistry:
    """The culler's own registry: the gauges computed from its caches."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    return registry


METRICS: tuple[Any, ...] = (
    WARNINGS,
    CULLS,
    CULL_ERRORS,
    CYCLE_SECONDS,
    GpuCollector(None, dict),
)
