"""``gpulab jobs define`` and ``gpulab jobs definitions``: saved job definitions, on a schedule
or run by hand (docs/jobs.md, "Saved definitions and schedules")."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from .globals import GlobalOptions
from .output import Column, emit, emit_error, hint, render_table, terminal_width
from .runner import EXIT_USAGE
from .transport import Transport

__all__ = ["DEFINE_EXAMPLES", "DEFINITIONS_EXAMPLES", "add_define", "add_definitions", "run_define",
           "run_definitions"]  # fmt: skip

DEFINE_EXAMPLES = [
    (
        "train every night at 02:00 Shanghai time",
        'gpulab jobs define nightly job.yaml --schedule "0 2 * * *" --timezone Asia/Shanghai',
    ),
    ("save a spec to run by hand later (gpulab jobs definitions run-now NAME)",
     "gpulab jobs define prep prep.yaml"),
    ("hourly, a new run replacing one still running",
     'gpulab jobs define sync sync.yaml --schedule @hourly --concurrency-policy Replace'),
]  # fmt: skip
DEFINITIONS_EXAMPLES = [
    ("your definitions, next to their schedules", "gpulab jobs definitions list"),
    ("one definition, with its runs", "gpulab jobs definitions show nightly"),
    ("stop a schedule for now, and start it again", "gpulab jobs definitions pause nightly"),
    ("run it once now (an ordinary job)", "gpulab jobs definitions run-now nightly"),
]


def add_define(sub: Any, make: Any) -> None:
    p = make(sub, "define", "save a job spec under a name, optionally on a cron schedule")
    p.add_argument("name", help="the definition's name (lowercase letters, digits, -)")
    p.add_argument("spec", help="job spec file, YAML or JSON (- for stdin); see docs/jobs.md")
    p.add_argument("--schedule", help='cron schedule, e.g. "0 2 * * *" or @daily (default: none)')
    p.add_argument("--timezone", help="time zone of the schedule, e.g. Asia/Shanghai (default UTC)")
    p.add_argument(
        "--concurrency-policy",
        choices=("Forbid", "Replace"),
        default="Forbid",
        help="when a run is due while one is running: skip it (Forbid) or replace the old run",
    )
    p.add_argument("--paused", action="store_true", help="save the schedule paused")


def add_definitions(sub: Any, make: Any) -> None:
    p = make(sub, "definitions", "list, show, pause, resume, run or delete saved definitions")
    actions = p.add_subparsers(dest="definitions_command", metavar="ACTION", required=True)
    actions.add_parser("list", help="your definitions")
    for action, text in (
        ("show", "one definition with its schedule and runs"),
        ("pause", "stop its schedule (runs already started go on)"),
        ("resume", "start its schedule again"),
        ("run-now", "run it once now, as an ordinary job"),
        ("delete", "delete it, with its scheduled runs"),
    ):
        actions.add_parser(action, help=text).add_argument("name")


def run_define(args: argparse.Namespace, options: GlobalOptions, transport: Transport) -> int:
    try:
        text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
        spec = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        emit_error(options, f"cannot read {args.spec}: {exc}")
        return EXIT_USAGE
    body: dict[str, Any] = {
        "name": args.name,
        "spec": spec,
        "concurrency_policy": args.concurrency_policy,
        "paused": bool(args.paused),
    }
    if args.schedule is not None:
        body["schedule"] = args.schedule
    if args.timezone is not None:
        body["timezone"] = args.timezone
    made = transport.gateway.define(body)
    emit(options, made, _details(made))
    if made.get("schedule") is None:
        hint(options, f"run it with: gpulab jobs definitions run-now {made['name']}")
    return 0


def run_definitions(args: argparse.Namespace, options: GlobalOptions, transport: Transport) -> int:
    client = transport.gateway
    action = args.definitions_command
    if action == "list":
        items = client.definitions()
        human = _table(items, wide=options.output == "wide") if items else "no definitions"
        emit(options, items, human)
        return 0
    if action == "show":
        d = client.definition(args.name)
        emit(options, d, _details(d))
        return 0
    if action == "delete":
        emit(options, client.delete_definition(args.name), f"deleted {args.name}")
        return 0
    answer = client.definition_action(args.name, action)
    if action == "run-now":
        emit(options, answer, answer["id"])
        hint(options, f"follow it with: gpulab jobs logs -f {answer['id']}")
        return 0
    emit(options, answer, _details(answer))
    return 0


def _when(d: dict[str, Any]) -> str:
    if d.get("schedule") is None:
        return "run-now only"
    zone = f" ({d['timezone']})" if d.get("timezone") else " (UTC)"
    return f"{d['schedule']}{zone}"


def _table(items: list[dict[str, Any]], *, wide: bool) -> str:
    columns = [Column("NAME"), Column("SCHEDULE"), Column("PAUSED"), Column("LAST RUN"),
               Column("ACTIVE", right=True)]  # fmt: skip
    if wide:
        columns += [Column("ID"), Column("POLICY"), Column("RUNS", right=True)]
    rows = []
    for d in items:
        row = [
            d["name"],
            _when(d),
            "-" if d.get("paused") is None else ("yes" if d["paused"] else "no"),
            d.get("last_schedule_time") or "-",
            str(len(d.get("active_runs") or [])),
        ]
        if wide:
            row += [d["id"], d.get("concurrency_policy") or "", str(len(d.get("runs") or []))]
        rows.append(row)
    return render_table(columns, rows, terminal_width())


def _details(d: dict[str, Any]) -> str:
    lines = [
        f"name:      {d['name']}",
        f"id:        {d['id']}",
        f"schedule:  {_when(d)}",
    ]
    if d.get("paused") is not None:
        lines.append(f"paused:    {'yes' if d['paused'] else 'no'}")
    lines += [
        f"policy:    {d.get('concurrency_policy')}",
        f"last run:  {d.get('last_schedule_time') or '-'}",
        f"runs:      {', '.join(d.get('runs') or []) or '-'}",
    ]
    return "\n".join(lines)
