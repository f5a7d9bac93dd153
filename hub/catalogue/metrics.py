"""The image catalogue's Prometheus metrics, on the default registry of the process that holds
a catalogue: the hub (so JupyterHub's own ``/hub/metrics`` shows them) and the jobs gateway.

* ``gpulab_catalogue_refreshes_total{source}`` and
  ``gpulab_catalogue_load_errors_total{source, error}``: counted by each load
  (:mod:`.cache`); with ``source="harbor"`` the errors are Harbor's (``error``: Harbor's error
  code or gpulab's ``timeout``, ``unreachable``, ``bad_response``, in lower case);
* ``gpulab_catalogue_refresh_age_seconds{source}`` and ``gpulab_catalogue_images{source}``:
  read at scrape time from every started catalogue (:class:`CatalogueCollector`).
"""

from __future__ import annotations

import re
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import REGISTRY, Counter
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from .cache import Catalogue

__all__ = [
    "LOAD_ERRORS",
    "METRICS",
    "REFRESHES",
    "CatalogueCollector",
    "error_class",
    "source_kind",
    "track",
]

REFRESHES = Counter(
    "gpulab_catalogue_refreshes_total",
    "Successful loads of the image catalogue, by source (harbor, static)",
    ["source"],
)
LOAD_ERRORS = Counter(
    "gpulab_catalogue_load_errors_total",
    "Failed loads of the image catalogue (the last good one stays in service), by source and "
    "error: Harbor's error code or timeout, unreachable, bad_response, unexpected",
    ["source", "error"],
)
_AGE_HELP = "Seconds since the image catalogue last loaded successfully (absent before the first)"
_IMAGES_HELP = "Images in the catalogue in service"
_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,39}$")


def source_kind(source: Any) -> str:
    """``harbor`` or ``static`` (the source class's name, without ``Source``)."""
    return type(source).__name__.removesuffix("Source").lower() or "unknown"


def error_class(exc: BaseException) -> str:
    """A bounded label value for a failed load."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    code = getattr(exc, "code", None)
    if isinstance(code, str) and _CODE.match(code):
        return code.lower()
    return "unexpected"


class CatalogueCollector:
    """Refresh age and size of every catalogue started in this process (one, in practice)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.catalogues: weakref.WeakSet[Catalogue] = weakref.WeakSet()
        self.clock = clock

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "gpulab_catalogue_refresh_age_seconds", _AGE_HELP, labels=["source"]
        )
        yield GaugeMetricFamily("gpulab_catalogue_images", _IMAGES_HELP, labels=["source"])

    def collect(self) -> Iterator[Metric]:
        age = GaugeMetricFamily(
            "gpulab_catalogue_refresh_age_seconds", _AGE_HELP, labels=["source"]
        )
        images = GaugeMetricFamily("gpulab_catalogue_images", _IMAGES_HELP, labels=["source"])
        seen: set[str] = set()
        now = self.clock()
        for catalogue in list(self.catalogues):
            stats = catalogue.stats
            kind = source_kind(catalogue.source)
            if kind in seen:
                continue  # one series per source: the first catalogue of each kind
            seen.add(kind)
            images.add_metric([kind], stats.images)
            if stats.last_refresh is not None:
                age.add_metric([kind], max(0.0, now - stats.last_refresh))
        yield age
        yield images


COLLECTOR = CatalogueCollector()
REGISTRY.register(COLLECTOR)


def track(catalogue: Catalogue) -> None:
    """Report this catalogue's age and size (called when it starts refreshing)."""
    COLLECTOR.catalogues.add(catalogue)


METRICS: tuple[Any, ...] = (REFRESHES, LOAD_ERRORS, COLLECTOR)
