"""``gpulab server``: list, start, stop and inspect your JupyterLab servers from a terminal.

Through the hub's REST API with your token, as the spawn page does: a start sends KubeSpawner's
``user_options`` (``profile``, ``image``, ``gpus``), which gpulab's spawner checks like the
form; ``--wait`` follows the hub's progress events with a progress bar.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from .globals import GlobalOptions
from .help_text import examples
from .output import Column, emit, emit_error, hint, render_table, terminal_width
from .runner import EXIT_FAILED, run_with_transport
from .transport import Transport

__all__ = ["add_arguments", "run", "server_rows"]

STOP_WAIT_SECONDS = 300.0
POLL_SECONDS = 1.0

EXAMPLES = [
    ("your servers", "gpulab server list"),
    (
        "start your server with 2 GPUs and wait until it is ready",
        "gpulab server start --profile gpu --gpus 2 --wait",
    ),
    (
        "a second, named server with a chosen image",
        "gpulab server start --name exp --profile cpu --image harbor.example.org/shared/scipy:2024.10",
    ),
    ("stop it", "gpulab server stop --name exp"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Start, stop and inspect your JupyterLab servers (see `gpulab images`)."
    parser.epilog = examples(EXAMPLES)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="server_command", metavar="ACTION", required=True)
    sub.add_parser("list", help="list your running and starting servers")
    p = sub.add_parser("start", help="start a server (your default one unless --name)")
    p.add_argument("--name", default="", help="a named server (default: your default server)")
    p.add_argument("--profile", help="profile, as on the spawn page (e.g. gpu, cpu)")
    p.add_argument("--image", help="image (default: the profile's; see `gpulab images`)")
    p.add_argument("--gpus", help="number of GPUs (default: the profile's)")
    p.add_argument(
        "--wait",
        action="store_true",
        help="wait until it is ready, with a progress bar; exit 1 if it fails",
    )
    p = sub.add_parser("stop", help="stop a server")
    p.add_argument("--name", default="", help="a named server (default: your default server)")
    p.add_argument("--wait", action="store_true", help="wait until it has stopped")
    p = sub.add_parser("status", help="show one server")
    p.add_argument("--name", default="", help="a named server (default: your default server)")


def run(args: argparse.Namespace) -> int:
    return run_with_transport(args, _dispatch)


def _dispatch(args: argparse.Namespace, options: GlobalOptions, transport: Transport) -> int:
    hub = transport.hub
    user = hub.whoami()["name"]
    command = args.server_command
    if command == "list":
        servers = [_view(n, s, transport) for n, s in sorted(hub.servers(user).items())]
        human = (
            server_table(servers, wide=options.output == "wide", width=terminal_width())
            if servers
            else "no servers running; start one: gpulab server start --wait"
        )
        emit(options, servers, human)
        return 0
    if command == "status":
        model = hub.servers(user).get(args.name)
        view = _view(args.name, model, transport) if model else _stopped(args.name)
        emit(options, view, _details(view))
        return 0
    if command == "stop":
        return _stop(args, options, transport, user)
    return _start(args, options, transport, user)


def _start(
    args: argparse.Namespace, options: GlobalOptions, transport: Transport, user: str
) -> int:
    hub = transport.hub
    user_options = {
        k: v
        for k, v in (("profile", args.profile), ("image", args.image), ("gpus", args.gpus))
        if v
    }
    label = _label(args.name)
    running = hub.servers(user).get(args.name)
    if running and running.get("ready"):
        # Starting what already runs succeeds, as `kubectl apply` would: scripts can repeat it.
        view = _view(args.name, running, transport)
        emit(options, view, f"{label} is already running: {view['url']}")
        return 0
    status = 202 if running else hub.start(user, args.name, user_options)
    if status != 201 and not args.wait:
        view = _view(args.name, hub.servers(user).get(args.name) or {}, transport)
        emit(options, view, f"{label} is starting")
        hint(
            options, f"next: gpulab server status{_name_flag(args.name)}    (or start with --wait)"
        )
        return 0
    failure = None if status == 201 else _follow_progress(options, transport, user, args.name)
    model = hub.servers(user).get(args.name)
    if failure is not None or not model or not model.get("ready"):
        emit_error(options, f"{label} did not start: {failure or 'it is not running'}")
        return EXIT_FAILED
    view = _view(args.name, model, transport)
    emit(options, view, f"{label} is ready: {view['url']}")
    return 0


def _follow_progress(
    options: GlobalOptions, transport: Transport, user: str, name: str
) -> str | None:
    """Follow the start's events; the reason it failed, or None."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        console=Console(stderr=True),
        disable=options.machine,
    ) as progress:
        task = progress.add_task(f"starting {_label(name)}", total=100)
        for event in transport.hub.progress(user, name):
            message = str(event.get("message") or "")
            progress.update(
                task,
                completed=event.get("progress") or 0,
                description=message[:70] or f"starting {_label(name)}",
            )
            if event.get("failed"):
                return message or "the start failed"
            if event.get("ready"):
                progress.update(task, completed=100)
                return None
    return None


def _stop(args: argparse.Namespace, options: GlobalOptions, transport: Transport, user: str) -> int:
    hub = transport.hub
    label = _label(args.name)
    if args.name not in hub.servers(user):
        emit(options, _stopped(args.name), f"{label} is not running")
        return 0
    status = hub.stop(user, args.name)
    if status == 202 and args.wait:
        deadline = time.monotonic() + STOP_WAIT_SECONDS
        while args.name in hub.servers(user):
            if time.monotonic() > deadline:
                emit_error(options, f"{label} is still stopping after {STOP_WAIT_SECONDS:.0f} s")
                return EXIT_FAILED
            time.sleep(POLL_SECONDS)
        status = 204
    done = status == 204
    emit(
        options,
        _stopped(args.name) if done else {"name": args.name, "state": "stopping"},
        f"{label} {'stopped' if done else 'is stopping'}",
    )
    return 0


def _label(name: str) -> str:
    return f"server {name!r}" if name else "your server"


def _name_flag(name: str) -> str:
    return f" --name {name}" if name else ""


def _state(model: dict[str, Any]) -> str:
    if model.get("ready"):
        return "ready"
    pending = model.get("pending")
    return {"spawn": "starting", "stop": "stopping"}.get(pending or "", pending or "unknown")


def _view(name: str, model: dict[str, Any], transport: Transport) -> dict[str, Any]:
    options = model.get("user_options") or {}
    return {
        "name": name,
        "state": _state(model),
        "profile": options.get("profile", ""),
        "image": options.get("image", ""),
        "gpus": options.get("gpus", ""),
        "started": model.get("started") or "",
        "last_activity": model.get("last_activity") or "",
        "url": transport.public_url(model.get("url") or ""),
    }


def _stopped(name: str) -> dict[str, Any]:
    return {"name": name, "state": "stopped"}


def server_rows(servers: list[dict[str, Any]], wide: bool) -> tuple[list[Column], list[list[str]]]:
    columns = [
        Column("SERVER", whole=True),
        Column("STATE"),
        Column("PROFILE"),
        Column("GPUS", right=True),
        Column("STARTED"),
    ]
    if wide:
        columns += [Column("LAST ACTIVITY"), Column("IMAGE"), Column("URL")]
    rows = []
    for s in servers:
        row = [
            s["name"] or "(default)",
            s["state"],
            str(s["profile"]),
            str(s["gpus"]),
            str(s["started"])[:19].replace("T", " "),
        ]
        if wide:
            row += [str(s["last_activity"])[:19].replace("T", " "), str(s["image"]), s["url"]]
        rows.append(row)
    return columns, rows


def server_table(servers: list[dict[str, Any]], *, wide: bool, width: int) -> str:
    columns, rows = server_rows(servers, wide)
    return render_table(columns, rows, width)


def _details(view: dict[str, Any]) -> str:
    shown = {k: v for k, v in view.items() if v not in ("", None)}
    shown["name"] = view["name"] or "(default)"
    width = max(len(k) for k in shown)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in shown.items())
