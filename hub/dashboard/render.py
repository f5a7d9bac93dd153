"""Render the dashboard page from the overview data (``GET /api/v1/overview``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpulab.hub.culler.rules import format_duration
from tornado import template

from .charts import stacked_bars

__all__ = ["STATIC_PATH", "TEMPLATE_PATH", "XSRF_SLOT", "render_dashboard"]

HERE = Path(__file__).resolve().parent
TEMPLATE_PATH = HERE / "templates"
STATIC_PATH = HERE / "static"

_loader = template.Loader(str(TEMPLATE_PATH), autoescape="xhtml_escape")


# Where the requester's XSRF token goes in a page rendered once for every admin.
XSRF_SLOT = "gpulab-xsrf-slot-8c1f"
REFRESH_SECONDS = 15  # the page fetches itself this often and patches its sections


def render_dashboard(data: dict[str, Any], *, prefix: str, xsrf: str) -> str:
    chart = stacked_bars(
        data.get("gpu_hours_by_group_day") or {},
        title="GPU-hours per group per day (last 30 days)",
    )
    return (
        _loader.load("dashboard.html")
        .generate(
            d=data,
            chart=chart,
            prefix=prefix.rstrip("/"),
            xsrf=xsrf,
            dur=format_duration,
            refresh_seconds=REFRESH_SECONDS,
        )
        .decode()
    )
