"""How long a cancelled job stays in its owner's history, and the older S3 records of jobs
that left the cluster.

A cancelled Job is kept in the cluster, suspended and annotated (the record of the cancel
needs nothing but the API server); :func:`expired` picks the ones whose
``ttlSecondsAfterFinished`` (the entitlement's ``job_ttl_seconds``, set at submit) has passed
since the cancel (pure), which the gateway then deletes.

:class:`TombstoneStore` keeps what a Job the gateway *deletes* itself leaves behind (a
half-made job it failed), and what earlier gateways wrote on cancel: the Job (and its pods)
as last seen, in
``s3://<bucket>/_gateway/cancelled/<user>/<job-id>.json`` (a prefix no job credential can
write: job credentials are confined to ``<user>/<job-id>/`` and escaped usernames never start
with ``_``). At start it loads them back into the cache's tombstones, so a restarted gateway
still lists cancelled jobs as Cancelled. Records older than ``max_age`` are deleted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from ...names import escape_username
from ...workload.labels import CANCELLED_ANNOTATION
from ..storage import AsyncJobStorage

__all__ = ["PREFIX", "TombstoneStore", "expired"]

PREFIX = "_gateway/cancelled/"
log = logging.getLogger("gpulab.jobs.gateway.tombstones")


def _when(text: object) -> dt.datetime | None:
    try:
        at = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=dt.UTC)


def expired(
    jobs: Iterable[tuple[str, Mapping[str, Any]]],
    now: dt.datetime,
    default_ttl_seconds: int = 7 * 86400,
) -> list[str]:
    """Ids of the cancelled Jobs whose time to live since the cancel has passed."""
    out = []
    for job_id, job in jobs:
        meta = job.get("metadata") or {}
        if meta.get("deletionTimestamp"):
            continue
        at = _when((meta.get("annotations") or {}).get(CANCELLED_ANNOTATION))
        if at is None:
            continue
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        ttl = default_ttl_seconds if not isinstance(ttl, int) or isinstance(ttl, bool) else ttl
        if (now - at).total_seconds() >= ttl:
            out.append(job_id)
    return out


def _slim(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    meta.pop("managedFields", None)
    out["metadata"] = meta
    return out


class TombstoneStore:
    def __init__(self, storage: AsyncJobStorage, max_age_seconds: int = 7 * 86400) -> None:
        self.storage = storage
        self.max_age = max_age_seconds

    def _key(self, owner: str, job_id: str) -> str:
        return f"{PREFIX}{escape_username(owner)}/{job_id}.json"

    async def save(
        self, owner: str, job_id: str, job: dict[str, Any], pods: list[dict[str, Any]]
    ) -> None:
        body = json.dumps({"job": _slim(job), "pods": [_slim(p) for p in pods]}).encode()
        sync = self.storage.sync
        await asyncio.to_thread(
            sync.client.put_object,
            Bucket=sync.bucket,
            Key=self._key(owner, job_id),
            Body=body,
            ContentType="application/json",
        )

    def _load_all(self) -> list[dict[str, Any]]:
        sync = self.storage.sync
        client = sync.client
        now = dt.datetime.now(dt.UTC)
        records: list[dict[str, Any]] = []
        old: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=sync.bucket, Prefix=PREFIX
        ):
            for obj in page.get("Contents", []) or []:
                if (now - obj["LastModified"]).total_seconds() > self.max_age:
                    old.append(obj["Key"])
                    continue
                raw = client.get_object(Bucket=sync.bucket, Key=obj["Key"])["Body"].read()
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict) and isinstance(record.get("job"), dict):
                    records.append(record)
        for i in range(0, len(old), 1000):
            client.delete_objects(
                Bucket=sync.bucket,
                Delete={"Objects": [{"Key": k} for k in old[i : i + 1000]], "Quiet": True},
            )
        return records

    async def load_all(self) -> list[dict[str, Any]]:
        """Every kept record (``{"job", "pods"}``), oldest records removed on the way."""
        try:
            return await asyncio.to_thread(self._load_all)
        except Exception as exc:  # noqa: BLE001 - S3 down at start: cancelled jobs show later
            log.warning("could not load cancelled jobs from S3: %s", type(exc).__name__)
            return []
