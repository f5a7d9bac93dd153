"""A job an admin cancelled with a reason says so in its state message, for its owner."""

from __future__ import annotations

from gpulab.hub.jobs.gateway.state import job_state
from gpulab.hub.workload.labels import (
    CANCEL_REASON_ANNOTATION,
    CANCELLED_ANNOTATION,
    CANCELLED_BY_ANNOTATION,
)


def _cancelled(**extra: str) -> dict:
    marks = {CANCELLED_ANNOTATION: "2026-12-03T10:00:00Z", CANCELLED_BY_ANNOTATION: "admin"}
    return {"metadata": {"name": "j-1", "annotations": {**marks, **extra}}, "status": {}}


def test_a_cancel_with_a_reason_gives_it_in_the_message():
    job = _cancelled(**{CANCEL_REASON_ANNOTATION: "GPU nodes go down at 18:00"})
    assert job_state(job, []) == ("Cancelled", "cancelled by admin: GPU nodes go down at 18:00")


def test_a_cancel_without_a_reason_names_who_only():
    assert job_state(_cancelled(), []) == ("Cancelled", "cancelled by admin")
