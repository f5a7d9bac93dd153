"""``gpulab notify``: be told when your jobs end (e-mail and/or a signed webhook).

Reads and writes your settings in the jobs gateway (``/api/v1/notify``; inside a server
through the server's own route): ``show``, ``set``, ``rotate-secret``, ``test``.
"""

from __future__ import annotations

import argparse
from typing import Any

from .globals import GlobalOptions
from .help_text import examples
from .output import Column, emit, render_table, terminal_width
from .runner import run_with_transport
from .transport import Transport

__all__ = ["add_arguments", "notify_text", "run", "settings_changes"]

EVENTS = ("succeeded", "failed", "preempted", "gpu_idle", "cancelled")
EXAMPLES = [
    ("see what you are told, and the last deliveries", "gpulab notify"),
    (
        "e-mail on failures and preemptions only",
        "gpulab notify set --email me@example.org --events failed,preempted",
    ),
    (
        "a webhook (the answer shows its signing secret once)",
        "gpulab notify set --webhook https://hooks.example.org/gpulab",
    ),
    ("stop e-mails", "gpulab notify set --no-email"),
    ("a new signing secret", "gpulab notify rotate-secret"),
    ("try it", "gpulab notify test"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Be told when your jobs succeed, fail or are preempted: by e-mail, by a webhook "
        "(JSON, signed with X-Gpulab-Signature), or both."
    )
    parser.epilog = examples(EXAMPLES)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    sub = parser.add_subparsers(dest="notify_command", metavar="ACTION")
    sub.add_parser("show", help="your settings and recent deliveries (the default)")
    p = sub.add_parser("set", help="change your settings (what you leave out is kept)")
    mail = p.add_mutually_exclusive_group()
    mail.add_argument("--email", help="the address to e-mail")
    mail.add_argument("--no-email", action="store_true", help="no more e-mails")
    hook = p.add_mutually_exclusive_group()
    hook.add_argument("--webhook", help="an https:// URL to POST each notification to")
    hook.add_argument("--no-webhook", action="store_true", help="no more webhook calls")
    p.add_argument("--events", help=f"comma-separated, of: {', '.join(EVENTS)}")
    sub.add_parser("rotate-secret", help="a new webhook signing secret (shown once)")
    sub.add_parser("test", help="send a test notification now")


def run(args: argparse.Namespace) -> int:
    return run_with_transport(args, _dispatch)


def settings_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The PUT body for ``gpulab notify set``: only what was given."""
    changes: dict[str, Any] = {}
    if args.email is not None or args.no_email:
        changes["email"] = None if args.no_email else args.email
    if args.webhook is not None or args.no_webhook:
        changes["webhook_url"] = None if args.no_webhook else args.webhook
    if args.events is not None:
        changes["events"] = [e.strip() for e in args.events.split(",") if e.strip()]
    return changes


def notify_text(doc: dict[str, Any]) -> str:
    lines = [
        f"email    {doc.get('email') or '-'}"
        + ("" if doc.get("email_available", True) else "  (this hub sends no e-mail)"),
        f"webhook  {doc.get('webhook_url') or '-'}",
        f"events   {', '.join(doc.get('events') or []) or '-'}",
    ]
    if doc.get("webhook_secret"):
        lines += [
            "",
            f"webhook secret: {doc['webhook_secret']}",
            "  shown this once: keep it to verify X-Gpulab-Signature "
            "(`gpulab notify rotate-secret` makes a new one)",
        ]
    deliveries = doc.get("deliveries") or []
    if deliveries:
        rows = [
            [
                str(d.get("job_id")),
                str(d.get("event")),
                str(d.get("status")),
                _channels(d.get("channels") or []),
                str(d.get("at") or ""),
            ]
            for d in deliveries
        ]
        columns = [
            Column("JOB"),
            Column("EVENT"),
            Column("STATUS"),
            Column("CHANNELS"),
            Column("AT"),
        ]
        lines += ["", render_table(columns, rows, terminal_width())]
    return "\n".join(lines)


def _channels(channels: list[dict[str, Any]]) -> str:
    return ", ".join(
        f"{c.get('channel')} {c.get('status')}"
        + (f" after {c['attempts']} tries" if (c.get("attempts") or 0) > 1 else "")
        + (f" ({c['error']})" if c.get("error") else "")
        for c in channels
    )


def _dispatch(args: argparse.Namespace, options: GlobalOptions, transport: Transport) -> int:
    gateway = transport.gateway
    command = args.notify_command or "show"
    if command == "show":
        doc = gateway.notify_settings()
    elif command == "set":
        doc = gateway.set_notify(settings_changes(args))
    elif command == "rotate-secret":
        doc = gateway.rotate_notify_secret()
    else:
        result = gateway.test_notify()
        deliveries = result.get("deliveries") or []
        emit(options, result, _channels(deliveries) or "no channel to test")
        return 0 if all(d.get("status") == "delivered" for d in deliveries) else 1
    emit(options, doc, notify_text(doc))
    return 0
