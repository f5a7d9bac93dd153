"""A watch-backed cache of gpulab's Jobs and Pods.

For each kind, one :class:`~gpulab.hub.kube.WatchCache` (list, then watch, with the label
selector ``app.kubernetes.io/managed-by=gpulab``; resumes cut watches, relists on 410 Gone,
backs off on errors). Reading costs no API call: list and get of the REST API are served from
here.

Indexes kept up to date on every event: Jobs by user (``gpulab.io/user``), by submit key
(``gpulab.io/submit-key``), Pods by job id (``gpulab.io/job-id``), and the jobs list's
:class:`~.job_index.JobIndex` (every listable job by creation time, owner, group and state; a
pod event updates its job's state there). Jobs deleted while marked cancelled are kept as
*tombstones* (the Job JSON as it was last seen) so that a cancelled job still lists as
Cancelled after Kubernetes removed it.

Where Kueue runs (``kueue=True``), a third watch holds the namespace's Kueue Workloads, by the
Job that owns each (what a queued job waits for, how often it was requeued), and the cache
notices each eviction of a running job (its Job suspended again by Kueue, not cancelled): the
GPU time the evicted run had used is kept in :attr:`ClusterCache.preempted` until the gateway
adds it to the Job's annotations (the pods are gone afterwards).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from ...kube import WatchCache
from ...workload.labels import (
    COMPONENT_LABEL,
    DEFINITION_LABEL,
    FAILED_REASON_ANNOTATION,
    JOB_ID_LABEL,
    JOB_NAME_LABEL,
    KUBESPAWNER_COMPONENT_LABEL,
    MANAGED_SELECTOR,
    SERVER_COMPONENT,
    SUBMIT_KEY_LABEL,
    USER_LABEL,
)
from .job_index import JobIndex, entry_of
from .kube import Kube
from .queue import Preemption, is_kueue_job, lost_gpu_seconds
from .state import CANCELLED_ANNOTATION

__all__ = ["ClusterCache"]

SELECTOR = MANAGED_SELECTOR
MAX_TOMBSTONES = 10_000


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _rv(obj: dict[str, Any]) -> int:
    try:
        return int(_meta(obj).get("resourceVersion") or 0)
    except ValueError:
        return 0


def pod_job_id(pod: dict[str, Any]) -> str | None:
    """The job a pod runs for: its job-id label, except for a saved definition's scheduled
    run, whose pods all carry the definition's id there: the run's own Job name then."""
    labels = _meta(pod).get("labels") or {}
    if labels.get(DEFINITION_LABEL) and labels.get(JOB_NAME_LABEL):
        return labels[JOB_NAME_LABEL]
    return labels.get(JOB_ID_LABEL)


class ClusterCache:
    """Jobs and Pods labelled ``managed-by=gpulab`` in the gateway's namespace."""

    def __init__(self, kube: Kube, page_size: int = 500, *, kueue: bool = False) -> None:
        self.kube = kube
        self.kueue = kueue
        self.workloads: dict[str, dict[str, Any]] = {}  # Workload name -> Workload
        self.workload_of_job: dict[str, str] = {}  # Job name -> its Workload's name
        # Evictions seen and not yet recorded on their Job: job id -> (count, GPU-seconds).
        self.preempted: dict[str, Preemption] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.pods: dict[str, dict[str, Any]] = {}
        self.jobs_by_user: dict[str, set[str]] = {}
        self.jobs_by_key: dict[str, str] = {}
        self.pods_by_job: dict[str, set[str]] = {}
        self.tombstones: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.index = JobIndex()  # what the jobs list reads: live Jobs and tombstones
        self.changed = asyncio.Condition()
        self._version = 0
        kinds = [
            (kube.jobs_path(), "jobs", SELECTOR, self._reset_jobs, self._job_event),
            (kube.pods_path(), "pods", SELECTOR, self._reset_pods, self._pod_event),
        ]
        if kueue:  # Kueue makes the Workloads: they carry none of gpulab's labels
            kinds.append(
                (kube.workloads_path(), "workloads", "", self._reset_workloads, self._wl_event)
            )
        self.watches = tuple(
            WatchCache(
                kube,
                path,
                name=name,
                label_selector=selector,
                on_reset=on_reset,
                on_event=on_event,
                page_size=page_size,
            )
            for path, name, selector, on_reset, on_event in kinds
        )

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        for watch in self.watches:
            watch.start()

    async def stop(self) -> None:
        for watch in self.watches:
            await watch.stop()

    async def wait_synced(self, seconds: float | None = None) -> bool:
        try:
            await asyncio.wait_for(
                asyncio.gather(*(watch.synced.wait() for watch in self.watches)), seconds
            )
        except TimeoutError:
            return False
        return True

    @property
    def synced(self) -> bool:
        return all(watch.synced.is_set() for watch in self.watches)

    async def wait_changed(self, seconds: float) -> None:
        """Return after the next change of any object (or after ``seconds``)."""
        async with self.changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), seconds)

    def _notify(self) -> None:
        self._version += 1

        async def wake() -> None:
            async with self.changed:
                self.changed.notify_all()

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(wake())

    # ------------------------------------------------------------------ jobs
    def _index_job(self, name: str, job: dict[str, Any] | None) -> None:
        old = self.jobs.get(name)
        if old is not None:
            labels = _meta(old).get("labels") or {}
            self.jobs_by_user.get(labels.get(USER_LABEL, ""), set()).discard(name)
            key = labels.get(SUBMIT_KEY_LABEL)
            if key and self.jobs_by_key.get(key) == name:
                del self.jobs_by_key[key]
        if job is None:
            self.jobs.pop(name, None)
            return
        self.jobs[name] = job
        labels = _meta(job).get("labels") or {}
        self.jobs_by_user.setdefault(labels.get(USER_LABEL, ""), set()).add(name)
        if labels.get(SUBMIT_KEY_LABEL):
            self.jobs_by_key[labels[SUBMIT_KEY_LABEL]] = name

    def _is_job(self, obj: dict[str, Any]) -> bool:
        return bool((_meta(obj).get("labels") or {}).get(JOB_ID_LABEL))

    def _reset_jobs(self, items: list[dict[str, Any]]) -> None:
        seen = {_meta(j).get("name") for j in items}
        for name in list(self.jobs):
            if name not in seen:
                self._job_event("DELETED", self.jobs[name])
        self.jobs_by_user.clear()
        self.jobs_by_key.clear()
        self.jobs.clear()
        for job in items:
            if self._is_job(job):
                self._index_job(_meta(job)["name"], job)
        self._rebuild_list_index()
        self._notify()

    def _job_event(self, kind: str, job: dict[str, Any]) -> None:
        name = _meta(job).get("name")
        if not name or not self._is_job(job):
            return
        if kind == "DELETED":
            last = self.jobs.get(name, job)
            annotations = _meta(last).get("annotations") or {}
            if CANCELLED_ANNOTATION in annotations or FAILED_REASON_ANNOTATION in annotations:
                pods = [self.pods[p] for p in self.pods_by_job.get(name, ())]
                self.tombstones[name] = {"job": last, "pods": pods}
                self._trim_tombstones()
            self._index_job(name, None)
        else:
            old = self.jobs.get(name)
            if old is not None and _rv(old) > _rv(job):
                return  # an older version than the one we hold (our own write landed first)
            if old is not None and _evicted(old, job):
                self._note_eviction(name, old)
            self._index_job(name, job)
            self.tombstones.pop(name, None)
        self._list_entry(name)
        self._notify()

    def _trim_tombstones(self) -> None:
        while len(self.tombstones) > MAX_TOMBSTONES:
            name, _ = self.tombstones.popitem(last=False)
            self._list_entry(name)

    def add_tombstones(self, records: Iterable[dict[str, Any]]) -> None:
        """Cancelled jobs remembered elsewhere (S3): kept unless the Job still exists."""
        for record in records:
            name = _meta(record.get("job") or {}).get("name")
            if name and name not in self.jobs and name not in self.tombstones:
                self.tombstones[name] = {
                    "job": record["job"],
                    "pods": list(record.get("pods") or []),
                }
                self._list_entry(name)
        self._trim_tombstones()
        self._notify()

    def _note_eviction(self, name: str, old: dict[str, Any]) -> None:
        lost = lost_gpu_seconds(old, self.job_pods(name), dt.datetime.now(dt.UTC))
        seen = self.preempted.get(name, Preemption())
        self.preempted[name] = Preemption(seen.count + 1, seen.gpu_seconds + lost)

    def put_job(self, job: dict[str, Any]) -> None:
        """Record a Job the gateway just created or changed (read your own writes)."""
        self._job_event("MODIFIED", job)

    # ------------------------------------------------------------------ pods
    def _index_pod(self, name: str, pod: dict[str, Any] | None) -> None:
        old = self.pods.get(name)
        if old is not None:
            job_id = pod_job_id(old)
            if job_id:
                self.pods_by_job.get(job_id, set()).discard(name)
                if not self.pods_by_job.get(job_id):
                    self.pods_by_job.pop(job_id, None)
        if pod is None:
            self.pods.pop(name, None)
            return
        self.pods[name] = pod
        job_id = pod_job_id(pod)
        if job_id:
            self.pods_by_job.setdefault(job_id, set()).add(name)

    def _reset_pods(self, items: list[dict[str, Any]]) -> None:
        self.pods.clear()
        self.pods_by_job.clear()
        for pod in items:
            self._index_pod(_meta(pod)["name"], pod)
        self._rebuild_list_index()
        self._notify()

    def _pod_event(self, kind: str, pod: dict[str, Any]) -> None:
        name = _meta(pod).get("name")
        if not name:
            return
        old = self.pods.get(name)
        self._index_pod(name, None if kind == "DELETED" else pod)
        # the pod moves its job's state (and a pod can only be relabelled, never re-owned)
        for obj in (old, pod):
            job_id = pod_job_id(obj) if obj else None
            if job_id and job_id in self.jobs:
                self._list_entry(job_id)
        self._notify()

    # ------------------------------------------------------------------ Kueue's Workloads
    def _reset_workloads(self, items: list[dict[str, Any]]) -> None:
        self.workloads.clear()
        self.workload_of_job.clear()
        for wl in items:
            self._wl_event("ADDED", wl, notify=False)
        self._notify()

    def _wl_event(self, kind: str, wl: dict[str, Any], *, notify: bool = True) -> None:
        name = _meta(wl).get("name")
        if not name:
            return
        job = _owning_job(wl)
        if kind == "DELETED":
            self.workloads.pop(name, None)
            if job and self.workload_of_job.get(job) == name:
                del self.workload_of_job[job]
        else:
            self.workloads[name] = wl
            if job:
                self.workload_of_job[job] = name
        if notify:
            self._notify()

    def workload(self, job_id: str) -> dict[str, Any] | None:
        """The Kueue Workload of a job's Job, if Kueue made one."""
        name = self.workload_of_job.get(job_id)
        return self.workloads.get(name) if name else None

    @property
    def version(self) -> int:
        """Grows with every change the cache sees."""
        return self._version

    # ------------------------------------------------------------------ the list's index
    def _list_entry(self, job_id: str) -> None:
        """Bring ``job_id``'s entry in the list index up to date: the live Job's, else its
        tombstone's, else none."""
        job = self.jobs.get(job_id)
        if job is not None:
            self.index.put(entry_of(job_id, job, self.job_pods(job_id)))
            return
        stone = self.tombstones.get(job_id)
        if stone is not None:
            self.index.put(entry_of(job_id, stone["job"], stone["pods"]))
        else:
            self.index.remove(job_id)

    def _rebuild_list_index(self) -> None:
        """After a relist: every entry again, in one sort."""
        entries = [entry_of(k, job, self.job_pods(k)) for k, job in self.jobs.items()]
        entries += [
            entry_of(k, stone["job"], stone["pods"])
            for k, stone in self.tombstones.items()
            if k not in self.jobs
        ]
        self.index.reset(entries)

    # ------------------------------------------------------------------ reading
    def job(self, job_id: str) -> dict[str, Any] | None:
        return self.jobs.get(job_id)

    def job_pods(self, job_id: str) -> list[dict[str, Any]]:
        return [self.pods[n] for n in self.pods_by_job.get(job_id, ()) if n in self.pods]

    def user_job_ids(self, user_label: str) -> Iterable[str]:
        return tuple(self.jobs_by_user.get(user_label, ()))

    def job_for_submit_key(self, key: str) -> dict[str, Any] | None:
        name = self.jobs_by_key.get(key)
        return self.jobs.get(name) if name else None

    def server_pods(self, user_label: str | None = None) -> list[dict[str, Any]]:
        """Notebook server pods (``component=singleuser-server``), of one user or all."""
        out = []
        for pod in self.pods.values():
            labels = _meta(pod).get("labels") or {}
            if (
                labels.get(COMPONENT_LABEL) != SERVER_COMPONENT
                and labels.get(KUBESPAWNER_COMPONENT_LABEL) != SERVER_COMPONENT
            ):
                continue
            if user_label is None or labels.get(USER_LABEL) == user_label:
                out.append(pod)
        return out


def _owning_job(wl: dict[str, Any]) -> str | None:
    for ref in _meta(wl).get("ownerReferences") or []:
        if ref.get("kind") == "Job" and str(ref.get("apiVersion", "")).startswith("batch/"):
            return ref.get("name")
    return None


def _evicted(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether this change is Kueue suspending a running Job (a preemption), not a cancel."""
    was, now = (old.get("spec") or {}).get("suspend"), (new.get("spec") or {}).get("suspend")
    annotations = _meta(new).get("annotations") or {}
    return bool(
        not was
        and now
        and is_kueue_job(new)
        and CANCELLED_ANNOTATION not in annotations
        and FAILED_REASON_ANNOTATION not in annotations
    )
