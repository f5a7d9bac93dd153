"""Usage per user, group and kind (server|job): GPU-hours, CPU-hours, pods.

  gpulab admin usage --since 30d            # a table
  gpulab admin usage --since 7d --by group --csv

Reads the database the platform's culler writes: --db URL, else $GPULAB_USAGE_DB, else
the local platform's <state dir>/usage.sqlite (`gpulab up`, --state-dir, default ./.gpulab),
else gpulab-usage.sqlite in the current folder or in the hub's /srv/jupyterhub. A database
that is not there is an error (exit 2), never an empty new one.
"""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import UTC, datetime, timedelta


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", default="30d", help="duration (30d, 12h) or ISO date")
    parser.add_argument(
        "--by", default="user,group,kind", help="comma-separated: user, group, kind, day"
    )
    parser.add_argument("--csv", action="store_true", help="CSV on stdout instead of a table")
    parser.add_argument("--db", default=None, help="usage DB URL")
    parser.add_argument(
        "--state-dir",
        default=".gpulab",
        help="state dir of the local platform (`gpulab up`; default ./.gpulab)",
    )


def run(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from gpulab.hub.policy.quantities import parse_duration
    from gpulab.hub.usage.location import DatabaseNotFound, find_usage_db
    from gpulab.hub.usage.models import make_engine
    from gpulab.hub.usage.queries import summarize

    now = datetime.now(UTC)
    try:
        since = now - timedelta(seconds=parse_duration(args.since))
    except Exception:  # noqa: BLE001 - maybe a date
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            print(
                f"--since {args.since!r}: give a duration like 30d or an ISO date", file=sys.stderr
            )
            return 2
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    by = [b.strip() for b in args.by.split(",") if b.strip()]
    try:
        db = find_usage_db(args.db, env=os.environ, state_dir=Path(args.state_dir), cwd=Path.cwd())
    except DatabaseNotFound as e:
        print(f"gpulab admin usage: {e}", file=sys.stderr)
        return 2
    engine = make_engine(db.url, create=False)
    try:
        rows = summarize(engine, since, now, by)
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return 2
    if args.csv:
        w = csv.writer(sys.stdout)
        w.writerow([*by, "gpu_hours", "cpu_hours", "pods"])
        for r in rows:
            w.writerow(
                [*r.key.values(), f"{r.gpu_hours:.3f}", f"{r.cpu_seconds / 3600:.3f}", r.count]
            )
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"gpulab usage since {since:%Y-%m-%d %H:%M} UTC")
    for b in by:
        table.add_column(b)
    for name in ("GPU-hours", "CPU-hours", "pods"):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            *r.key.values(), f"{r.gpu_hours:.1f}", f"{r.cpu_seconds / 3600:.1f}", str(r.count)
        )
    Console().print(table)
    return 0
