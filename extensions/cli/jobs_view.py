"""How a job is shown: the list's columns and the detail view, one function each.

Add a column here (and only here) to show it in ``gpulab jobs list`` and ``status``.
"""

from __future__ import annotations

from typing import Any

from .output import Column, render_table

__all__ = ["job_details", "jobs_table", "queue_text"]


def _time(value: Any) -> str:
    return str(value or "")[:19].replace("T", " ")


def queue_text(job: dict[str, Any]) -> str:
    """Where a Queued job stands (``#3 in alice``) and what preemption cost it; "" for a job
    Kueue does not queue."""
    parts = []
    queue = job.get("queue")
    if isinstance(queue, dict):
        parts.append(f"#{queue.get('position')} in {queue.get('name')}")
    if job.get("preemptions"):
        parts.append(
            f"preempted, requeued ({job['preemptions']}×), "
            f"{job.get('gpu_hours_lost', 0)} GPU-h lost"
        )
    return "; ".join(parts)


def jobs_table(jobs: list[dict[str, Any]], *, wide: bool, show_owner: bool, width: int) -> str:
    """``gpulab jobs list``: the job id is whole at any width; ``-o wide`` adds columns."""
    columns = [Column("JOB", whole=True)]
    if show_owner or wide:
        columns.append(Column("OWNER"))
    columns += [Column("STATE"), Column("QUEUE"), Column("GPUS", right=True), Column("CREATED")]
    if wide:
        columns += [Column("IMAGE"), Column("STARTED"), Column("FINISHED"), Column("MESSAGE")]
    rows = []
    for job in jobs:
        row = [str(job.get("id", ""))]
        if show_owner or wide:
            row.append(str(job.get("owner", "")))
        row += [
            str(job.get("state", "?")),
            queue_text(job),
            str(job.get("gpus", 0)),
            _time(job.get("created")),
        ]
        if wide:
            row += [
                str(job.get("image") or ""),
                _time(job.get("started")),
                _time(job.get("finished")),
                str(job.get("message") or ""),
            ]
        rows.append(row)
    return render_table(columns, rows, width)


DETAIL_FIELDS = (
    "id",
    "name",
    "owner",
    "group",
    "state",
    "image",
    "gpus",
    "created",
    "started",
    "finished",
    "exit_code",
    "message",
    "queue",
    "upload",
)


def job_details(job: dict[str, Any]) -> str:
    """``gpulab jobs status``: one field a line."""
    shown = {**job, "queue": queue_text(job)}
    fields = [(k, shown.get(k)) for k in DETAIL_FIELDS if shown.get(k) not in (None, "")]
    if job.get("parameters"):
        params = ", ".join(f"{k}={v}" for k, v in sorted(job["parameters"].items()))
        fields.append(("parameters", params))
    if (job.get("nodes") or 1) > 1:  # a multi-node job: each rank's pod
        ranks = ", ".join(
            f"{r['rank']} {r.get('phase', '?')}"
            + (f" (exit {r['exit_code']})" if r.get("exit_code") is not None else "")
            for r in job.get("ranks") or []
        )
        fields.append(("nodes", f"{job['nodes']}; ranks: {ranks or 'none yet'}"))
    width = max((len(k) for k, _ in fields), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in fields)
