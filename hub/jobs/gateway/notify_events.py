"""Which notifications a job is owed, what they say, and their signature (pure, no I/O).

A job owes its owner one notification per transition: ``succeeded``, ``failed``,
``cancelled`` (once each, by its state), ``preempted`` once per eviction Kueue made
(``preempted:<n>``, from the count the gateway records on the Job), and ``gpu_idle`` once per
idle episode the culler reported (``gpu_idle:<since>``). What was sent is kept on
the Job itself (``gpulab.io/notified``: event key -> delivery status), so a restarted gateway,
which rebuilds everything from its watch cache, owes exactly what the annotations say.

Webhook bodies are signed: ``X-Gpulab-Signature: sha256=<hex HMAC-SHA256 of the body>`` with
the user's webhook secret (docs/jobs.md shows how a receiver verifies it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ...workload.labels import GPU_IDLE_ANNOTATION, NOTIFIED_ANNOTATION, PREEMPTIONS_ANNOTATION
from .notify_settings import Event
from .state import job_view

__all__ = [
    "SIGNATURE_HEADER",
    "Due",
    "due_notifications",
    "notified",
    "payload",
    "sign",
]

SIGNATURE_HEADER = "X-Gpulab-Signature"
_BY_STATE: dict[str, Event] = {
    "Succeeded": "succeeded",
    "Failed": "failed",
    "Cancelled": "cancelled",
}


@dataclass(frozen=True)
class Due:
    """One notification a job owes: its key in the annotation and its event."""

    key: str  # "succeeded", "preempted:2", ...
    event: Event


def notified(job: Mapping[str, Any]) -> dict[str, Any]:
    """The Job's record of notifications sent (event key -> status); ``{}`` if none."""
    raw = ((job.get("metadata") or {}).get("annotations") or {}).get(NOTIFIED_ANNOTATION)
    try:
        value = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _gpu_idle(annotations: Mapping[str, Any]) -> dict[str, Any] | None:
    """The culler's finding that the job's GPUs are idle (since, reason, action), or None."""
    try:
        value = json.loads(annotations.get(GPU_IDLE_ANNOTATION) or "null")
    except (TypeError, ValueError):
        return None
    if isinstance(value, dict) and isinstance(value.get("since"), str):
        return value
    return None


def due_notifications(job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Due]:
    """The notifications the job owes now and has not been recorded as sent."""
    sent = notified(job)
    view = job_view(job, pods)
    out: list[Due] = []
    annotations = (job.get("metadata") or {}).get("annotations") or {}
    try:
        preemptions = int(annotations.get(PREEMPTIONS_ANNOTATION) or 0)
    except ValueError:
        preemptions = 0
    for n in range(1, min(preemptions, 1000) + 1):
        key = f"preempted:{n}"
        if key not in sent:
            out.append(Due(key, "preempted"))
    idle = _gpu_idle(annotations)
    if idle is not None and f"gpu_idle:{idle['since']}" not in sent:
        out.append(Due(f"gpu_idle:{idle['since']}", "gpu_idle"))
    event = _BY_STATE.get(str(view["state"]))
    if event is not None and event not in sent:
        out.append(Due(event, event))
    return out


def payload(
    job: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    event: Event,
    base_url: str | None,
    *,
    test: bool = False,
) -> dict[str, Any]:
    """The JSON a webhook receives (and what an e-mail says): job id, state, exit code, links."""
    view = job_view(job, pods)
    job_id = str(view["id"])
    links: dict[str, str] = {}
    if base_url:
        base = base_url if base_url.endswith("/") else base_url + "/"
        links = {
            "job": f"{base}api/v1/jobs/{job_id}",
            "logs": f"{base}api/v1/jobs/{job_id}/logs",
            "outputs": f"{base}api/v1/jobs/{job_id}/outputs",
            "page": f"{base}jobs/#{job_id}",
        }
    return {
        "event": event,
        "job_id": job_id,
        "name": view["name"],
        "owner": view["owner"],
        "state": view["state"],
        "exit_code": view["exit_code"],
        "message": _message(job, view, event),
        "finished": view["finished"],
        "links": links,
        "test": test,
    }


def _message(job: Mapping[str, Any], view: Mapping[str, Any], event: Event) -> str:
    if event == "gpu_idle":
        idle = _gpu_idle((job.get("metadata") or {}).get("annotations") or {}) or {}
        stop = " It is being stopped (the policy says so)." if idle.get("action") == "kill" else ""
        return f"{idle.get('reason') or 'its GPUs are idle'}.{stop}"
    return str(view["message"] or "")


def sign(body: bytes, secret: str) -> str:
    """The value of the signature header for ``body``."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"
