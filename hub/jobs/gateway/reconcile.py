"""Which Jobs are half-made: created, but without their upload Secret (pure, no I/O).

The gateway creates a Job, then its upload Secret. If the Secret create fails, the gateway
dies in between, or the rollback delete fails, the Job waits for a Secret that never comes
and holds a job slot until its deadline. ``half_made_candidates`` picks the Jobs worth one
GET of their Secret; ``is_half_made`` decides once that answer is known. The gateway then
fails the Job (``HALF_MADE_REASON``) and deletes it, keeping it in its owner's history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from ...workload.holdings import job_finished
from ...workload.labels import CANCELLED_ANNOTATION, FAILED_REASON_ANNOTATION

__all__ = ["HALF_MADE_REASON", "half_made_candidates", "is_half_made"]

HALF_MADE_REASON = (
    "the gateway could not finish creating this job (its upload credential is missing); "
    "submit it again"
)


def _created(job: Mapping[str, Any]) -> dt.datetime | None:
    raw = (job.get("metadata") or {}).get("creationTimestamp")
    if not raw:
        return None
    try:
        at = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def _candidate(job: Mapping[str, Any], now: dt.datetime, grace_seconds: float) -> bool:
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    if CANCELLED_ANNOTATION in annotations or FAILED_REASON_ANNOTATION in annotations:
        return False  # already on its way out
    if job_finished(job):
        return False
    created = _created(job)
    # Within the grace period a normal submit may still be creating the Secret.
    return created is not None and (now - created).total_seconds() >= grace_seconds


def half_made_candidates(
    jobs: Iterable[tuple[str, Mapping[str, Any]]], now: dt.datetime, grace_seconds: float
) -> list[str]:
    """Ids of the unfinished, unmarked Jobs older than the grace period."""
    return [job_id for job_id, job in jobs if _candidate(job, now, grace_seconds)]


def is_half_made(
    job: Mapping[str, Any], now: dt.datetime, grace_seconds: float, secret_exists: bool
) -> bool:
    return not secret_exists and _candidate(job, now, grace_seconds)
