"""Where a queued job stands in its Kueue queue, and what preemption cost it (pure, no I/O).

With Kueue, the gateway creates a job's Job suspended and labelled with its LocalQueue
(``kueue.x-k8s.io/queue-name``); Kueue admits its Workload when the quota allows and
un-suspends the Job. Until then the job is ``Queued`` (:func:`is_queued`). What a researcher is
told about it comes from here:

- its **position**: the waiting work of its quota group ahead of it (:class:`QueueBook`): jobs
  of a higher priority class, then jobs of the same class submitted earlier, and notebook
  servers of the group waiting for admission (servers are the highest class). Kueue's fair
  sharing may admit a user who used less first, so the position is an estimate of the order,
  not a promise;
- what it **waits for**: "2 × a100 in vision: 3 jobs ahead, 6 of 8 GPUs busy" (the group's
  GPUs held now, from the same watch cache as every quota count, and the group's quota);
- Kueue's own words (the Workload's ``QuotaReserved`` condition), as details;
- **preemption**: how often Kueue evicted and requeued it (the Workload's
  ``status.requeueState.count``, or the gateway's own count when larger) and the GPU-hours its
  evicted runs had used (:func:`lost_gpu_seconds`, added up by the gateway in the Job's
  ``gpulab.io/preempted-gpu-seconds`` annotation, since the pods are gone after an eviction).
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ...kueue.names import PRIORITY_BATCH, PRIORITY_INTERACTIVE, PRIORITY_PREEMPTIBLE
from ...workload.holdings import is_live_pod, job_finished
from ...workload.labels import (
    CANCELLED_ANNOTATION,
    GPU_TYPE_LABEL,
    GPUS_LABEL,
    GROUP_LABEL,
    JOB_ID_LABEL,
    KUEUE_ADMISSION_GATE,
    KUEUE_PRIORITY_LABEL,
    KUEUE_QUEUE_LABEL,
    PREEMPTED_GPU_SECONDS_ANNOTATION,
    PREEMPTIONS_ANNOTATION,
)

__all__ = [
    "QueueBook",
    "QueueInfo",
    "UserQueues",
    "Preemption",
    "busy_gpus",
    "is_kueue_job",
    "is_queued",
    "lost_gpu_seconds",
    "preemption",
    "queue_info",
    "queue_message",
    "waiting_reason",
]

# WorkloadPriorityClass names, highest first; anything else ranks with the lowest.
PRIORITY_ORDER = (PRIORITY_INTERACTIVE, PRIORITY_BATCH, PRIORITY_PREEMPTIBLE)


class UserQueues(Protocol):
    """Makes a user's LocalQueues (and what they point to) before their first queued job."""

    async def ensure(self, user: str, group: str) -> None: ...


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(obj).get("labels") or {}


def _rank(priority_class: str | None) -> int:
    try:
        return PRIORITY_ORDER.index(priority_class or "")
    except ValueError:
        return len(PRIORITY_ORDER)


def is_kueue_job(job: Mapping[str, Any]) -> bool:
    """Whether the Job was queued through Kueue (it carries a LocalQueue label)."""
    return bool(_labels(job).get(KUEUE_QUEUE_LABEL))


def is_queued(job: Mapping[str, Any]) -> bool:
    """A Kueue job waiting for admission: suspended (as made, or evicted by Kueue), neither
    cancelled nor finished."""
    if not is_kueue_job(job) or not (job.get("spec") or {}).get("suspend"):
        return False
    annotations = _meta(job).get("annotations") or {}
    return CANCELLED_ANNOTATION not in annotations and not job_finished(job)


def _gpus(obj: Mapping[str, Any]) -> int:
    try:
        return max(0, int(_labels(obj).get(GPUS_LABEL, "0")))
    except ValueError:
        return 0


def _is_waiting_server(pod: Mapping[str, Any]) -> bool:
    gates = (pod.get("spec") or {}).get("schedulingGates") or []
    return any(g.get("name") == KUEUE_ADMISSION_GATE for g in gates if isinstance(g, Mapping))


def busy_gpus(
    pods: Iterable[Mapping[str, Any]], jobs: Iterable[Mapping[str, Any]]
) -> dict[str, int]:
    """GPUs each quota group's admitted work holds now, as Kueue counts its quota: running
    (un-suspended, unfinished) Jobs, and servers past their admission gate. A pod still
    terminating after its job was cancelled or preempted is not counted (its quota is free
    again), nor a server still gated (it waits, as a queued job does)."""
    busy: dict[str, int] = {}
    for job in jobs:
        if (job.get("spec") or {}).get("suspend") or job_finished(job):
            continue
        group = _labels(job).get(GROUP_LABEL, "")
        busy[group] = busy.get(group, 0) + _gpus(job)
    for pod in pods:
        labels = _labels(pod)
        if (
            labels.get(JOB_ID_LABEL)
            or _is_waiting_server(pod)
            or _meta(pod).get("deletionTimestamp")
            or not is_live_pod(pod)
        ):
            continue
        group = labels.get(GROUP_LABEL, "")
        busy[group] = busy.get(group, 0) + _gpus(pod)
    return busy


_Key = tuple[int, str, str]  # (priority rank, creationTimestamp, name): admission order


@dataclass
class QueueBook:
    """The waiting work of each quota group in the order Kueue would consider it."""

    order: dict[str, list[_Key]] = field(default_factory=dict)
    keys: dict[str, tuple[str, _Key]] = field(default_factory=dict)  # job id -> (group, key)

    @classmethod
    def build(
        cls, jobs: Iterable[Mapping[str, Any]], pods: Iterable[Mapping[str, Any]] = ()
    ) -> QueueBook:
        book = cls()
        for job in jobs:
            if not is_queued(job):
                continue
            labels = _labels(job)
            key = (
                _rank(labels.get(KUEUE_PRIORITY_LABEL)),
                str(_meta(job).get("creationTimestamp") or ""),
                str(_meta(job).get("name") or ""),
            )
            group = labels.get(GROUP_LABEL, "")
            book.order.setdefault(group, []).append(key)
            book.keys[str(labels.get(JOB_ID_LABEL) or key[2])] = (group, key)
        for pod in pods:
            labels = _labels(pod)
            if labels.get(JOB_ID_LABEL) or not _is_waiting_server(pod):
                continue
            key = (0, str(_meta(pod).get("creationTimestamp") or ""), str(_meta(pod).get("name")))
            book.order.setdefault(labels.get(GROUP_LABEL, ""), []).append(key)
        for keys in book.order.values():
            keys.sort()
        return book

    def ahead(self, job_id: str) -> int | None:
        """How much waiting work of its group comes before the job; None: not waiting."""
        found = self.keys.get(job_id)
        if found is None:
            return None
        group, key = found
        return bisect_left(self.order[group], key)


def waiting_reason(workload: Mapping[str, Any] | None) -> str:
    """Kueue's words for why the Workload is not admitted yet (``QuotaReserved`` False)."""
    for cond in ((workload or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "QuotaReserved" and cond.get("status") == "False":
            return str(cond.get("message") or cond.get("reason") or "")
    return ""


@dataclass(frozen=True)
class Preemption:
    count: int = 0  # times Kueue evicted the job and requeued it
    gpu_seconds: float = 0.0  # GPU-seconds its evicted runs had used

    @property
    def gpu_hours(self) -> float:
        return round(self.gpu_seconds / 3600.0, 3)


def _int(value: Any) -> int:
    try:
        return max(0, int(float(str(value))))
    except (TypeError, ValueError):
        return 0


def preemption(
    job: Mapping[str, Any],
    workload: Mapping[str, Any] | None,
    unrecorded: Preemption | None = None,
) -> Preemption:
    """How often the job was preempted and requeued, and the GPU time that cost it: what the
    Job's annotations record plus the evictions seen but not recorded yet (``unrecorded``), or
    the Workload's requeue count when larger (an eviction the gateway did not see)."""
    annotations = _meta(job).get("annotations") or {}
    status = (workload or {}).get("status") or {}
    extra = unrecorded or Preemption()
    seen = _int(annotations.get(PREEMPTIONS_ANNOTATION)) + extra.count
    count = max(_int((status.get("requeueState") or {}).get("count")), seen)
    if count == 0:
        count = int(
            any(
                c.get("type") in ("Preempted", "Evicted") and c.get("reason") == "Preempted"
                for c in status.get("conditions") or []
                if isinstance(c, Mapping)
            )
        )
    try:
        seconds = max(0.0, float(annotations.get(PREEMPTED_GPU_SECONDS_ANNOTATION) or 0))
    except ValueError:
        seconds = 0.0
    return Preemption(count, seconds + extra.gpu_seconds)


def _parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def lost_gpu_seconds(
    job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], now: dt.datetime
) -> float:
    """The GPU-seconds the job's running pods have used until ``now``: what an eviction at
    ``now`` loses (the work since the last checkpoint is what is really lost; gpulab cannot
    see checkpoints, so it counts the whole run)."""
    gpus = _gpus(job)
    total = 0.0
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            running = (status.get("state") or {}).get("running") or {}
            started = _parse_time(running.get("startedAt"))
            if started is not None:
                total += max(0.0, (now - started).total_seconds()) * gpus
    return total


@dataclass(frozen=True)
class QueueInfo:
    """What the API shows of a queued job (``queue`` in the Job JSON)."""

    name: str  # the LocalQueue
    ahead: int
    gpus: int
    gpu_type: str | None
    group: str
    gpus_busy: int
    gpus_quota: int | None
    preemptible: bool
    reason: str

    def message(self) -> str:
        return queue_message(self)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "position": self.ahead + 1,
            "ahead": self.ahead,
            "gpus_busy": self.gpus_busy,
            "gpus_quota": self.gpus_quota,
            "preemptible": self.preemptible,
            "reason": self.reason or None,
        }


def _jobs(n: int) -> str:
    return f"{n} job{'' if n == 1 else 's'} ahead" if n else "next in line"


def queue_message(info: QueueInfo) -> str:
    """ "2 × a100 in vision: 3 jobs ahead, 6 of 8 GPUs busy"; a CPU job: "CPU in vision: ..."."""
    what = f"{info.gpus} × {info.gpu_type or 'GPU'}" if info.gpus else "CPU"
    where = f"borrowed idle GPUs for {info.group}" if info.preemptible else info.group
    text = f"{what} in {where}: {_jobs(info.ahead)}"
    if info.gpus and info.gpus_quota is not None:
        text += f", {info.gpus_busy} of {info.gpus_quota} GPUs busy"
    elif info.gpus:
        text += f", {info.gpus_busy} GPUs busy"
    return text


def queue_info(
    job: Mapping[str, Any],
    book: QueueBook,
    *,
    gpus_busy: int,
    gpus_quota: int | None,
    workload: Mapping[str, Any] | None,
) -> QueueInfo | None:
    """The queue facts of a queued job; None when it is not waiting."""
    labels = _labels(job)
    ahead = book.ahead(str(labels.get(JOB_ID_LABEL) or _meta(job).get("name") or ""))
    if ahead is None:
        return None
    return QueueInfo(
        name=str(labels.get(KUEUE_QUEUE_LABEL) or ""),
        ahead=ahead,
        gpus=_gpus(job),
        gpu_type=labels.get(GPU_TYPE_LABEL),
        group=str(labels.get(GROUP_LABEL) or ""),
        gpus_busy=gpus_busy,
        gpus_quota=gpus_quota,
        preemptible=labels.get(KUEUE_PRIORITY_LABEL) == PRIORITY_PREEMPTIBLE,
        reason=waiting_reason(workload),
    )
