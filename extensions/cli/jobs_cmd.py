"""``gpulab jobs``: submit, watch and collect batch jobs from a terminal, a laptop or a script."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path, PurePosixPath
from typing import Any

from gpulab.wire.jobs import JOB_STATES, TERMINAL_STATES

from .definitions_cmd import (
    DEFINE_EXAMPLES,
    DEFINITIONS_EXAMPLES,
    add_define,
    add_definitions,
    run_define,
    run_definitions,
)
from .globals import GlobalOptions
from .help_text import examples
from .job_spec import SpecError, inline_spec
from .jobs_view import job_details, jobs_table
from .output import emit, emit_error, hint, terminal_width
from .runner import EXIT_FAILED, EXIT_USAGE, run_with_transport
from .runs_view import runs_table, sort_runs
from .transport import Transport
from .validate_cmd import EXAMPLES as VALIDATE_EXAMPLES
from .validate_cmd import add_validate_arguments, run_validate

__all__ = ["add_arguments", "run"]

# After a followed log ends, how long to wait for the gateway to record the job's end.
SETTLE_SECONDS = 120.0
SETTLE_POLL = 1.0

EXAMPLES = {
    "submit": [
        (
            "run a notebook of your home on one GPU, with parameters, and follow it",
            "gpulab jobs submit --notebook work/train.ipynb --gpus 1 -p epochs=3 -p lr=0.01 --follow",
        ),
        (
            "run a command in an image",
            'gpulab jobs submit --image harbor.example.org/shared/scipy:2024.10 --command "python work/prep.py"',
        ),
        (
            "submit a spec file (YAML or JSON; - reads stdin), overriding its GPUs",
            "gpulab jobs submit job.yaml --gpus 2",
        ),
        ("in a script: the new job's id", "id=$(gpulab jobs submit job.yaml -o json | jq -r .id)"),
    ],
    "list": [
        ("your newest jobs", "gpulab jobs list"),
        (
            "the 5 newest failed ones, all columns",
            "gpulab jobs list --state Failed --limit 5 -o wide",
        ),
        ("as JSON for a script", "gpulab jobs list -o json"),
    ],
    "logs": [
        (
            "follow a running job; the exit code says whether it succeeded",
            "gpulab jobs logs -f JOB",
        ),
        ("the log of rank 1 of a multi-node job", "gpulab jobs logs --rank 1 JOB"),
    ],
    "outputs": [("download every output into ./results", "gpulab jobs outputs get JOB -D results")],
    "validate": VALIDATE_EXAMPLES,
    "define": DEFINE_EXAMPLES,
    "definitions": DEFINITIONS_EXAMPLES,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run notebooks and scripts as batch jobs: submit, list, follow logs, cancel, resubmit "
        "and download outputs. Jobs keep running when your server stops."
    )
    parser.epilog = examples(EXAMPLES["submit"][:1] + EXAMPLES["list"][:2] + EXAMPLES["logs"])
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)

    add_define(sub, _sub)
    add_definitions(sub, _sub)
    add_validate_arguments(
        _sub(sub, "validate", "check a spec file (schema, and your policy when a hub answers)")
    )
    p = _sub(sub, "submit", "submit a job: a spec file, or flags (--notebook, --gpus, -p ...)")
    p.add_argument(
        "spec", nargs="?", help="job spec file, YAML or JSON (- for stdin); see docs/jobs.md"
    )
    p.add_argument("--name", help="job name (default: from the notebook or script)")
    p.add_argument(
        "--notebook", help="notebook to run, a path in your home (e.g. work/train.ipynb)"
    )
    p.add_argument("--command", help='command to run, e.g. "python work/train.py --fast"')
    p.add_argument("--image", help="image (default: the policy's; see `gpulab images`)")
    p.add_argument("--gpus", type=_count, help="number of GPUs (default: 0)")
    p.add_argument("--gpu-type", help="GPU type, when your groups allow several")
    p.add_argument("--cpu", help="CPUs, e.g. 2 or 500m")
    p.add_argument("--memory", help="memory, e.g. 8Gi")
    p.add_argument("--max-runtime", help="stop it after this long, e.g. 2h")
    p.add_argument("--retries", type=_count, help="retries after a failure")
    p.add_argument("--working-dir", help="folder in your home to run in")
    p.add_argument("--dataset", action="append", default=[], help="a dataset to mount (repeat)")
    p.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a notebook parameter (repeat); 3 is a number, true a boolean",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an environment variable (repeat)",
    )
    p.add_argument(
        "--idempotency-key",
        help="a retried submit with the same key makes no 2nd job (default: a fresh key)",
    )
    p.add_argument(
        "-f", "--follow", action="store_true", help="then follow its log; exit 1 unless it succeeds"
    )

    p = _sub(sub, "list", "list your jobs, newest first (admins: --all)")
    p.add_argument("--all", action="store_true", help="admins: every user's jobs")
    p.add_argument("--user", help="admins: only this user's jobs")
    p.add_argument("--group", help="admins: only this group's jobs")
    p.add_argument("--state", choices=JOB_STATES, help="only jobs in this state")
    p.add_argument(
        "--limit", type=_positive, default=50, help="at most this many jobs (default: 50)"
    )
    p.add_argument("--since", help="only jobs created at or after this time (2026-01-31T12:00:00Z)")
    p.add_argument("--before", help="only jobs created before this time")

    p = _sub(sub, "status", "show one job (a sweep: with its results table)")
    p.add_argument("job")
    p.add_argument(
        "--sort",
        metavar="METRIC",
        help="a sweep's runs by this metric or parameter, smallest first (-METRIC: largest)",
    )

    p = _sub(sub, "logs", "print a job's log (after it ended too)")
    p.add_argument("job")
    p.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="keep streaming until it ends; exit 1 unless it succeeds",
    )
    p.add_argument("--tail", type=_positive, help="only the last N lines")
    p.add_argument(
        "--rank",
        type=_count,
        default=0,
        help="a multi-node job's rank whose log to print (default 0)",
    )
    p.add_argument("--run", type=_count, help="a sweep's run (its index; default 0)")

    p = _sub(sub, "cancel", "cancel a job")
    p.add_argument("job")

    p = _sub(sub, "resubmit", "run a job again with the same spec")
    p.add_argument("job")

    p = _sub(sub, "outputs", "list a job's outputs, or download them")
    out_sub = p.add_subparsers(dest="outputs_command", metavar="ACTION", required=True)
    q = out_sub.add_parser("list", help="list output files")
    q.add_argument("job")
    q.add_argument("--run", type=_count, help="only this run's files (a sweep)")
    q = out_sub.add_parser("get", help="download outputs with a progress bar")
    q.add_argument("job")
    q.add_argument("paths", nargs="*", help="only these files (default: all)")
    q.add_argument(
        "-D", "--dir", type=Path, default=Path("."), help="folder to write to (default: .)"
    )


def _sub(sub: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=examples(EXAMPLES.get(name, [])),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def run(args: argparse.Namespace) -> int:
    if args.jobs_command == "validate":  # works without a hub: no transport up front
        return run_validate(args)
    return run_with_transport(args, _dispatch)


def _dispatch(args: argparse.Namespace, options: GlobalOptions, transport: Transport) -> int:
    command = args.jobs_command
    if command == "submit":
        return _submit(args, options, transport)
    if command == "define":
        return run_define(args, options, transport)
    if command == "definitions":
        return run_definitions(args, options, transport)
    client = transport.gateway
    if command == "list":
        filters = {
            "state": args.state,
            "user": args.user,
            "group": args.group,
            "created_since": args.since,
            "created_before": args.before,
        }
        if args.all:
            filters["all"] = "1"
        jobs = list(client.list(limit=args.limit, **filters))
        show_owner = bool(args.all or args.user or args.group)
        human = (
            jobs_table(
                jobs, wide=options.output == "wide", show_owner=show_owner, width=terminal_width()
            )
            if jobs
            else "no jobs"
        )
        emit(options, jobs, human)
        return 0
    if command == "status":
        job = client.get(args.job)
        human = job_details(job)
        if isinstance(job.get("runs"), list):
            try:
                job["runs"] = sort_runs(job["runs"], args.sort)
            except ValueError as exc:
                emit_error(options, str(exc))
                return EXIT_USAGE
            human += "\n\n" + runs_table(job["runs"], terminal_width())
        elif args.sort:
            emit_error(options, f"job {job.get('id')} is not a sweep: it has no runs to sort")
            return EXIT_USAGE
        emit(options, job, human)
        return 0
    if command == "logs":
        _stream(
            client.logs(args.job, follow=args.follow, tail=args.tail, rank=args.rank, run=args.run)
        )
        return _outcome(options, transport, args.job) if args.follow else 0
    if command == "cancel":
        job = client.cancel(args.job)
        emit(options, job, f"cancelling {job['id']}")
        return 0
    if command == "resubmit":
        job = client.resubmit(args.job)
        emit(options, job, job["id"])
        hint(options, _next_steps(job["id"]))
        return 0
    if args.outputs_command == "get":
        return _download(client, args, options)
    listing = client.outputs(args.job, args.run)
    emit(options, listing, _outputs_table(listing))
    return 0


def _submit(args: argparse.Namespace, options: GlobalOptions, transport: Transport) -> int:
    try:
        spec = _spec_from_args(args)
    except (SpecError, OSError, ValueError) as exc:
        emit_error(options, str(exc))
        return EXIT_USAGE
    job = transport.gateway.submit(spec, idempotency_key=args.idempotency_key)
    emit(options, job, job["id"])
    if not args.follow:
        hint(options, _next_steps(job["id"]))
        return 0
    hint(options, f"following the log of {job['id']} (Ctrl-C stops following, not the job)")
    _stream(transport.gateway.logs(job["id"], follow=True))
    return _outcome(options, transport, job["id"])


INLINE_FLAGS = (
    "name",
    "notebook",
    "command",
    "image",
    "gpus",
    "gpu_type",
    "cpu",
    "memory",
    "max_runtime",
    "retries",
    "working_dir",
)


def _spec_from_args(args: argparse.Namespace) -> dict[str, Any] | str:
    """The spec file's text as is (the gateway reads it strictly), or a document of the flags
    (over the file's, when both are given)."""
    inline = {k: getattr(args, k) for k in INLINE_FLAGS}
    given = any(v is not None for v in inline.values()) or args.dataset or args.param or args.env
    text = None
    if args.spec:
        text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
        if not given:
            try:
                return json.loads(text)
            except ValueError:
                return text
    base = None
    if text is not None:
        # The gateway's own reader (strict YAML: no duplicate keys, no aliases), so a file
        # merged with flags is read as the gateway would read it alone.
        from gpulab.hub.jobs.spec import SpecError as DocumentError
        from gpulab.hub.jobs.spec import load_document

        try:
            base = load_document(text)
        except DocumentError as exc:
            raise SpecError(f"{args.spec}: {exc}") from None
        if not isinstance(base, dict):
            raise SpecError(f"{args.spec}: a job spec is a mapping (name:, image:, ...)")
    return inline_spec(
        base=base, datasets=args.dataset, parameters=args.param, env=args.env, **inline
    )


def _next_steps(job_id: str) -> str:
    return (
        f"next: gpulab jobs logs -f {job_id}    (follow its log)\n"
        f"      gpulab jobs status {job_id}     (its state)\n"
        f"      gpulab jobs outputs get {job_id} (download its outputs when it ends)"
    )


def _outcome(options: GlobalOptions, transport: Transport, job_id: str) -> int:
    """After a followed log: 0 if the job succeeded, 1 if it failed or was cancelled. The log
    can end a moment before the gateway records the end, so its state is polled (bounded)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    job = transport.gateway.get(job_id)
    while job.get("state") not in TERMINAL_STATES and time.monotonic() < deadline:
        time.sleep(SETTLE_POLL)
        job = transport.gateway.get(job_id)
    state = job.get("state", "?")
    if state == "Succeeded":
        hint(options, f"{job_id} succeeded; outputs: gpulab jobs outputs get {job_id}")
        return 0
    why = f": {job['message']}" if job.get("message") else ""
    if state in TERMINAL_STATES:
        emit_error(options, f"job {job_id} {state}{why}")
    else:
        emit_error(options, f"job {job_id} is still {state} but its log ended{why}")
    return EXIT_FAILED


def _stream(chunks: Any) -> None:
    for chunk in chunks:
        sys.stdout.write(chunk)
        sys.stdout.flush()


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number, 0 or more")
    return value


def _positive(text: str) -> int:
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number, 1 or more")
    return value


def _outputs_table(listing: dict[str, Any]) -> str:
    from .output import Column, render_table

    rows = [
        [
            i["path"],
            _human_size(i.get("size", 0)),
            str(i.get("modified") or "")[:19].replace("T", " "),
        ]
        for i in listing.get("items", [])
    ]
    if not rows:
        return f"no outputs (upload: {listing.get('upload', '?')})"
    columns = [Column("PATH", whole=True), Column("SIZE", right=True), Column("MODIFIED")]
    return render_table(columns, rows, terminal_width())


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _download(client: Any, args: argparse.Namespace, options: GlobalOptions) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    listing = client.outputs(args.job)
    wanted = set(args.paths)
    items = [i for i in listing.get("items", []) if not wanted or i["path"] in wanted]
    missing = wanted - {i["path"] for i in items}
    if missing:
        emit_error(options, f"not among the outputs: {', '.join(sorted(missing))}")
        return EXIT_FAILED
    target_root = args.dir.resolve()
    written = []
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
        disable=options.machine,
    ) as progress:
        for item in items:
            relative = PurePosixPath(item["path"])
            # The gateway's listing is trusted less than the local disk: stay under --dir.
            dest = (target_root / Path(*relative.parts)).resolve()
            if target_root not in dest.parents:
                emit_error(options, f"skipping unsafe path {item['path']}")
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            task = progress.add_task(item["path"], total=item.get("size") or None)
            url = client.output_url(args.job, item["path"])
            client.download(
                url, dest, lambda done, _total, t=task: progress.update(t, completed=done)
            )
            written.append(str(dest))
    emit(options, written, f"{len(written)} file(s) in {target_root}")
    return 0
