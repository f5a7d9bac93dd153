"""The batch/v1 Job controller.

Reconciles a Job whenever it or one of its pods changes (and on timers for
``activeDeadlineSeconds`` and ``ttlSecondsAfterFinished``): creates pods from the template
with the real labels and owner reference, counts succeeded and failed pods (failed = failed
pods, plus container restarts under ``restartPolicy: OnFailure``), and sets the real status
and conditions (``SuccessCriteriaMet`` then ``Complete``; ``FailureTarget`` then ``Failed``
with ``BackoffLimitExceeded``, ``DeadlineExceeded``, ``MaxFailedIndexesExceeded`` or
``FailedIndexes``; ``Suspended``).

Indexed Jobs (``completionMode: Indexed``): one pod per index (``<job>-<index>-xxxxx``), the
index in the ``batch.kubernetes.io/job-completion-index`` annotation and label and in
``JOB_COMPLETION_INDEX``, the pod's ``hostname`` set to ``<job>-<index>`` (its ``subdomain``
comes from the template: with a headless Service of that name the pods find each other by
name, see ``hostsfile.py``), ``status.completedIndexes``; with ``backoffLimitPerIndex`` each
index has its own retry budget (``batch.kubernetes.io/job-index-failure-count`` on the
replacement pod), an index past it is listed in ``status.failedIndexes`` and not retried,
and more than ``maxFailedIndexes`` failed indexes fail the whole Job at once. The selector and
template labels are defaulted by the store at create time, as the apiserver does.

Simplification: a failed pod is replaced at once (the real controller backs off 10 s, 20 s,
...), so tests of ``backoffLimit`` stay quick.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from datetime import UTC, datetime
from typing import Any

from gpulab.kubesim import podsecurity
from gpulab.kubesim.events import EventRecorder
from gpulab.kubesim.selectors import parse_label_selector
from gpulab.kubesim.store import ApiError, ResourceType, Store, WatchEvent, now_rfc3339, resource

log = logging.getLogger(__name__)
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
# How often the pod's index failed before it (backoffLimitPerIndex), as upstream records it.
INDEX_FAILURES_KEY = "batch.kubernetes.io/job-index-failure-count"
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
_Key = tuple[str, str]


def _parse_time(ts: str) -> float:
    return datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def _controller_uid(pod: dict[str, Any]) -> str | None:
    for ref in pod["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "Job":
            return str(ref.get("uid"))
    return None


def _condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def _finished(job: dict[str, Any]) -> bool:
    return any(
        (c := _condition(job, t)) is not None and c.get("status") == "True"
        for t in ("Complete", "Failed")
    )


def _format_indexes(indexes: set[int]) -> str:
    """``completedIndexes`` format: "0-2,5"."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def _pod_index(pod: dict[str, Any]) -> int | None:
    raw = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _pod_ready(pod: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


class JobController:
    def __init__(self, store: Store, recorder: EventRecorder) -> None:
        self._store = store
        self._recorder = recorder
        self._dirty: set[_Key] = set()
        self._pass_scheduled = False
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}  # (uid, kind)
        # uids of terminated pods already counted in a job's status, per job uid (the real
        # controller tracks this with a finalizer and status.uncountedTerminatedPods).
        self._counted: dict[str, set[str]] = {}
        self._unsubscribe = store.subscribe(self._on_event, read_only=True)
        for job in store.list(resource("jobs", "batch"))[0]:
            self._mark(job["metadata"]["namespace"], job["metadata"]["name"])

    def close(self) -> None:
        self._unsubscribe()
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()

    # -- triggers -----------------------------------------------------------------------------
    def _on_event(self, rt: ResourceType, event: WatchEvent) -> None:
        obj = event.object
        if rt.kind == "Job":
            if event.type == "DELETED":
                uid = obj["metadata"]["uid"]
                self._counted.pop(uid, None)
                for key in [k for k in self._timers if k[0] == uid]:
                    self._timers.pop(key).cancel()
                return
            self._mark(obj["metadata"]["namespace"], obj["metadata"]["name"])
        elif rt.kind == "Pod" and _controller_uid(obj):
            for ref in obj["metadata"].get("ownerReferences") or []:
                if ref.get("controller") and ref.get("kind") == "Job":
                    self._mark(obj["metadata"]["namespace"], ref["name"])

    def _mark(self, namespace: str, name: str) -> None:
        self._dirty.add((namespace, name))
        if not self._pass_scheduled:
            self._pass_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_pass)

    def _timer(self, job: dict[str, Any], kind: str, at: float) -> None:
        md = job["metadata"]
        key = (md["uid"], kind)
        if key in self._timers:
            return
        delay = max(0.0, at - datetime.now(UTC).timestamp())
        ns, name = md["namespace"], md["name"]

        def fire() -> None:
            self._timers.pop(key, None)
            self._mark(ns, name)

        self._timers[key] = asyncio.get_running_loop().call_later(delay + 0.05, fire)

    def _run_pass(self) -> None:
        self._pass_scheduled = False
        todo, self._dirty = self._dirty, set()
        for ns, name in sorted(todo):
            job = self._store.get(resource("jobs", "batch"), ns, name)
            if job is None or job["metadata"].get("deletionTimestamp"):
                continue
            try:
                self._reconcile(job)
            except ApiError as e:
                log.warning("job %s/%s: %s", ns, name, e)

    # -- reconcile --------------------------------------------------------------------------------
    def _reconcile(self, job: dict[str, Any]) -> None:
        md, spec = job["metadata"], job.get("spec") or {}
        ns, uid = md["namespace"], md["uid"]
        status = copy.deepcopy(job.get("status") or {})
        if _finished(job):
            self._ttl(job)
            return
        selector = spec.get("selector") or {}
        labels = ",".join(f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items())
        sel = parse_label_selector(labels or None)
        pods = [
            p
            for p in self._store.list(resource("pods"), ns, copy_objects=False)[0]
            if _controller_uid(p) == uid and sel.matches(p)
        ]
        active = [
            p
            for p in pods
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            and not p["metadata"].get("deletionTimestamp")
        ]
        if uid not in self._counted:  # first look at this job since the controller started
            self._counted[uid] = _already_counted(pods, status)
        counted = self._counted[uid]
        succeeded, failed = int(status.get("succeeded", 0)), int(status.get("failed", 0))
        indexed = spec.get("completionMode") == "Indexed"
        done_indexes = _parse_indexes(status.get("completedIndexes", ""))
        per_index = spec.get("backoffLimitPerIndex") if indexed else None
        failed_indexes = _parse_indexes(status.get("failedIndexes", ""))
        for p in pods:
            phase = (p.get("status") or {}).get("phase")
            if phase in ("Succeeded", "Failed") and p["metadata"]["uid"] not in counted:
                counted.add(p["metadata"]["uid"])
                if phase == "Succeeded":
                    succeeded += 1
                    if indexed and (i := _pod_index(p)) is not None:
                        done_indexes.add(i)
                else:
                    failed += 1
                    i = _pod_index(p)
                    if per_index is not None and i is not None:
                        if _index_failures(p) + 1 > int(per_index):
                            failed_indexes.add(i)
        restarts = 0
        if (spec.get("template") or {}).get("spec", {}).get("restartPolicy") == "OnFailure":
            restarts = sum(
                int(cs.get("restartCount", 0))
                for p in active
                for cs in (p.get("status") or {}).get("containerStatuses") or []
            )
        now = now_rfc3339()
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism", 1))
        if indexed:
            succeeded = len(done_indexes)
        status["succeeded"], status["failed"] = succeeded, failed
        if indexed:
            status["completedIndexes"] = _format_indexes(done_indexes)
        if per_index is not None:
            status["failedIndexes"] = _format_indexes(failed_indexes - done_indexes)

        if spec.get("suspend"):
            self._delete_pods(job, active, "Job suspended")
            status["active"], status["ready"] = 0, 0
            _set_cond(status, "Suspended", "True", "JobSuspended", "Job suspended", now)
            status.pop("startTime", None)
            self._write_status(job, status)
            return
        if (c := _condition(job, "Suspended")) is not None and c.get("status") == "True":
            _set_cond(status, "Suspended", "False", "JobResumed", "Job resumed", now)
        status.setdefault("startTime", now)

        failure: tuple[str, str] | None = None
        if per_index is not None:
            max_failed = spec.get("maxFailedIndexes")
            if max_failed is not None and len(failed_indexes) > int(max_failed):
                failure = (
                    "MaxFailedIndexesExceeded",
                    "Job has exceeded the specified maximal number of failed indexes",
                )
            elif failed_indexes and len(done_indexes | failed_indexes) >= int(completions or 0):
                failure = ("FailedIndexes", "Job has failed indexes")
        elif failed + restarts > int(spec.get("backoffLimit", 6)):
            failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        deadline = spec.get("activeDeadlineSeconds")
        if failure is None and deadline is not None:
            end = _parse_time(status["startTime"]) + int(deadline)
            if datetime.now(UTC).timestamp() >= end:
                failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
            else:
                self._timer(job, "deadline", end)
        if failure is not None:
            self._delete_pods(job, active, failure[1])
            status["active"], status["ready"] = 0, 0
            _set_cond(status, "FailureTarget", "True", failure[0], failure[1], now)
            _set_cond(status, "Failed", "True", failure[0], failure[1], now)
            self._write_status(job, status)
            self._recorder.record(
                job, "Warning", failure[0], failure[1], component="job-controller"
            )
            return

        complete = False
        if completions is not None:
            complete = succeeded >= int(completions)
        else:  # work-queue job: done once any pod succeeded and none is left running
            complete = succeeded > 0 and not active
        if complete:
            self._delete_pods(job, active, "Job completed")
            status["active"], status["ready"] = 0, 0
            _set_cond(status, "SuccessCriteriaMet", "True", "CompletionsReached",
                      "Reached expected number of succeeded pods", now)  # fmt: skip
            _set_cond(status, "Complete", "True", "CompletionsReached",
                      "Reached expected number of succeeded pods", now)  # fmt: skip
            status["completionTime"] = now
            self._write_status(job, status)
            self._recorder.record(job, "Normal", "Completed", "Job completed",
                                  component="job-controller")  # fmt: skip
            self._ttl(self._store.get(resource("jobs", "batch"), ns, md["name"]) or job)
            return

        # Create what is missing.
        if indexed:
            assert completions is not None
            active_indexes = {i for p in active if (i := _pod_index(p)) is not None}
            missing = [
                i
                for i in range(int(completions))
                if i not in done_indexes and i not in active_indexes and i not in failed_indexes
            ]
            room = max(0, parallelism - len(active))
            for i in missing[:room]:
                before = _failures_before(pods, i) if per_index is not None else None
                if (pod := self._create_pod(job, i, before)) is not None:
                    active.append(pod)
        else:
            want = parallelism
            if completions is not None:
                want = min(parallelism, int(completions) - succeeded)
            elif succeeded > 0:
                want = 0  # work queue: no new pods once one succeeded
            for _ in range(max(0, want - len(active))):
                if (pod := self._create_pod(job, None)) is not None:
                    active.append(pod)
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if _pod_ready(p))
        status.setdefault("terminating", 0)
        status["terminating"] = sum(1 for p in pods if p["metadata"].get("deletionTimestamp"))
        self._write_status(job, status)

    def _create_pod(
        self, job: dict[str, Any], index: int | None, index_failures: int | None = None
    ) -> dict[str, Any] | None:
        """The next pod of ``job``; ``None`` when admission refuses it (a FailedCreate event
        says why, and the next sync tries again, as upstream's controller does)."""
        md, spec = job["metadata"], job["spec"]
        template = copy.deepcopy(spec.get("template") or {})
        tmd = template.get("metadata") or {}
        labels = dict(tmd.get("labels") or {})
        labels.setdefault("batch.kubernetes.io/controller-uid", md["uid"])
        labels.setdefault("batch.kubernetes.io/job-name", md["name"])
        labels.setdefault("controller-uid", md["uid"])
        labels.setdefault("job-name", md["name"])
        annotations = dict(tmd.get("annotations") or {})
        pod_spec = template.get("spec") or {}
        prefix = f"{md['name']}-"
        if index is not None:
            labels[INDEX_KEY] = str(index)
            annotations[INDEX_KEY] = str(index)
            if index_failures is not None:
                annotations[INDEX_FAILURES_KEY] = str(index_failures)
            prefix = f"{md['name']}-{index}-"
            pod_spec["hostname"] = f"{md['name']}-{index}"
            for c in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
                env = [e for e in c.get("env") or [] if e.get("name") != "JOB_COMPLETION_INDEX"]
                env.insert(
                    0,
                    {
                        "name": "JOB_COMPLETION_INDEX",
                        "valueFrom": {
                            "fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}
                        },
                    },
                )
                c["env"] = env
        pod = {
            "metadata": {
                "generateName": prefix,
                "namespace": md["namespace"],
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": md["name"],
                        "uid": md["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": pod_spec,
        }
        try:
            # The controller's pods pass the namespace's Pod Security level like any other.
            podsecurity.admit(self._store, md["namespace"], pod)
        except ApiError as exc:
            self._recorder.record(job, "Warning", "FailedCreate", f"Error creating: {exc.message}",
                                  component="job-controller")  # fmt: skip
            return None
        created = self._store.create(resource("pods"), md["namespace"], pod)
        self._recorder.record(
            job,
            "Normal",
            "SuccessfulCreate",
            f"Created pod: {created['metadata']['name']}",
            component="job-controller",
        )
        return created

    def _delete_pods(self, job: dict[str, Any], pods: list[dict[str, Any]], why: str) -> None:
        for p in pods:
            try:
                self._store.delete(
                    resource("pods"), p["metadata"]["namespace"], p["metadata"]["name"]
                )
            except ApiError:
                continue
            self._recorder.record(
                job,
                "Normal",
                "SuccessfulDelete",
                f"Deleted pod: {p['metadata']['name']}",
                component="job-controller",
            )

    def _write_status(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        def write(j: dict[str, Any]) -> None:
            j["status"] = status

        self._store.mutate(
            resource("jobs", "batch"), job["metadata"]["namespace"], job["metadata"]["name"], write
        )

    def _ttl(self, job: dict[str, Any]) -> None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        finished_at = (job.get("status") or {}).get("completionTime")
        if ttl is None:
            return
        if finished_at is None:
            cond = _condition(job, "Failed") or _condition(job, "Complete") or {}
            finished_at = cond.get("lastTransitionTime")
        if not finished_at:
            return
        at = _parse_time(finished_at) + int(ttl)
        if datetime.now(UTC).timestamp() < at:
            self._timer(job, "ttl", at)
            return
        md = job["metadata"]
        try:
            self._store.delete(
                resource("jobs", "batch"),
                md["namespace"],
                md["name"],
                propagation_policy="Background",
            )
        except ApiError:
            pass


def _index_failures(pod: dict[str, Any]) -> int:
    """How often the pod's index had failed before this pod was made."""
    raw = (pod["metadata"].get("annotations") or {}).get(INDEX_FAILURES_KEY, "0")
    return int(raw) if str(raw).isdigit() else 0


def _failures_before(pods: list[dict[str, Any]], index: int) -> int:
    """The failure count a new pod of ``index`` carries: one more than its latest failed pod's."""
    return max(
        (
            _index_failures(p) + 1
            for p in pods
            if _pod_index(p) == index and (p.get("status") or {}).get("phase") == "Failed"
        ),
        default=0,
    )


def _parse_indexes(text: str) -> set[int]:
    out: set[int] = set()
    for part in (text or "").split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _set_cond(
    status: dict[str, Any], type_: str, value: str, reason: str, message: str, now: str
) -> None:
    conds = status.setdefault("conditions", [])
    for c in conds:
        if c.get("type") == type_:
            if c.get("status") != value:  # times move only on a change: no write per pass
                c.update(lastTransitionTime=now, lastProbeTime=now)
            c.update(status=value, reason=reason, message=message)
            return
    conds.append(
        {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }
    )


__all__ = ["INDEX_FAILURES_KEY", "INDEX_KEY", "TRACKING_FINALIZER", "JobController"]


def _already_counted(pods: list[dict[str, Any]], status: dict[str, Any]) -> set[str]:
    """The terminated pods a job's status already counts, for a controller that has just
    started (kubesim restarted on a kept store) and so remembers none.

    Pods are counted as they finish, so the counted ones are the earliest to have finished:
    ``status.succeeded`` Succeeded pods and ``status.failed`` Failed pods, by finish time. A
    pod that ended later (one the restart itself failed) is counted now, and none twice."""
    counted: set[str] = set()
    for phase, field in (("Succeeded", "succeeded"), ("Failed", "failed")):
        done = sorted(
            (p for p in pods if (p.get("status") or {}).get("phase") == phase), key=_finished_at
        )
        counted.update(p["metadata"]["uid"] for p in done[: int(status.get(field, 0))])
    return counted


def _finished_at(pod: dict[str, Any]) -> tuple[str, str, str]:
    """When a terminated pod finished (its last container's finishedAt), as a sort key."""
    md, status = pod["metadata"], pod.get("status") or {}
    ends = [
        (cs.get("state") or {}).get("terminated", {}).get("finishedAt") or ""
        for cs in status.get("containerStatuses") or []
    ]
    return max(ends, default=""), md.get("creationTimestamp", ""), md["name"]
