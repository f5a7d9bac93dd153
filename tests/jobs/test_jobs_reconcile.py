"""The pure decision of which Jobs are half-made (created without their upload Secret)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from gpulab.hub.jobs.gateway.reconcile import HALF_MADE_REASON, half_made_candidates, is_half_made
from gpulab.hub.jobs.gateway.state import job_state
from gpulab.hub.workload.labels import CANCELLED_ANNOTATION, FAILED_REASON_ANNOTATION

NOW = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)


def _job(age: float, annotations: dict[str, str] | None = None, **status: Any) -> dict[str, Any]:
    created = (NOW - dt.timedelta(seconds=age)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"creationTimestamp": created, "annotations": annotations or {}},
        "status": status,
    }


def test_old_unfinished_job_without_secret_is_half_made() -> None:
    assert is_half_made(_job(120), NOW, 60, secret_exists=False)


def test_job_with_its_secret_is_not_half_made() -> None:
    assert not is_half_made(_job(120), NOW, 60, secret_exists=True)


def test_job_within_grace_is_left_to_its_submit() -> None:
    assert not is_half_made(_job(10), NOW, 60, secret_exists=False)


def test_finished_cancelled_or_already_failed_jobs_are_not_candidates() -> None:
    done = _job(120, conditions=[{"type": "Complete", "status": "True"}])
    cancelled = _job(120, {CANCELLED_ANNOTATION: "2026-01-01T11:59:00Z"})
    marked = _job(120, {FAILED_REASON_ANNOTATION: "x"})
    jobs = [("done", done), ("cancelled", cancelled), ("marked", marked), ("live", _job(120))]
    assert half_made_candidates(jobs, NOW, 60) == ["live"]


def test_job_without_creation_time_is_not_a_candidate() -> None:
    assert half_made_candidates([("x", {"metadata": {}})], NOW, 60) == []


def test_a_failed_half_made_job_shows_failed_with_the_reason() -> None:
    assert job_state(_job(120, {FAILED_REASON_ANNOTATION: HALF_MADE_REASON}), []) == (
        "Failed",
        HALF_MADE_REASON,
    )
