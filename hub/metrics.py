"""Prometheus metrics every gpulab process shares, and the list of every name gpulab exports.

Each process owns its own definitions in one module: this one (watch-cache relists, in every
process), :mod:`gpulab.hub.catalogue.metrics` (the image catalogue: the hub, the gateway),
:mod:`gpulab.hub.jobs.gateway.metrics` and :mod:`gpulab.hub.culler.service.metrics`. Names
follow JupyterHub's style (``jupyterhub_...`` there, ``gpulab_...`` here): snake case, the unit
in the name, ``_total`` counters, ``_seconds`` histograms, lower-case labels.

Process-wide counters live on prometheus_client's default registry (so in the hub process
JupyterHub's own ``/hub/metrics`` shows them); gauges computed from one service's caches live
in that service's own registry, added to the default one by its ``/metrics`` handler
(:mod:`gpulab.hub.metrics_endpoint`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client import Counter
from prometheus_client.metrics_core import Metric

__all__ = [
    "WATCH_RELISTS",
    "component",
    "exported_names",
    "resource_of",
    "sample_names",
    "set_component",
]

# The process the metrics come from: "hub" unless a service says otherwise at start.
_component = "hub"

WATCH_RELISTS = Counter(
    "gpulab_watch_cache_relists_total",
    "Full lists a watch cache made after its first one: the watch expired (410 Gone), "
    "failed, or a periodic resync was due",
    ["component", "resource", "reason"],
)

RELIST_REASONS = ("expired", "error", "resync")


def set_component(name: str) -> None:
    """Name this process in its metrics' ``component`` label (``jobs-gateway``, ``culler``)."""
    global _component
    _component = name


def component() -> str:
    return _component


_RESOURCE = re.compile(r"/([a-z0-9.-]+)(?:\?.*)?$")


def resource_of(path: str) -> str:
    """The resource a REST collection path names (``/apis/batch/v1/namespaces/x/jobs`` ->
    ``jobs``)."""
    match = _RESOURCE.search(path.rstrip("/"))
    return match.group(1) if match else "unknown"


def sample_names(families: Iterable[Metric]) -> set[str]:
    """The sample names a scrape shows for these metric families (a counter ``x`` is
    ``x_total`` and ``x_created``; a histogram ``x`` is ``x_bucket``, ``x_sum``, ...)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "gauge": ("",),
        "info": ("_info",),
    }
    out: set[str] = set()
    for family in families:
        for suffix in suffixes.get(family.type, ("",)):
            out.add(family.name + suffix)
    return out


def exported_names() -> set[str]:
    """Every sample name a gpulab process may export: the single list the Grafana dashboard
    and the docs are checked against."""
    from .catalogue import metrics as catalogue
    from .culler.service import metrics as culler
    from .jobs.gateway import metrics as gateway

    families: list[Metric] = list(WATCH_RELISTS.describe())
    for module in (catalogue, gateway, culler):
        for metric in module.METRICS:
            families.extend(metric.describe())
    return sample_names(families)
