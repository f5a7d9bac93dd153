"""Progress events in researchers' words (pure): what the spawn page's progress bar says.

KubeSpawner streams the pod's Kubernetes events as ``"<time> [<type>] <message>"``, which is
the scheduler's and the kubelet's text ("0/2 nodes are available: 2 Insufficient
nvidia.com/gpu. preemption: ..."). :func:`explain_event` turns one event into a sentence a
researcher can act on ("waiting for a free A100 GPU: 2 requests ahead") and keeps the raw text
as ``details``; :func:`progress_event` renders both as JupyterHub's ``html_message``, the raw
text only under a "details" disclosure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from markupsafe import escape

__all__ = [
    "Explained",
    "QueueWait",
    "SpawnContext",
    "explain_event",
    "explain_queue",
    "progress_event",
]


@dataclass(frozen=True)
class SpawnContext:
    """What the spawner knows about this start: its GPUs (0: CPU only), their type and
    resource name, how many spawns of that type wait ahead of it, and how long gpulab waits."""

    gpus: int = 0
    gpu_type: str | None = None
    gpu_resource: str | None = None
    ahead: int = 0
    wait: str = ""  # e.g. "10 minutes" (format_duration of wait_for_gpus); "": not known


@dataclass(frozen=True)
class QueueWait:
    """A server Kueue has not admitted yet: its quota group, the work Kueue considers before
    it, the group's GPUs admitted and quota (0: none), and Kueue's own reason."""

    group: str
    ahead: int
    gpus_in_use: int
    quota: int
    reason: str = ""


@dataclass(frozen=True)
class Explained:
    message: str  # in researchers' words
    details: str  # the raw event text; "" when the message says it all


def _gpu_words(ctx: SpawnContext) -> str:
    kind = (ctx.gpu_type or "").upper()
    return f"a free {kind} GPU" if ctx.gpus == 1 else f"{ctx.gpus} free {kind} GPUs"


def _requests(n: int) -> str:
    return "no request ahead" if n == 0 else f"{n} request{'s' if n != 1 else ''} ahead"


# Events whose meaning does not depend on their text.
_PLAIN = {
    "Scheduled": "a node was found for your server",
    "Pulling": "pulling image (the first start of an image on a node takes longer)",
    "Pulled": "image ready",
    "FailedMount": "waiting for your home folder to be attached",
    "FailedAttachVolume": "waiting for your home folder to be attached",
    "Created": "starting the container",
    "Started": "starting Jupyter",
    "BackOff": "the server stopped right after starting; Kubernetes retries it",
}


def explain_event(event: Mapping[str, Any], ctx: SpawnContext) -> Explained | None:
    """One Kubernetes event of the server's pod in researchers' words; None for events that
    need no word (the stream shows nothing new for them)."""
    reason = str(event.get("reason") or "")
    raw = str(event.get("message") or "")
    if reason == "FailedScheduling":
        if ctx.gpus and ctx.gpu_resource and f"Insufficient {ctx.gpu_resource}" in raw:
            wait = f" gpulab waits up to {ctx.wait} for GPUs to free up;" if ctx.wait else ""
            return Explained(
                f"waiting for {_gpu_words(ctx)}: {_requests(ctx.ahead)}.{wait} "
                "you can cancel and try fewer GPUs",
                raw,
            )
        if "Insufficient cpu" in raw or "Insufficient memory" in raw:
            return Explained("waiting for a node with enough free CPU and memory", raw)
        return Explained("waiting for a node that can run your server", raw)
    if reason in ("Failed", "ErrImagePull", "ImagePullBackOff") and "pull" in raw.lower():
        return Explained("the image cannot be pulled; choose another image or tell an admin", raw)
    plain = _PLAIN.get(reason)
    if plain is not None:
        return Explained(plain, raw)
    if not raw:
        return None
    return Explained("Kubernetes: " + (reason or "event"), raw)


def explain_queue(queue: QueueWait, ctx: SpawnContext) -> Explained:
    """A queued server in researchers' words: what it waits for, how many are ahead, how busy
    its group's GPUs are, how long gpulab waits ("2 free A100 GPUs in vision: 3 ahead, 6 of 8
    GPUs of vision in use"); Kueue's reason under details."""
    what = _gpu_words(ctx) if ctx.gpus else "CPU and memory"
    ahead = "nothing ahead" if queue.ahead == 0 else f"{queue.ahead} ahead"
    of = f" of {queue.quota}" if queue.quota else ""
    wait = f" gpulab waits up to {ctx.wait} in the queue;" if ctx.wait else ""
    return Explained(
        f"queued for {what} in {queue.group}: {ahead}, "
        f"{queue.gpus_in_use}{of} GPUs of {queue.group} in use.{wait} "
        "you can cancel and try fewer GPUs",
        queue.reason,
    )


def progress_event(base: Mapping[str, Any], explained: Explained) -> dict[str, Any]:
    """``base`` (KubeSpawner's progress event) with ``message`` in researchers' words and
    ``html_message`` showing the raw text only under a "details" disclosure."""
    html = str(escape(explained.message))
    if explained.details:
        html += (
            '<details class="gpulab-event-details"><summary>details</summary>'
            f"{escape(explained.details)}</details>"
        )
    out = {k: v for k, v in base.items() if k != "raw_event"}
    out.update(message=explained.message, html_message=html)
    return out
