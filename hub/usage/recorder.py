"""Record the life of every gpulab pod from the cluster's watch events.

A pod (label ``gpulab.io/user``) becomes one :class:`~gpulab.hub.usage.models.UsageInterval`
keyed by its uid: started at ``status.startTime``, ended when it terminates (the containers'
``finishedAt``) or is deleted. Every write is an upsert that only widens what is known (an
interval never reopens, its start never moves later), so re-listing after a restart or a 410
Gone re-watch changes nothing that was already recorded: nothing is double-counted.

:func:`interval_from_pod` is pure; :class:`UsageRecorder` does the I/O (a
:class:`~gpulab.hub.kube.WatchCache` for list and watch, SQLAlchemy in worker threads).

When the database refuses writes (read-only, disk full, server down) the recorder logs one
warning and pauses: writes in between are skipped (no log line per event) and retried with
exponential backoff, each failed retry logged once. The first write that succeeds ends the
pause and records the watch cache's current pods, so nothing the pause skipped is lost
(pods that ended meanwhile are closed at their last heartbeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gpulab.hub.policy.quantities import cpu_millicores
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..background import Background
from ..kube import KubeClient, WatchCache, resource_path
from ..workload.labels import (
    COMPONENT_LABEL,
    GPU_TYPE_LABEL,
    GPUS_LABEL,
    GROUP_LABEL,
    JOB_COMPONENT,
    JOB_ID_LABEL,
    KUBESPAWNER_COMPONENT_LABEL,
    KUBESPAWNER_SERVERNAME_ANNOTATION,
    KUBESPAWNER_USERNAME_ANNOTATION,
    NODES_LABEL,
    USER_LABEL,
)
from .models import UsageInterval

__all__ = ["PodInterval", "UsageRecorder", "interval_from_pod", "parse_time"]

log = logging.getLogger("gpulab.usage")

GPU_RESOURCE_SUFFIX = "/gpu"  # nvidia.com/gpu, amd.com/gpu
# A full list this often repairs anything the watch missed (pods gone while it was cut).
RESYNC_SECONDS = 300.0
# While the database refuses writes: first retry after this, doubling up to the maximum.
DB_RETRY_MIN = 5.0
DB_RETRY_MAX = 600.0


@dataclass
class DatabaseOutage:
    """A pause of the recording while the database refuses writes."""

    since: float  # the clock's time of the first failure
    delay: float  # seconds from the last failure to the next try
    retry_at: float
    failures: int = 1
    skipped: int = 0  # writes not tried while waiting

    def failed_again(self, now: float) -> None:
        self.failures += 1
        self.delay = min(DB_RETRY_MAX, self.delay * 2)
        self.retry_at = now + self.delay


@dataclass(frozen=True)
class PodInterval:
    pod_uid: str
    namespace: str
    pod_name: str
    user: str
    group: str
    kind: str
    job_id: str | None
    gpus: int
    gpu_type: str
    cpu: float
    started_at: datetime
    ended_at: datetime | None
    server_name: str = ""  # the hub's server name ("" = the default server; jobs: "")


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _containers(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list((pod.get("spec") or {}).get("containers") or [])


def _gpus(pod: Mapping[str, Any], labels: Mapping[str, str]) -> int:
    if labels.get(GPUS_LABEL, "").isdigit():
        # a multi-node job's label is every rank's GPUs together: this pod holds its share
        nodes = labels.get(NODES_LABEL, "1")
        return int(labels[GPUS_LABEL]) // max(1, int(nodes) if nodes.isdigit() else 1)
    total = 0
    for c in _containers(pod):
        limits = (c.get("resources") or {}).get("limits") or {}
        for name, value in limits.items():
            if name.endswith(GPU_RESOURCE_SUFFIX) and str(value).isdigit():
                total += int(value)
    return total


def _cpu(pod: Mapping[str, Any]) -> float:
    millis = 0
    for c in _containers(pod):
        res = c.get("resources") or {}
        value = (res.get("requests") or {}).get("cpu") or (res.get("limits") or {}).get("cpu")
        if value is not None:
            with contextlib.suppress(Exception):
                millis += cpu_millicores(value)
    return millis / 1000.0


def _finished_at(pod: Mapping[str, Any]) -> datetime | None:
    status = pod.get("status") or {}
    stamps = []
    for cs in status.get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated") or {}
        t = parse_time(term.get("finishedAt"))
        if t is not None:
            stamps.append(t)
    return max(stamps) if stamps else None


def interval_from_pod(
    pod: Mapping[str, Any], now: datetime, *, deleted: bool = False
) -> PodInterval | None:
    """The interval a gpulab pod stands for, or None (not ours, or never started)."""
    meta = pod.get("metadata") or {}
    labels: Mapping[str, str] = meta.get("labels") or {}
    annotations: Mapping[str, str] = meta.get("annotations") or {}
    if USER_LABEL not in labels or not meta.get("uid"):
        return None
    status = pod.get("status") or {}
    started = parse_time(status.get("startTime"))
    if started is None:
        return None  # never ran: held nothing
    phase = status.get("phase")
    ended: datetime | None = None
    if phase in ("Succeeded", "Failed"):
        ended = _finished_at(pod) or now
    elif deleted:
        ended = now
    if ended is not None and ended < started:
        ended = started
    component = labels.get(COMPONENT_LABEL) or labels.get(KUBESPAWNER_COMPONENT_LABEL) or ""
    kind = "job" if component == JOB_COMPONENT or JOB_ID_LABEL in labels else "server"
    return PodInterval(
        pod_uid=str(meta["uid"]),
        namespace=str(meta.get("namespace") or "default"),
        pod_name=str(meta.get("name") or ""),
        user=annotations.get(KUBESPAWNER_USERNAME_ANNOTATION) or labels[USER_LABEL],
        group=labels.get(GROUP_LABEL, ""),
        kind=kind,
        job_id=labels.get(JOB_ID_LABEL),
        gpus=_gpus(pod, labels),
        gpu_type=labels.get(GPU_TYPE_LABEL, ""),
        cpu=_cpu(pod),
        started_at=started,
        ended_at=ended,
        server_name=annotations.get(KUBESPAWNER_SERVERNAME_ANNOTATION, "")
        if kind == "server"
        else "",
    )


def upsert(session: Session, iv: PodInterval, now: datetime) -> None:
    """Insert or widen the row of ``iv.pod_uid`` (idempotent)."""
    row = session.get(UsageInterval, iv.pod_uid)
    if row is None:
        session.add(
            UsageInterval(
                pod_uid=iv.pod_uid,
                namespace=iv.namespace,
                pod_name=iv.pod_name,
                user=iv.user,
                group=iv.group,
                kind=iv.kind,
                job_id=iv.job_id,
                gpus=iv.gpus,
                gpu_type=iv.gpu_type,
                cpu=iv.cpu,
                started_at=iv.started_at,
                ended_at=iv.ended_at,
                last_seen_at=iv.ended_at or now,
                server_name=iv.server_name,
            )
        )
        return
    if iv.server_name and not row.server_name:
        row.server_name = iv.server_name
    row.started_at = min(row.started_at, iv.started_at)
    if row.ended_at is None and iv.ended_at is not None:
        row.ended_at = iv.ended_at
    if row.ended_at is None:
        row.last_seen_at = max(row.last_seen_at, now)


class UsageRecorder:
    """List + watch gpulab pods and keep the usage table in step.

    ``api``: a :class:`~gpulab.hub.kube.KubeClient` or a ``kubernetes_asyncio`` ApiClient;
    ``namespace``: None = all.
    """

    def __init__(
        self,
        engine: Engine,
        api: Any,
        namespace: str | None = None,
        *,
        heartbeat_seconds: float = 60.0,
        resync_seconds: float = RESYNC_SECONDS,
    ) -> None:
        self.engine = engine
        self.namespace = namespace
        self.heartbeat_seconds = heartbeat_seconds
        self.events = 0
        self.cache = WatchCache(
            KubeClient.of(api),
            resource_path("v1", "pods", namespace),
            name="usage-pods",
            label_selector=USER_LABEL,
            on_reset=self._on_list,
            on_event=self._on_event,
            resync_seconds=resync_seconds,
        )
        self._background = Background()
        self.clock: Callable[[], float] = time.monotonic
        self.outage: DatabaseOutage | None = None  # set while the database refuses writes

    @property
    def synced(self) -> asyncio.Event:
        """Set once the first list is recorded."""
        return self.cache.synced

    # ------------------------------------------------------------------ database (threads)
    def _write(self, intervals: Iterable[PodInterval], now: datetime) -> None:
        with Session(self.engine) as s, s.begin():
            for iv in intervals:
                upsert(s, iv, now)

    def _close_missing(self, alive: set[str], now: datetime) -> None:
        """After a (re)list: open intervals of pods that no longer exist ended while we were
        away; close them at their last heartbeat."""
        with Session(self.engine) as s, s.begin():
            rows = s.scalars(select(UsageInterval).where(UsageInterval.ended_at.is_(None))).all()
            closed = 0
            for row in rows:
                if self.namespace is not None and row.namespace != self.namespace:
                    continue
                if row.pod_uid not in alive:
                    row.ended_at = row.last_seen_at
                    closed += 1
        if closed:
            log.info("usage: closed %d interval(s) of pods that ended while unwatched", closed)

    def _heartbeat(self, now: datetime) -> None:
        with Session(self.engine) as s, s.begin():
            s.execute(
                update(UsageInterval)
                .where(UsageInterval.ended_at.is_(None))
                .values(last_seen_at=now)
            )

    async def _record(self, write: Callable[..., Any], *args: Any) -> bool:
        """Run ``write(*args)`` in a thread unless the database is paused (see the module);
        True if it ran."""
        outage = self.outage
        if outage is not None and self.clock() < outage.retry_at:
            outage.skipped += 1
            return False
        try:
            await asyncio.to_thread(write, *args)
        except SQLAlchemyError as exc:
            self._failed(exc)
            return False
        if outage is not None:
            self.outage = None
            log.warning(
                "usage database writable again after %.0fs (%d failed tries, %d writes "
                "skipped); recording the current pods",
                self.clock() - outage.since,
                outage.failures,
                outage.skipped,
            )
            await self._catch_up()
        return True

    def _failed(self, exc: SQLAlchemyError) -> None:
        now = self.clock()
        reason = getattr(exc, "orig", None) or exc
        if self.outage is None:
            self.outage = DatabaseOutage(since=now, delay=DB_RETRY_MIN, retry_at=now + DB_RETRY_MIN)
            log.warning(
                "usage database refuses writes (%s): recording paused, retrying in %.0fs "
                "and then less and less often",
                reason,
                DB_RETRY_MIN,
            )
            return
        self.outage.failed_again(now)
        log.warning(
            "usage database still refuses writes after %.0fs (%s); next try in %.0fs",
            now - self.outage.since,
            reason,
            self.outage.delay,
        )

    async def _catch_up(self) -> None:
        """After a pause: the watch cache kept every pod current, so recording it (as after
        a list) restores whatever the skipped writes would have written."""
        if self.cache.synced.is_set():
            await self._on_list(list(self.cache.objects.values()))

    # ------------------------------------------------------------------ watch cache hooks
    async def _on_list(self, pods: list[dict[str, Any]]) -> None:
        """Record every listed pod and close what vanished (after every list: the first,
        after a 410 Gone, and each resync)."""
        now = datetime.now(UTC)
        intervals = [iv for p in pods if (iv := interval_from_pod(p, now)) is not None]
        if not await self._record(self._write, intervals, now):
            return
        alive = {str((p.get("metadata") or {}).get("uid")) for p in pods}
        await self._record(self._close_missing, alive, now)

    async def _on_event(self, kind: str, pod: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        iv = interval_from_pod(pod, now, deleted=kind == "DELETED")
        self.events += 1
        if iv is not None:
            await self._record(self._write, [iv], now)

    async def sync_once(self) -> str:
        """List every gpulab pod, record it, close what vanished. Returns the resourceVersion."""
        await self.cache.sync()
        return self.cache.resource_version

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_seconds)
            await self._record(self._heartbeat, datetime.now(UTC))

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Record in the background: list, then watch; list again on 410 Gone and every
        ``resync_seconds``; heartbeats for the open intervals."""
        self._background.start("usage-heartbeats", self._heartbeats())
        self.cache.start()

    async def stop(self) -> None:
        await self.cache.stop()
        await self._background.stop()
