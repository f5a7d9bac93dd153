"""``gpulab jobs``: submit, watch and collect batch jobs from a terminal or a laptop.

Human tables by default, ``--json`` for scripts. Exit codes: 0 success, 1 the gateway refused
(the message says why), 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path, PurePosixPath

STATE_STYLES = {
    "Queued": "blue",
    "Pending": "yellow",
    "Running": "cyan",
    "Succeeded": "green",
    "Failed": "red",
    "Cancelled": "magenta",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run notebook code as detached Kubernetes Jobs: submit a job spec, list your jobs, "
        "follow logs, cancel, and download outputs. Inside a gpulab server the gateway and "
        "token are found automatically; on a laptop pass --hub-url and --token (from the "
        "hub's token page) or set GPULAB_HUB_URL and GPULAB_TOKEN."
    )
    parser.add_argument("--hub-url", help="hub URL, e.g. https://hub.example.org")
    parser.add_argument("--token", help="hub API token (default: $GPULAB_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    sub = parser.add_subparsers(dest="jobs_command", metavar="ACTION", required=True)

    p = sub.add_parser("submit", help="submit a job spec (YAML or JSON file, - for stdin)")
    p.add_argument("spec", help="job spec file; see docs/jobs.md")
    p.add_argument(
        "--idempotency-key",
        help="a retried submit with the same key makes no 2nd job "
        "(default: a fresh key per submit, reused when the client retries it)",
    )
    p.add_argument("-f", "--follow", action="store_true", help="then follow its log")

    p = sub.add_parser("list", help="list your jobs (admins: --all)")
    p.add_argument("--all", action="store_true", help="admins: every user's jobs")
    p.add_argument("--user", help="admins: only this user's jobs")
    p.add_argument("--group", help="admins: only this group's jobs")
    p.add_argument("--state", choices=sorted(STATE_STYLES), help="only jobs in this state")
    p.add_argument(
        "--limit",
        type=_positive,
        default=50,
        help="show at most this many jobs, the newest (default: 50)",
    )
    p.add_argument(
        "--since", help="only jobs created at or after this time (e.g. 2026-01-31T12:00:00Z)"
    )
    p.add_argument("--before", help="only jobs created before this time")

    p = sub.add_parser("status", help="show one job")
    p.add_argument("job")

    p = sub.add_parser("logs", help="print a job's log (after it ends too)")
    p.add_argument("job")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming until it ends")
    p.add_argument("--tail", type=int, help="only the last N lines")

    p = sub.add_parser("cancel", help="cancel a job")
    p.add_argument("job")

    p = sub.add_parser("resubmit", help="run a job again with the same spec")
    p.add_argument("job")

    p = sub.add_parser("outputs", help="list a job's outputs, or download them")
    out_sub = p.add_subparsers(dest="outputs_command", metavar="ACTION", required=True)
    q = out_sub.add_parser("list", help="list output files")
    q.add_argument("job")
    q = out_sub.add_parser("get", help="download outputs with a progress bar")
    q.add_argument("job")
    q.add_argument("paths", nargs="*", help="only these files (default: all)")
    q.add_argument("-o", "--output", type=Path, default=Path("."), help="directory to write to")


def run(args: argparse.Namespace) -> int:
    from gpulab.extensions.client import ClientConfig, ConfigError, GatewayClient, GatewayError
    from rich.console import Console

    console = Console(stderr=False)
    errors = Console(stderr=True)
    try:
        config = ClientConfig.discover(args.hub_url, args.token)
    except ConfigError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        return 2
    try:
        with GatewayClient(config) as client:
            return _dispatch(args, client, console)
    except GatewayError as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        return 1
    except OSError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        return 2
    except KeyboardInterrupt:
        return 130


def _dispatch(args, client, console) -> int:
    command = args.jobs_command
    if command == "submit":
        text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
        spec = _parse_spec(text)
        job = client.submit(spec, idempotency_key=args.idempotency_key)
        if args.json:
            _print_json(job)
        else:
            console.print(f"submitted [bold]{job['id']}[/bold] ({_state(job)})")
        if args.follow:
            _stream(client.logs(job["id"], follow=True))
        return 0
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
        if args.json:
            _print_json(jobs)
        else:
            console.print(_jobs_table(jobs, show_owner=bool(args.all or args.user or args.group)))
        return 0
    if command == "status":
        job = client.get(args.job)
        _print_json(job) if args.json else console.print(_job_details(job))
        return 0
    if command == "logs":
        _stream(client.logs(args.job, follow=args.follow, tail=args.tail))
        return 0
    if command == "cancel":
        job = client.cancel(args.job)
        _print_json(job) if args.json else console.print(f"cancelling {job['id']}")
        return 0
    if command == "resubmit":
        job = client.resubmit(args.job)
        _print_json(job) if args.json else console.print(f"submitted [bold]{job['id']}[/bold]")
        return 0
    if command == "outputs":
        if args.outputs_command == "get":
            return _download(client, args, console)
        listing = client.outputs(args.job)
        if args.json:
            _print_json(listing)
        else:
            console.print(_outputs_table(args.job, listing))
        return 0
    return 2


def _parse_spec(text: str):
    """JSON is sent as JSON; anything else goes to the gateway as YAML, which validates it."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _stream(chunks) -> None:
    for chunk in chunks:
        sys.stdout.write(chunk)
        sys.stdout.flush()


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _state(job: dict) -> str:
    state = job.get("state", "?")
    return f"[{STATE_STYLES.get(state, 'white')}]{state}[/]"


def _queue(job: dict) -> str:
    """Where a Queued job stands (``#3 in alice``) and its preemptions, for the list and the
    status; "" for a job Kueue does not queue."""
    parts = []
    queue = job.get("queue")
    if isinstance(queue, dict):
        parts.append(f"#{queue.get('position')} in {queue.get('name')}")
    if job.get("preemptions"):
        parts.append(
            f"preempted, requeued ({job['preemptions']}×), "
            f"{job.get('gpu_hours_lost', 0)} GPU-h lost"
        )
    return "; ".join(parts)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number of jobs, 1 or more")
    return value


def _jobs_table(jobs: list[dict], show_owner: bool):
    from rich.table import Table

    table = Table(title=f"{len(jobs)} job(s)", title_justify="left")
    table.add_column("JOB", style="bold")
    if show_owner:
        table.add_column("OWNER")
    table.add_column("STATE")
    table.add_column("QUEUE")
    table.add_column("GPUS", justify="right")
    table.add_column("IMAGE", overflow="fold")
    table.add_column("CREATED")
    for job in jobs:
        row = [job["id"]]
        if show_owner:
            row.append(job.get("owner", ""))
        row += [
            _state(job),
            _queue(job),
            str(job.get("gpus", 0)),
            job.get("image", ""),
            (job.get("created") or "")[:19].replace("T", " "),
        ]
        table.add_row(*row)
    return table


def _job_details(job: dict):
    from rich.table import Table

    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key in (
        "id",
        "name",
        "owner",
        "group",
        "state",
        "image",
        "gpus",
        "created",
        "started",
        "finished",
        "exit_code",
        "message",
        "queue",
        "upload",
    ):
        value = {"state": _state(job), "queue": _queue(job)}.get(key, job.get(key))
        if value not in (None, ""):
            table.add_row(key, str(value))
    return table


def _outputs_table(job_id: str, listing: dict):
    from rich.table import Table

    table = Table(
        title=f"outputs of {job_id} (upload: {listing.get('upload', '?')})", title_justify="left"
    )
    table.add_column("PATH")
    table.add_column("SIZE", justify="right")
    table.add_column("MODIFIED")
    for item in listing.get("items", []):
        table.add_row(
            item["path"],
            _human_size(item.get("size", 0)),
            (item.get("modified") or "")[:19].replace("T", " "),
        )
    return table


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _download(client, args, console) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    listing = client.outputs(args.job)
    wanted = set(args.paths)
    items = [i for i in listing.get("items", []) if not wanted or i["path"] in wanted]
    missing = wanted - {i["path"] for i in items}
    if missing:
        console.print(f"[red]not among the outputs:[/red] {', '.join(sorted(missing))}")
        return 1
    target_root = args.output.resolve()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
    ) as progress:
        for item in items:
            relative = PurePosixPath(item["path"])
            # The gateway's listing is trusted less than the local disk: stay under -o.
            dest = (target_root / Path(*relative.parts)).resolve()
            if target_root not in dest.parents:
                console.print(f"[red]skipping unsafe path[/red] {item['path']}")
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            task = progress.add_task(item["path"], total=item.get("size") or None)
            url = client.output_url(args.job, item["path"])
            client.download(
                url, dest, lambda done, _total, t=task: progress.update(t, completed=done)
            )
    console.print(f"{len(items)} file(s) in {target_root}")
    return 0
