"""A sweep's results table (``gpulab jobs status``): one row per run, its parameters, state and
metrics (the ``result.json`` each run wrote), sortable by any of them.

``--sort loss`` puts the smallest first, ``--sort=-accuracy`` the largest; runs without that
value come last, in index order.
"""

from __future__ import annotations

import json
from typing import Any

from .output import Column, render_table

__all__ = ["runs_table", "sort_runs", "sort_key_names"]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def sort_key_names(runs: list[dict[str, Any]]) -> list[str]:
    """What a sweep may be sorted by: its metrics, its parameters, ``index``, ``state``."""
    metrics = {k for r in runs for k in (r.get("metrics") or {})}
    params = {k for r in runs for k in (r.get("parameters") or {})}
    return ["index", "state", *sorted(params), *sorted(metrics - params)]


def _value(run: dict[str, Any], name: str) -> Any:
    if name in ("index", "state"):
        return run.get(name)
    metrics = run.get("metrics") or {}
    if name in metrics:
        return metrics[name]
    return (run.get("parameters") or {}).get(name)


def sort_runs(runs: list[dict[str, Any]], sort: str | None) -> list[dict[str, Any]]:
    """``runs`` ordered by ``sort`` (a metric or parameter name; ``-name``: largest first).
    Numbers sort as numbers, anything else as its text; runs lacking the value come last.
    ``ValueError`` for a name no run has."""
    if not sort:
        return list(runs)
    descending = sort.startswith("-")
    name = sort.lstrip("-")
    if name not in sort_key_names(runs):
        raise ValueError(f"no run has {name!r}; sort by one of: {', '.join(sort_key_names(runs))}")

    def key(run: dict[str, Any]) -> tuple[int, float, str]:
        value = _value(run, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return (0, 0.0, _cell(value)) if value is not None else (1, 0.0, "")
        return (0, -float(value) if descending else float(value), "")

    present = [r for r in runs if _value(r, name) is not None]
    absent = [r for r in runs if _value(r, name) is None]
    ordered = sorted(present, key=key)
    if descending and any(key(r)[2] for r in present):  # text values: reverse their order
        ordered = sorted(present, key=lambda r: _cell(_value(r, name)), reverse=True)
    return ordered + absent


def runs_table(runs: list[dict[str, Any]], width: int) -> str:
    """One row per run: RUN, STATE, each parameter that differs between runs, each metric."""
    metrics = sorted({k for r in runs for k in (r.get("metrics") or {})})
    params = [  # those that differ between runs; a name that is also a metric shows once
        k
        for k in sort_key_names(runs)[2:]
        if k not in metrics
        and any(k in (r.get("parameters") or {}) for r in runs)
        and len({_cell((r.get("parameters") or {}).get(k)) for r in runs}) > 1
    ]
    columns = [Column("RUN", whole=True), Column("STATE")]
    columns += [Column(p.upper()) for p in params]
    columns += [Column(m.upper(), right=True) for m in metrics]
    rows = []
    for run in runs:
        row = [str(run.get("index", "")), str(run.get("state", ""))]
        row += [_cell((run.get("parameters") or {}).get(p)) for p in params]
        row += [
            _cell((run.get("metrics") or {})[m]) if m in (run.get("metrics") or {}) else ""
            for m in metrics
        ]
        rows.append(row)
    return render_table(columns, rows, width)
