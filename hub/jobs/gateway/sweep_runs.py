"""A sweep's runs as the API shows them (pure): each index's parameters, state and metrics.

A sweep is one Indexed Job (:mod:`gpulab.hub.jobs.sweep`). Each run's state comes from the
Job's status (``completedIndexes``, ``failedIndexes``: index lists such as ``"0-2,5"``) and,
while it is not finished, from its newest pod (the pod's completion-index annotation); its
metrics from the ``result.json`` the runner uploaded into the run's folder (the program's own
``result.json``, copied as ``metrics``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from gpulab.wire.jobs import JobState

from ...workload.labels import JOB_COMPLETION_INDEX_KEY
from ..sweep import run_count, run_name, sweep_runs

__all__ = [
    "is_sweep",
    "parse_indexes",
    "pod_index",
    "run_states",
    "runs_view",
    "sweep_size",
    "upload_of_runs",
]

_MAX_INDEX = 1 << 20  # a hostile status cannot make us build a huge set


def is_sweep(spec: Mapping[str, Any] | None) -> bool:
    """Whether the (normalised) spec of a job is a sweep."""
    return bool(spec) and spec.get("sweep") is not None  # type: ignore[union-attr]


def parse_indexes(text: Any) -> set[int]:
    """``"0-2,5"`` -> ``{0, 1, 2, 5}`` (the Job status' index lists); junk is skipped."""
    out: set[int] = set()
    if not isinstance(text, str):
        return out
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        try:
            first = int(low)
            last = int(high) if high else first
        except ValueError:
            continue
        if 0 <= first <= last < _MAX_INDEX:
            out.update(range(first, last + 1))
    return out


def pod_index(pod: Mapping[str, Any]) -> int | None:
    """An Indexed Job's pod's completion index (``None``: not an indexed pod)."""
    raw = ((pod.get("metadata") or {}).get("annotations") or {}).get(JOB_COMPLETION_INDEX_KEY)
    return int(raw) if isinstance(raw, str) and raw.isdigit() else None


def run_states(
    job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]], runs: int, job_state: JobState
) -> list[JobState]:
    """Each run's state: done by the Job's status; else its newest pod's phase; a run that
    never ended in a job that did is ``Cancelled`` (the job was cancelled, ran out of time, or
    Kueue never admitted it); else ``Queued`` or ``Pending`` with the job."""
    status = job.get("status") or {}
    done = parse_indexes(status.get("completedIndexes"))
    failed = parse_indexes(status.get("failedIndexes"))
    newest: dict[int, Mapping[str, Any]] = {}
    for pod in pods:
        index = pod_index(pod)
        if index is None:
            continue
        stamp = (pod.get("metadata") or {}).get("creationTimestamp") or ""
        seen = newest.get(index)
        if seen is None or stamp >= ((seen.get("metadata") or {}).get("creationTimestamp") or ""):
            newest[index] = pod
    states: list[JobState] = []
    for index in range(runs):
        if index in done:
            states.append("Succeeded")
        elif index in failed:
            states.append("Failed")
        elif job_state in ("Succeeded", "Failed", "Cancelled"):
            states.append("Cancelled")
        elif index in newest:
            phase = (newest[index].get("status") or {}).get("phase") or "Pending"
            # a finished pod the Job controller has not counted yet is still its run's
            states.append("Pending" if phase == "Pending" else "Running")
        else:
            states.append("Queued" if job_state == "Queued" else "Pending")
    return states


def runs_view(
    spec: Mapping[str, Any],
    job: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    job_state: JobState,
    results: Mapping[int, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The API's ``runs``: ``[{index, name, parameters, state, exit_code, metrics}]`` in index
    order; ``results``: the runs' ``result.json`` known so far, by index."""
    sets = sweep_runs(spec.get("sweep"), spec.get("parameters") or {})
    states = run_states(job, pods, len(sets), job_state)
    out = []
    for index, (parameters, state) in enumerate(zip(sets, states, strict=True)):
        result = results.get(index) or {}
        metrics = result.get("metrics")
        out.append(
            {
                "index": index,
                "name": run_name(index),
                "parameters": parameters,
                "state": state,
                "exit_code": result.get("exit_code"),
                "metrics": dict(metrics) if isinstance(metrics, Mapping) else {},
            }
        )
    return out


def upload_of_runs(states: Iterable[JobState], results: Mapping[int, Mapping[str, Any]]) -> str:
    """A finished sweep's upload: ``failed`` if a run's did, ``ok`` once every run that ended
    by itself has its result.json in S3, ``pending`` before."""
    uploads = [str(r.get("upload")) for r in results.values()]
    if "failed" in uploads:
        return "failed"
    ended = [i for i, state in enumerate(states) if state in ("Succeeded", "Failed")]
    if all(i in results for i in ended) and "pending" not in uploads:
        return "ok"
    return "pending"


def sweep_size(spec: Mapping[str, Any]) -> int:
    """How many runs a (normalised) sweep spec has."""
    sweep = spec.get("sweep")
    return run_count(sweep) if sweep is not None else 0
