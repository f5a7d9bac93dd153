"""Usage aggregates, idempotent upserts and the schema upgrade, on sqlite and on a real
PostgreSQL server (the ``usage_url`` fixture runs each test on both)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from gpulab.hub.usage.models import UsageInterval, make_engine
from gpulab.hub.usage.queries import gpu_hours_by_group_day, summarize
from gpulab.hub.usage.recorder import interval_from_pod, upsert
from sqlalchemy import inspect, text
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


def test_upsert_twice_counts_once_and_splits_days(usage_url):
    engine = make_engine(usage_url)
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
    engine.dispose()


def test_open_interval_widens_and_never_reopens(usage_url):
    engine = make_engine(usage_url)
    running = pod("u2", "bob", "nlp", 1, T0)
    with Session(engine) as s, s.begin():  # seen running, then seen again later
        upsert(s, interval_from_pod(running, T0 + timedelta(hours=1)), T0 + timedelta(hours=1))
        upsert(s, interval_from_pod(running, T0 + timedelta(hours=2)), T0 + timedelta(hours=2))
    with Session(engine) as s:
        row = s.get(UsageInterval, "u2")
        assert row.ended_at is None and row.last_seen_at == T0 + timedelta(hours=2)
    ended = pod("u2", "bob", "nlp", 1, T0, "Failed", T0 + timedelta(hours=3))
    with Session(engine) as s, s.begin():
        upsert(s, interval_from_pod(ended, T0 + timedelta(hours=4)), T0 + timedelta(hours=4))
        # a stale "running" event replayed after the end changes nothing
        upsert(s, interval_from_pod(running, T0 + timedelta(hours=5)), T0 + timedelta(hours=5))
    rows = summarize(engine, T0, T0 + timedelta(days=1), by=("user", "kind"))
    assert [(r.key, r.gpu_hours, r.count) for r in rows] == [
        ({"user": "bob", "kind": "server"}, 3.0, 1)
    ]
    engine.dispose()


def test_named_server_name_recorded(usage_url):
    engine = make_engine(usage_url)
    p = pod("u3", "carol", "vision", 1, T0)
    p["metadata"]["annotations"] = {"hub.jupyter.org/servername": "big-gpu"}
    job = pod("u4", "carol", "vision", 1, T0, kind="job")
    job["metadata"]["annotations"] = {"hub.jupyter.org/servername": "ignored"}
    with Session(engine) as s, s.begin():
        upsert(s, interval_from_pod(p, T0), T0)
        upsert(s, interval_from_pod(job, T0), T0)
    with Session(engine) as s:
        assert s.get(UsageInterval, "u3").server_name == "big-gpu"
        assert s.get(UsageInterval, "u4").server_name == ""
    engine.dispose()


def test_table_from_an_older_release_gets_the_new_column(usage_url):
    """make_engine adds server_name to a table created before it existed; rows survive."""
    engine = make_engine(usage_url, create=False)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE gpulab_usage_intervals (pod_uid VARCHAR(64) PRIMARY KEY, "
                "namespace VARCHAR(253) NOT NULL, pod_name VARCHAR(253) NOT NULL, "
                "user VARCHAR(255) NOT NULL, group_name VARCHAR(255) NOT NULL, "
                "kind VARCHAR(16) NOT NULL, job_id VARCHAR(128), gpus INTEGER NOT NULL, "
                "gpu_type VARCHAR(64) NOT NULL, cpu FLOAT NOT NULL, "
                "started_at TIMESTAMP WITH TIME ZONE NOT NULL, "
                "ended_at TIMESTAMP WITH TIME ZONE, "
                "last_seen_at TIMESTAMP WITH TIME ZONE NOT NULL)".replace(" user ", ' "user" ')
            )
        )
        conn.execute(
            text(
                "INSERT INTO gpulab_usage_intervals VALUES ('old', 'ns', 'p', 'dan', 'nlp', "
                "'server', NULL, 1, '', 0.5, :t0, :t1, :t1)"
            ),
            {"t0": T0, "t1": T0 + timedelta(hours=1)},
        )
    engine.dispose()
    engine = make_engine(usage_url)
    columns = {c["name"] for c in inspect(engine).get_columns("gpulab_usage_intervals")}
    assert "server_name" in columns
    rows = summarize(engine, T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert [(r.key["user"], r.gpu_hours) for r in rows] == [("dan", 1.0)]
    engine.dispose()


def test_admin_usage_cli_csv(usage_url):
    engine = make_engine(usage_url)
    now = datetime.now(UTC)
    with Session(engine) as s, s.begin():
        upsert(
            s,
            interval_from_pod(
                pod("j1", "bob", "nlp", 1, now - timedelta(hours=1), kind="job"), now
            ),
            now,
        )
    engine.dispose()
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
            usage_url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "user,group,kind,gpu_hours,cpu_hours,pods"
    assert lines[1].startswith("bob,nlp,job,1.0")
