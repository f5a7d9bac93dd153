"""Aggregates over the usage intervals: GPU-seconds, CPU-seconds and pod counts.

Intervals are clipped to the window and split at UTC midnights, so a server that ran from
23:00 to 01:00 counts one hour on each day. Open intervals count up to ``until``. The
aggregation runs in Python over the intervals that overlap the window (one indexed query):
the same on sqlite and PostgreSQL.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Engine, or_, select
from sqlalchemy.orm import Session

from .models import UsageInterval

__all__ = ["UsageRow", "gpu_hours_by_group_day", "intervals", "summarize", "day_slices"]

Key = tuple[str, ...]
DIMENSIONS = ("user", "group", "kind", "day")


@dataclass(frozen=True)
class UsageRow:
    key: dict[str, str]
    gpu_seconds: float
    cpu_seconds: float
    count: int

    @property
    def gpu_hours(self) -> float:
        return self.gpu_seconds / 3600

    def to_json(self) -> dict:
        return {
            **self.key,
            "gpu_hours": round(self.gpu_hours, 3),
            "cpu_hours": round(self.cpu_seconds / 3600, 3),
            "gpu_seconds": round(self.gpu_seconds, 1),
            "cpu_seconds": round(self.cpu_seconds, 1),
            "count": self.count,
        }


def intervals(engine: Engine, since: datetime, until: datetime) -> list[UsageInterval]:
    """Every interval that overlaps [since, until)."""
    with Session(engine) as s:
        rows = s.scalars(
            select(UsageInterval).where(
                UsageInterval.started_at < until,
                or_(UsageInterval.ended_at.is_(None), UsageInterval.ended_at > since),
            )
        ).all()
        s.expunge_all()
        return list(rows)


def day_slices(start: datetime, end: datetime) -> Iterator[tuple[date, float]]:
    """(UTC day, seconds) pieces of [start, end)."""
    t = start
    while t < end:
        midnight = datetime(t.year, t.month, t.day, tzinfo=UTC) + timedelta(days=1)
        piece_end = min(end, midnight)
        yield t.date(), (piece_end - t).total_seconds()
        t = piece_end


def summarize(
    engine: Engine,
    since: datetime,
    until: datetime | None = None,
    by: Sequence[str] = ("user", "group", "kind"),
) -> list[UsageRow]:
    """Totals per combination of ``by`` (any of user, group, kind, day), GPU-hours first."""
    bad = [d for d in by if d not in DIMENSIONS]
    if bad:
        raise ValueError(f"cannot group by {bad}; allowed: {', '.join(DIMENSIONS)}")
    until = until or datetime.now(UTC)
    gpu: dict[Key, float] = defaultdict(float)
    cpu: dict[Key, float] = defaultdict(float)
    pods: dict[Key, set[str]] = defaultdict(set)
    for row in intervals(engine, since, until):
        start = max(row.started_at, since)
        end = min(row.ended_at or until, until)
        if end <= start:
            continue
        pieces = day_slices(start, end) if "day" in by else [(None, (end - start).total_seconds())]
        for day, seconds in pieces:
            values = {
                "user": row.user,
                "group": row.group,
                "kind": row.kind,
                "day": day.isoformat() if day else "",
            }
            key = tuple(values[d] for d in by)
            gpu[key] += row.gpus * seconds
            cpu[key] += row.cpu * seconds
            pods[key].add(row.pod_uid)
    out = [
        UsageRow(dict(zip(by, key, strict=True)), gpu[key], cpu[key], len(pods[key]))
        for key in pods
    ]
    out.sort(key=lambda r: (-r.gpu_seconds, -r.cpu_seconds, tuple(r.key.values())))
    return out


def gpu_hours_by_group_day(
    engine: Engine, days: int = 30, now: datetime | None = None
) -> dict[str, dict[str, float]]:
    """{group: {YYYY-MM-DD: GPU-hours}} for the last ``days`` UTC days (today included),
    every day present (0.0 where nothing ran)."""
    now = now or datetime.now(UTC)
    first = datetime(now.year, now.month, now.day, tzinfo=UTC) - timedelta(days=days - 1)
    all_days = [(first + timedelta(days=i)).date().isoformat() for i in range(days)]
    out: dict[str, dict[str, float]] = {}
    for r in summarize(engine, first, now, by=("group", "day")):
        if r.gpu_seconds <= 0:
            continue
        series = out.setdefault(r.key["group"] or "(none)", dict.fromkeys(all_days, 0.0))
        series[r.key["day"]] = round(series.get(r.key["day"], 0.0) + r.gpu_hours, 3)
    return out
