"""Which finished jobs still wait for their outputs to reach S3 (pure, no I/O).

A job's runner uploads its outputs, log and ``result.json`` before its pod ends; when S3 was
unreachable for the runner's whole retry window the files stay on the owner's home and
``result.json`` never reaches S3. :func:`awaiting_upload` picks the finished Jobs with no live
pod left; for each, the gateway reads ``result.json`` from S3 and, when S3 answers without it,
creates the job's upload Job (:func:`gpulab.hub.jobs.manifest.render_upload_job`), which
uploads the files from the home. :func:`upload_job_outcome` reads that Job's end.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

from gpulab.wire.runner import UPLOAD_STATES

from ...workload.holdings import job_finished
from ...workload.labels import FAILED_REASON_ANNOTATION, NEVER_STARTED_ANNOTATION

__all__ = ["UPLOAD_STATES", "awaiting_upload", "upload_job_outcome"]


def _live(pod: Mapping[str, Any]) -> bool:
    return ((pod.get("status") or {}).get("phase")) not in ("Succeeded", "Failed")


def awaiting_upload(
    jobs: Iterable[tuple[str, Mapping[str, Any]]],
    pods_of: Callable[[str], list[dict[str, Any]]],
    known: Mapping[str, str],
) -> list[str]:
    """Ids of the finished Jobs whose pods are all done (or gone) and whose upload is not
    known to be over (``known``: job id -> ``ok | failed``). A Job the gateway failed itself,
    or cancelled before any pod started, never ran: it has nothing to upload."""
    out = []
    for job_id, job in jobs:
        meta = job.get("metadata") or {}
        if known.get(job_id) in ("ok", "failed") or meta.get("deletionTimestamp"):
            continue
        annotations = meta.get("annotations") or {}
        if FAILED_REASON_ANNOTATION in annotations or NEVER_STARTED_ANNOTATION in annotations:
            continue
        if not job_finished(job) or any(_live(p) for p in pods_of(job_id)):
            continue
        out.append(job_id)
    return out


def upload_job_outcome(job: Mapping[str, Any]) -> Literal["running", "done", "failed"]:
    """``done`` once the upload Job completed (result.json is in S3), ``failed`` once it has
    no retries or time left, else ``running``."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") != "True":
            continue
        if cond.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "done"
        if cond.get("type") == "Failed":
            return "failed"
    return "running"
