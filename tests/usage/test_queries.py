"""Usage aggregates and idempotent upserts on sqlite (PostgreSQL: see test_postgres.py)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from gpulab.hub.usage.models import make_engine
from gpulab.hub.usage.queries import gpu_hours_by_group_day, summarize
from gpulab.hub.usage.recorder import interval_from_pod, upsert
from sqlalchemy.orm import Session

T0 = datetime(2026, 1, 10, 23, 0, tzinfo=UTC)


def pod(uid, user, group, gpus, start, phase="Running", end=None, kind="singleuser-server"):
    status = {"phase": phase, "startTime": start.isoformat()}
    if end:
        status["containerStatuses"] = [{"state": {"terminated": {"finishedAt": end.isoformat()}}}]
    return {
        "metadata": {
            "uid": uid,
            "name": f"p-{uid}",
            "namespace": "gpulab",
            "labels": {
                "gpulab.io/user": user,
                "gpulab.io/group": group,
                "gpulab.io/gpus": str(gpus),
                "app.kubernetes.io/component": kind,
            },
        },
        "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "500m"}}}]},
        "status": status,
    }


def test_upsert_twice_counts_once_and_splits_days(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'u.sqlite'}")
    now = T0 + timedelta(hours=3)
    p = pod("u1", "alice", "vision", 2, T0, "Succeeded", T0 + timedelta(hours=2))
    for _ in range(3):  # a re-list after a restart, a re-watch, a duplicate event
        with Session(engine) as s, s.begin():
            upsert(s, interval_from_pod(p, now), now)
    rows = summarize(engine, T0 - timedelta(days=1), now, by=("user", "day"))
    assert [(r.key["day"], r.gpu_hours, r.count) for r in rows] == [
        ("2026-01-10", 2.0, 1),
        ("2026-01-11", 2.0, 1),
    ]
    total = summarize(engine, T0 - timedelta(days=1), now)
    assert total[0].gpu_hours == 4.0 and total[0].cpu_seconds == 0.5 * 7200
    series = gpu_hours_by_group_day(engine, 30, now)
    assert series["vision"]["2026-01-10"] == 2.0 and len(series["vision"]) == 30


def test_admin_usage_cli_csv(tmp_path):
    url = f"sqlite:///{tmp_path / 'u.sqlite'}"
    engine = make_engine(url)
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        upsert(
            s,
            interval_from_pod(
                pod("j1", "bob", "nlp", 1, now - timedelta(hours=1), kind="job"), now
            ),
            now,
        )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpulab.cli",
            "admin",
            "usage",
            "--since",
            "1d",
            "--csv",
            "--db",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "user,group,kind,gpu_hours,cpu_hours,pods"
    assert lines[1].startswith("bob,nlp,job,1.0")
