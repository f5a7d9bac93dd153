"""The gateway's notifier: tells a job's owner when it succeeds, fails, is preempted (or is
cancelled, if they asked), by e-mail and/or webhook, as their settings say.

It reads the gateway's watch cache after each change. For every notification a job owes
(:func:`.notify_events.due_notifications`) it first records the event on the Job
(``gpulab.io/notified``, status ``sending``), then delivers, retrying with backoff, and
records the outcome per channel there. Recording before sending makes a notification go
out at most once per transition even across a gateway restart (a restart during a delivery
leaves it ``sending``: not sent again); the record is also what the owner's delivery status
is read from (``GET /api/v1/notify``).

An owner who set nothing up costs a read of their settings per scan that finds their jobs
owing something, and no write. Events older than ``max_age`` when first seen (a gateway started for the first time on a
cluster full of finished jobs, or down for days) are recorded as ``skipped``, not sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from ...names import escape_username
from ...workload.labels import COMPONENT_LABEL, JOB_COMPONENT, NOTIFIED_ANNOTATION, OWNER_ANNOTATION
from .cache import ClusterCache
from .notify_delivery import (
    Backoff,
    DeliveryStatus,
    SmtpConfig,
    deliver,
    send_email,
    send_webhook,
)
from .notify_events import Due, due_notifications, notified, payload
from .notify_store import NotifyStore, StoredSettings
from .state import job_view

__all__ = ["Notifier", "NotifyConfig"]

log = logging.getLogger("gpulab.jobs.gateway.notify")

Annotate = Callable[[str, dict[str, str]], Awaitable[None]]


@dataclass(frozen=True)
class NotifyConfig:
    """The admin's side of notifications (``GatewayApp.notify_*``, ``smtp_*``)."""

    smtp: SmtpConfig | None = None  # None: e-mail is not offered
    base_url: str | None = None  # the gateway's public URL, for links
    allow_hosts: Collection[str] = ()  # webhook hosts allowed over http / inside
    backoff: Backoff = Backoff()
    max_age: float = 86400.0


def _parse_time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_SAYS = {
    "succeeded": "succeeded",
    "failed": "failed",
    "preempted": "was preempted",
    "gpu_idle": "holds idle GPUs",
    "cancelled": "was cancelled",
}


def _email_text(body: dict[str, Any]) -> tuple[str, str]:
    says = _SAYS.get(str(body["event"]), str(body["event"]))
    subject = f"[gpulab] job {body['name']} {says}"
    lines = [
        f"Your job {body['name']} ({body['job_id']}) {says}.",
        "",
        f"State: {body['state']}",
        f"Exit code: {body['exit_code'] if body['exit_code'] is not None else '-'}",
        f"Message: {body['message'] or '-'}",
    ]
    for name, url in (body.get("links") or {}).items():
        lines.append(f"{name.capitalize()}: {url}")
    lines += ["", "Change what you are told with `gpulab notify` or on the jobs page."]
    return subject, "\n".join(lines)


class Notifier:
    def __init__(
        self,
        *,
        cache: ClusterCache,
        store: NotifyStore,
        annotate: Annotate,
        config: NotifyConfig,
    ) -> None:
        self.cache = cache
        self.store = store
        self.annotate = annotate
        self.config = config
        self._seen: dict[str, tuple[Any, ...]] = {}  # job id -> objects' versions scanned
        self._claimed: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        # One record write at a time: each rewrites the Job's whole record from the cache.
        self._record_lock = asyncio.Lock()

    # ------------------------------------------------------------------ scanning
    def _signature(self, job_id: str, job: dict[str, Any]) -> tuple[Any, ...]:
        pods = self.cache.job_pods(job_id)
        return (
            (job.get("metadata") or {}).get("resourceVersion"),
            tuple(sorted((p.get("metadata") or {}).get("resourceVersion") or "" for p in pods)),
        )

    async def scan(self) -> list[tuple[str, str]]:
        """Claim and start delivering what every job owes; ``(job id, event key)`` started."""
        started: list[tuple[str, str]] = []
        settings: dict[str, StoredSettings] = {}
        for job_id, job in list(self.cache.jobs.items()):
            labels = (job.get("metadata") or {}).get("labels") or {}
            if labels.get(COMPONENT_LABEL) != JOB_COMPONENT:
                continue
            signature = self._signature(job_id, job)
            if self._seen.get(job_id) == signature:
                continue
            self._seen[job_id] = signature
            owed = [
                d
                for d in due_notifications(job, self.cache.job_pods(job_id))
                if (job_id, d.key) not in self._claimed
            ]
            if not owed:
                continue
            owner = ((job.get("metadata") or {}).get("annotations") or {}).get(OWNER_ANNOTATION)
            if not owner:
                continue
            if owner not in settings:
                settings[owner] = await self.store.load(owner)
            for due in owed:
                if await self._claim(job_id, job, owner, due, settings[owner]):
                    started.append((job_id, due.key))
        gone = set(self._seen) - set(self.cache.jobs)  # deleted Jobs: forget them
        for job_id in gone:
            del self._seen[job_id]
        self._claimed = {c for c in self._claimed if c[0] not in gone}
        return started

    def _too_old(self, job: dict[str, Any], due: Due) -> bool:
        if due.event in ("preempted", "gpu_idle"):
            return False
        pods = self.cache.job_pods(str((job.get("metadata") or {}).get("name")))
        finished = _parse_time(job_view(job, pods).get("finished"))
        if finished is None:
            return False
        age = (dt.datetime.now(dt.UTC) - finished).total_seconds()
        return age > self.config.max_age

    async def _claim(
        self, job_id: str, job: dict[str, Any], owner: str, due: Due, stored: StoredSettings
    ) -> bool:
        wanted = stored.settings.wants(due.event)
        if not wanted:
            status = "off"
        elif self._too_old(job, due):
            status = "skipped"
        else:
            status = "sending"
        self._claimed.add((job_id, due.key))
        if status == "off":
            # Nothing to send: remembered in memory only, so jobs of owners who set nothing up
            # cost no write (after a restart, their settings are read once more).
            return False
        if not await self._record(job_id, due.key, {"status": status, "at": _now()}):
            self._claimed.discard((job_id, due.key))
            self._seen.pop(job_id, None)
            return False
        if status != "sending":
            return False
        body = payload(job, self.cache.job_pods(job_id), due.event, self.config.base_url)
        task = asyncio.get_running_loop().create_task(
            self._deliver_all(job_id, due.key, body, stored)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _record(self, job_id: str, key: str, value: dict[str, Any]) -> bool:
        async with self._record_lock:
            job = self.cache.job(job_id)
            if job is None:
                return False
            record = notified(job)
            record[key] = value
            text = json.dumps(record, sort_keys=True)
            try:
                await self.annotate(job_id, {NOTIFIED_ANNOTATION: text})
            except Exception as exc:  # noqa: BLE001 - the next scan tries again
                log.warning("notification %s of job %s not recorded: %s", key, job_id, exc)
                return False
            return True

    # ------------------------------------------------------------------ delivering
    def channels(
        self, body: dict[str, Any], stored: StoredSettings
    ) -> list[tuple[DeliveryStatus, Callable[[], Awaitable[None]]]]:
        """The sends a notification makes for these settings."""
        out: list[tuple[DeliveryStatus, Callable[[], Awaitable[None]]]] = []
        settings, smtp = stored.settings, self.config.smtp
        if settings.email and smtp is not None:
            subject, text = _email_text(body)
            email = settings.email

            async def by_email() -> None:
                await send_email(smtp, email, subject, text)

            out.append((DeliveryStatus("email"), by_email))
        if settings.webhook_url and stored.webhook_secret:
            url, secret = settings.webhook_url, stored.webhook_secret

            async def by_webhook() -> None:
                await send_webhook(url, body, secret, allow_hosts=self.config.allow_hosts)

            out.append((DeliveryStatus("webhook"), by_webhook))
        return out

    async def _deliver_all(
        self, job_id: str, key: str, body: dict[str, Any], stored: StoredSettings
    ) -> None:
        sends = self.channels(body, stored)
        results = await asyncio.gather(
            *(deliver(send, status, self.config.backoff) for status, send in sends)
        )
        overall = "delivered" if all(r.status == "delivered" for r in results) else "failed"
        if not results:
            overall = "off"  # e-mail asked for while the admin configured no SMTP
        for r in results:
            log.info("job %s: %s notification by %s %s", job_id, key, r.channel, r.status)
        await self._record(
            job_id,
            key,
            {"status": overall, "at": _now(), "channels": [r.as_dict() for r in results]},
        )

    async def send_test(self, user: str) -> list[dict[str, Any]]:
        """One test notification on each configured channel, once (no retries)."""
        stored = await self.store.load(user)
        body = {
            "event": "succeeded",
            "job_id": "test",
            "name": "test",
            "owner": user,
            "state": "Succeeded",
            "exit_code": 0,
            "message": "a test notification from gpulab",
            "finished": _now(),
            "links": {},
            "test": True,
        }
        once = Backoff(attempts=1)
        return [
            (await deliver(send, status, once)).as_dict()
            for status, send in self.channels(body, stored)
        ]

    def deliveries(self, user: str, limit: int = 50) -> list[dict[str, Any]]:
        """The user's recorded notifications, newest first (from their Jobs' annotations)."""
        out = []
        for job_id in self.cache.user_job_ids(escape_username(user)):
            job = self.cache.job(job_id)
            if job is None:
                continue
            for key, value in notified(job).items():
                if isinstance(value, dict) and value.get("status") != "off":
                    out.append({"job_id": job_id, "event": key.split(":")[0], **value})
        out.sort(key=lambda d: str(d.get("at") or ""), reverse=True)
        return out[:limit]

    async def run_forever(self) -> None:
        """Scan after every change of the cache (and at least every 30 s)."""
        await self.cache.wait_synced(None)
        while True:
            try:
                await self.scan()
            except Exception:  # noqa: BLE001 - keep notifying; the next pass retries
                log.exception("notification scan failed")
            await self.cache.wait_changed(30.0)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
