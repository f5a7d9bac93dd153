"""While the usage database refuses writes the recorder warns once and backs off (no log line
per event), and records the current pods as soon as the database is writable again.

The database is opened read-only through sqlite's ``mode=ro`` URI: CI runs as root, where a
chmod would not stop the writes."""

from __future__ import annotations

import logging

from gpulab.hub.usage.models import UsageInterval, make_engine
from gpulab.hub.usage.recorder import DB_RETRY_MIN, UsageRecorder
from gpulab.hub.workload.labels import USER_LABEL
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pod(uid: str) -> dict:
    return {
        "metadata": {
            "uid": uid,
            "name": f"pod-{uid}",
            "namespace": "ns",
            "labels": {USER_LABEL: "alice"},
        },
        "status": {"phase": "Running", "startTime": "2026-01-01T00:00:00Z"},
    }


def uids(engine) -> set[str]:
    with Session(engine) as s:
        return set(s.scalars(select(UsageInterval.pod_uid)))


async def test_read_only_database_warns_once_backs_off_and_recovers(tmp_path, caplog):
    path = tmp_path / "usage.sqlite"
    writable = make_engine(f"sqlite:///{path}")
    read_only = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    recorder = UsageRecorder(read_only, object(), "ns")  # the kube client is never used here
    recorder.clock = clock = Clock()
    pods = [pod(str(i)) for i in range(50)]

    with caplog.at_level(logging.INFO, logger="gpulab.usage"):
        for p in pods:
            recorder.cache.objects[p["metadata"]["uid"]] = p
            await recorder._on_event("ADDED", p)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "refuses writes" in warnings[0].getMessage()
    assert recorder.outage is not None and recorder.outage.skipped == 49
    assert uids(writable) == set()

    # Each failed retry waits twice as long and logs one line.
    delays = []
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gpulab.usage"):
        for _ in range(4):
            clock.now = recorder.outage.retry_at
            await recorder._on_event("MODIFIED", pods[0])
            delays.append(recorder.outage.delay)
            for p in pods[1:10]:  # events in between: skipped, not logged
                await recorder._on_event("MODIFIED", p)
    assert delays == [DB_RETRY_MIN * 2, DB_RETRY_MIN * 4, DB_RETRY_MIN * 8, DB_RETRY_MIN * 16]
    assert len(caplog.records) == 4

    # Writable again: the next try succeeds and records every pod the cache holds.
    recorder.engine = writable
    recorder.cache.synced.set()
    clock.now = recorder.outage.retry_at
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="gpulab.usage"):
        await recorder._on_event("MODIFIED", pods[0])
    assert recorder.outage is None
    assert "writable again" in caplog.text
    assert uids(writable) == {p["metadata"]["uid"] for p in pods}
    with Session(writable) as s:
        assert all(row.ended_at is None for row in s.scalars(select(UsageInterval)))
    await recorder._on_event("MODIFIED", pods[1])  # and it goes on writing directly
    read_only.dispose()
    writable.dispose()
