"""Durable memory of cancelled jobs, whose Job objects Kubernetes removed.

On cancel the gateway writes the Job (and its pods) as last seen to
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
from typing import Any

from ...names import escape_username
from ..storage import AsyncJobStorage

__all__ = ["PREFIX", "TombstoneStore"]

PREFIX = "_gateway/cancelled/"
log = logging.getLogger("gpulab.jobs.gateway.tombstones")


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
