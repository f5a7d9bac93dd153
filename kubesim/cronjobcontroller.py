"""The batch/v1 CronJob controller (upstream's cronjob_controllerv2, ``syncCronJob``).

On every change of a CronJob or of a Job it owns, and on a timer at the next firing time:

- ``status.active`` keeps the running Jobs it made; a finished one leaves it and a Complete
  one sets ``status.lastSuccessfulTime``;
- unless ``spec.suspend``: the most recent firing time not yet run (after
  ``status.lastScheduleTime``, else the CronJob's creation, and no earlier than now minus
  ``startingDeadlineSeconds``) starts a Job named ``<cronjob>-<minutes since the epoch>`` from
  ``spec.jobTemplate`` (its labels and annotations, the ``scheduled-timestamp`` annotation and
  a controller owner reference); a time older than ``startingDeadlineSeconds`` is a
  ``MissedSchedule`` event; ``concurrencyPolicy`` ``Forbid`` skips the time while a Job is
  active (``JobAlreadyActive``; the time is tried again once it ends, within the deadline),
  ``Replace`` deletes the active Jobs first, ``Allow`` runs them side by side;
- finished Jobs beyond ``successfulJobsHistoryLimit`` / ``failedJobsHistoryLimit`` are deleted,
  oldest first.

Times use the schedule's ``spec.timeZone`` (UTC when unset). ``clock_speed`` > 1 makes this
controller's clock (only this one) run faster than wall time from the moment it starts, so a
test sees an hourly schedule fire in seconds; status times are then on that clock.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from gpulab.kubesim.events import EventRecorder
from gpulab.kubesim.store import ApiError, ResourceType, Store, WatchEvent, resource

from gpulab.wire.cron import CronError, parse_schedule, zone

log = logging.getLogger(__name__)
COMPONENT = "cronjob-controller"
SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"
_MAX_MISSED = 100  # upstream warns (TooManyMissedTimes) past this many


def scaled_clock(speed: float) -> Callable[[], dt.datetime]:
    """Wall time, or from now on ``speed`` times faster."""
    start = time.time()

    def now() -> dt.datetime:
        return dt.datetime.fromtimestamp(start + (time.time() - start) * speed, dt.UTC)

    return now


def _rfc3339(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(ts: str) -> dt.datetime:
    return dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _owner_uid(job: dict[str, Any]) -> str | None:
    for ref in job["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == "CronJob":
            return str(ref.get("uid"))
    return None


def _finished(job: dict[str, Any]) -> str | None:
    """ "Complete" or "Failed" once the Job has ended."""
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


class CronJobController:
    def __init__(self, store: Store, recorder: EventRecorder, *, clock_speed: float = 1.0) -> None:
        self._store = store
        self._recorder = recorder
        self._speed = max(1.0, float(clock_speed))
        self.now = scaled_clock(self._speed)
        self._dirty: set[tuple[str, str]] = set()
        self._pass_scheduled = False
        self._timers: dict[str, asyncio.TimerHandle] = {}  # cronjob uid -> next wake-up
        self._unsubscribe = store.subscribe(self._on_event, read_only=True)
        for cj in store.list(resource("cronjobs", "batch"))[0]:
            self._mark(cj["metadata"]["namespace"], cj["metadata"]["name"])

    def close(self) -> None:
        self._unsubscribe()
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()

    # -- triggers -----------------------------------------------------------------------------
    def _on_event(self, rt: ResourceType, event: WatchEvent) -> None:
        obj = event.object
        md = obj["metadata"]
        if rt.kind == "CronJob":
            if event.type == "DELETED":
                if (t := self._timers.pop(md["uid"], None)) is not None:
                    t.cancel()
                return
            self._mark(md["namespace"], md["name"])
        elif rt.kind == "Job" and _owner_uid(obj):
            for ref in md.get("ownerReferences") or []:
                if ref.get("controller") and ref.get("kind") == "CronJob":
                    self._mark(md["namespace"], ref["name"])

    def _mark(self, namespace: str, name: str) -> None:
        self._dirty.add((namespace, name))
        if not self._pass_scheduled:
            self._pass_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_pass)

    def _wake_at(self, cj: dict[str, Any], at: dt.datetime) -> None:
        md = cj["metadata"]
        if (old := self._timers.pop(md["uid"], None)) is not None:
            old.cancel()
        delay = max(0.0, (at - self.now()).total_seconds() / self._speed)
        ns, name = md["namespace"], md["name"]

        def fire() -> None:
            self._timers.pop(md["uid"], None)
            self._mark(ns, name)

        self._timers[md["uid"]] = asyncio.get_running_loop().call_later(delay + 0.05, fire)

    def _run_pass(self) -> None:
        self._pass_scheduled = False
        todo, self._dirty = self._dirty, set()
        for ns, name in sorted(todo):
            cj = self._store.get(resource("cronjobs", "batch"), ns, name)
            if cj is None or cj["metadata"].get("deletionTimestamp"):
                continue
            try:
                self._sync(cj)
            except ApiError as e:
                log.warning("cronjob %s/%s: %s", ns, name, e)

    # -- sync ---------------------------------------------------------------------------------
    def _sync(self, cj: dict[str, Any]) -> None:
        md, spec = cj["metadata"], cj.get("spec") or {}
        ns = md["namespace"]
        status = copy.deepcopy(cj.get("status") or {})
        jobs = [
            j
            for j in self._store.list(resource("jobs", "batch"), ns)[0]
            if _owner_uid(j) == md["uid"] and not j["metadata"].get("deletionTimestamp")
        ]
        active: list[dict[str, Any]] = []
        for j in jobs:
            ended = _finished(j)
            if ended is None:
                active.append(j)
            elif ended == "Complete":
                done = (j.get("status") or {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if done and (last is None or _parse(done) > _parse(last)):
                    status["lastSuccessfulTime"] = done
        # Kept references keep the resourceVersion they were made with (as upstream).
        known = {r.get("uid"): r for r in status.get("active") or []}
        status["active"] = [known.get(j["metadata"]["uid"]) or _reference(j) for j in active]
        self._clean_history(cj, jobs)
        if spec.get("suspend"):
            self._write_status(cj, status)
            return
        try:
            tz = zone(spec.get("timeZone"))
            schedule = parse_schedule(spec.get("schedule", ""))
        except CronError as exc:
            self._recorder.record(cj, "Warning", "InvalidSchedule", str(exc), component=COMPONENT)
            self._write_status(cj, status)
            return
        now = self.now()
        last = status.get("lastScheduleTime") or md["creationTimestamp"]
        earliest = _parse(last)
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - dt.timedelta(seconds=int(deadline)))
        due, missed = None, 0
        t = schedule.next_after(earliest, tz)
        while t is not None and t <= now:
            due, missed = t, missed + 1
            if missed > 10 * _MAX_MISSED:  # far behind (a long-stopped cluster): take now
                due = schedule.next_after(now - dt.timedelta(minutes=1), tz) or due
                break
            t = schedule.next_after(t, tz)
        if missed > _MAX_MISSED:
            self._recorder.record(cj, "Warning", "TooManyMissedTimes",
                                  f"too many missed start times: {missed}. Set or decrease "
                                  ".spec.startingDeadlineSeconds or check clock skew",
                                  component=COMPONENT)  # fmt: skip
        upcoming = schedule.next_after(now, tz)
        if due is not None:
            self._start(cj, spec, status, active, due, now, tz)
        self._write_status(cj, status)
        if upcoming is not None:
            self._wake_at(cj, upcoming)

    def _start(
        self,
        cj: dict[str, Any],
        spec: dict[str, Any],
        status: dict[str, Any],
        active: list[dict[str, Any]],
        due: dt.datetime,
        now: dt.datetime,
        tz: dt.tzinfo,
    ) -> None:
        md = cj["metadata"]
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and due + dt.timedelta(seconds=int(deadline)) < now:
            self._recorder.record(cj, "Warning", "MissedSchedule",
                                  f"Missed scheduled time to start a job: {_rfc3339(due)}",
                                  component=COMPONENT)  # fmt: skip
            return
        name = f"{md['name']}-{int(due.timestamp()) // 60}"
        if any(j["metadata"]["name"] == name for j in active) or self._store.get(
            resource("jobs", "batch"), md["namespace"], name
        ):
            return  # this time has run already
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and active:
            self._recorder.record(cj, "Normal", "JobAlreadyActive",
                                  "Not starting job because prior execution is running and "
                                  "concurrency policy is Forbid", component=COMPONENT)  # fmt: skip
            return
        if policy == "Replace":
            for j in active:
                self._delete_job(cj, j)
            active.clear()
        template = copy.deepcopy(spec.get("jobTemplate") or {})
        tmd = template.get("metadata") or {}
        annotations = dict(tmd.get("annotations") or {})
        annotations[SCHEDULED_TIMESTAMP] = due.astimezone(tz).isoformat()
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {
                "name": name,
                "namespace": md["namespace"],
                "labels": dict(tmd.get("labels") or {}),
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "CronJob",
                        "name": md["name"],
                        "uid": md["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": template.get("spec") or {},
        }
        try:
            created = self._store.create(resource("jobs", "batch"), md["namespace"], job)
        except ApiError as exc:
            if exc.code == 409:
                return
            self._recorder.record(cj, "Warning", "FailedCreate", f"Error creating job: {exc}",
                                  component=COMPONENT)  # fmt: skip
            return
        self._recorder.record(cj, "Normal", "SuccessfulCreate", f"Created job {name}",
                              component=COMPONENT)  # fmt: skip
        status["active"] = [*status.get("active", []), _reference(created)]
        status["lastScheduleTime"] = _rfc3339(due)

    def _clean_history(self, cj: dict[str, Any], jobs: list[dict[str, Any]]) -> None:
        spec = cj.get("spec") or {}
        for kind, field, default in (
            ("Complete", "successfulJobsHistoryLimit", 3),
            ("Failed", "failedJobsHistoryLimit", 1),
        ):
            limit = int(spec.get(field, default))
            ended = sorted(
                (j for j in jobs if _finished(j) == kind),
                key=lambda j: (
                    (j.get("status") or {}).get("startTime") or j["metadata"]["creationTimestamp"],
                    j["metadata"]["name"],
                ),
            )
            for j in ended[: max(0, len(ended) - limit)]:
                self._delete_job(cj, j)

    def _delete_job(self, cj: dict[str, Any], job: dict[str, Any]) -> None:
        md = job["metadata"]
        try:
            self._store.delete(
                resource("jobs", "batch"),
                md["namespace"],
                md["name"],
                propagation_policy="Background",
            )
        except ApiError:
            return
        self._recorder.record(cj, "Normal", "SuccessfulDelete", f"Deleted job {md['name']}",
                              component=COMPONENT)  # fmt: skip

    def _write_status(self, cj: dict[str, Any], status: dict[str, Any]) -> None:
        if status == (cj.get("status") or {}):
            return

        def write(obj: dict[str, Any]) -> None:
            obj["status"] = status

        md = cj["metadata"]
        self._store.mutate(resource("cronjobs", "batch"), md["namespace"], md["name"], write)


def _reference(job: dict[str, Any]) -> dict[str, Any]:
    md = job["metadata"]
    return {
        "kind": "Job",
        "namespace": md["namespace"],
        "name": md["name"],
        "uid": md["uid"],
        "apiVersion": "batch/v1",
        "resourceVersion": md.get("resourceVersion", ""),
    }


__all__ = ["COMPONENT", "SCHEDULED_TIMESTAMP", "CronJobController", "scaled_clock"]
