"""Inline SVG charts (pure functions; the page needs no chart library)."""

from __future__ import annotations

import math
from html import escape

__all__ = ["PALETTE", "axis_ticks", "stacked_bars"]

PALETTE = [
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
]


def axis_ticks(peak: float, most: int = 5) -> tuple[list[float], int]:
    """Y-axis ticks from 0 to at least ``peak`` on a 1-2-5 step, at most ``most`` of them, and
    how many decimals tell them apart: each label is printed once (0, 0.05, 0.1, not 0.0, 0.0,
    0.1, 0.1)."""
    if peak <= 0:
        return [0.0, 1.0], 0
    raw = peak / max(1, most - 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw - 1e-12)
    count = math.ceil(peak / step - 1e-9)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    if round(step, decimals) != step:  # 0.25-like steps never arise on 1-2-5; guard anyway
        decimals += 1
    return [round(i * step, decimals + 2) for i in range(count + 1)], decimals


def stacked_bars(
    series: dict[str, dict[str, float]],
    *,
    width: int = 900,
    height: int = 260,
    unit: str = "GPU-h",
    title: str = "",
) -> str:
    """Stacked bars: x = the keys of each series (days, in order), one colour per series."""
    days = sorted({d for s in series.values() for d in s})
    groups = sorted(series)
    left, bottom, top, right = 48, 40, 24, 140
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(series[g].get(d, 0.0) for g in groups) for d in days]
    ticks, decimals = axis_ticks(max(totals, default=0.0))
    peak = ticks[-1]
    bar_w = plot_w / max(1, len(days))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for v in ticks:  # grid + y labels, each value once
        y = top + plot_h - plot_h * v / peak
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="axis">'
            f"{v:.{decimals}f}</text>"
        )
    for i, day in enumerate(days):
        y = top + plot_h
        x = left + i * bar_w
        for gi, g in enumerate(groups):
            v = series[g].get(day, 0.0)
            if v <= 0:
                continue
            h = plot_h * v / peak
            y -= h
            parts.append(
                f'<rect class="bar" data-group="{escape(g)}" data-day="{day}" x="{x + 1:.1f}" '
                f'y="{y:.1f}" width="{max(1.0, bar_w - 2):.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[gi % len(PALETTE)]}"><title>{escape(g)} {day}: '
                f"{v:.2f} {unit}</title></rect>"
            )
        if i % max(1, len(days) // 6) == 0 or i == len(days) - 1:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
                f'class="axis">{day[5:]}</text>'
            )
    parts.append(
        f'<text x="12" y="{top + plot_h / 2:.1f}" class="axis" '
        f'transform="rotate(-90 12 {top + plot_h / 2:.1f})" text-anchor="middle">{unit}</text>'
    )
    for gi, g in enumerate(groups):  # legend
        y = top + 16 * gi
        parts.append(
            f'<rect x="{left + plot_w + 16}" y="{y}" width="12" height="12" '
            f'fill="{PALETTE[gi % len(PALETTE)]}"/>'
            f'<text x="{left + plot_w + 34}" y="{y + 10}" class="legend">{escape(g)}</text>'
        )
    if not days or not groups:
        parts.append(
            f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" '
            f'class="axis">no GPU usage recorded</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
