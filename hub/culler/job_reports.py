"""Whose GPU report is this? (pure, no I/O)

A GPU job's runner reports with the job's report token; the job's pod carries the token's
SHA-256 (``gpulab.io/report-token-sha256``, set by the jobs gateway). A report is taken only
when a running pod of that job in the culler's watch cache carries the hash of the token sent:
the token lives in the job's upload Secret, readable only in that pod, so no other job or
user can speak for it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..workload.labels import (
    GPUS_LABEL,
    JOB_ID_LABEL,
    OWNER_ANNOTATION,
    REPORT_TOKEN_HASH_ANNOTATION,
)

__all__ = ["ReportingJob", "reporting_job"]


@dataclass(frozen=True)
class ReportingJob:
    """The running job a report is about, as its pod says."""

    job_id: str
    owner: str
    gpus: int
    started: datetime


def _started(pod: Mapping[str, Any]) -> datetime | None:
    raw = (pod.get("status") or {}).get("startTime") or (pod.get("metadata") or {}).get(
        "creationTimestamp"
    )
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        return None


def reporting_job(
    pods: Iterable[Mapping[str, Any]], job_id: str, token: str
) -> ReportingJob | None:
    """The job whose running pod carries the hash of ``token``, or None."""
    if not token:
        return None
    digest = hashlib.sha256(token.encode()).hexdigest()
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        if labels.get(JOB_ID_LABEL) != job_id:
            continue
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        if not hmac.compare_digest(str(annotations.get(REPORT_TOKEN_HASH_ANNOTATION, "")), digest):
            continue
        started = _started(pod)
        owner = annotations.get(OWNER_ANNOTATION)
        try:
            gpus = int(labels.get(GPUS_LABEL, "0"))
        except ValueError:
            gpus = 0
        if started is None or not owner:
            continue
        return ReportingJob(job_id, str(owner), gpus, started)
    return None
