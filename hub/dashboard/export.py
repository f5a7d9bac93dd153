"""The dashboard's tables as CSV (pure): what an admin pastes into a spreadsheet or a report.

Cells that a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first) are quoted
with a leading apostrophe: user and group names come from the identity provider.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["RUNNING_COLUMNS", "USAGE_COLUMNS", "running_csv", "usage_csv"]

USAGE_COLUMNS = ("user", "group", "kind", "gpu_hours", "cpu_hours", "count")
RUNNING_COLUMNS = (
    "kind",
    "user",
    "group",
    "name",
    "server",
    "job_id",
    "gpus",
    "gpu_type",
    "started",
)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}"
    text = str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _table(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue()


def usage_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The usage table (``overview["usage"]``): GPU- and CPU-hours and pods per user, group
    and kind."""
    return _table(rows, USAGE_COLUMNS)


def running_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    """The running servers and jobs (``overview["running"]``)."""
    return _table(rows, RUNNING_COLUMNS)
