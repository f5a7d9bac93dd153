"""Usage accounting: GPU-seconds, CPU-seconds and counts per user, group, kind and day.

``models`` (SQLAlchemy tables), ``recorder`` (pod watch events -> intervals, idempotent by pod
uid), ``queries`` (aggregates). See docs/admin.md.
"""

from .models import UsageInterval, make_engine
from .queries import UsageRow, gpu_hours_by_group_day, summarize
from .recorder import PodInterval, UsageRecorder, interval_from_pod

__all__ = [
    "PodInterval",
    "UsageInterval",
    "UsageRecorder",
    "UsageRow",
    "gpu_hours_by_group_day",
    "interval_from_pod",
    "make_engine",
    "summarize",
]
