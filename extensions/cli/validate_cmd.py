"""``gpulab jobs validate SPEC``: every problem of a job spec before it is submitted.

Offline first, against the spec's schema (the gateway's own parser: the same messages and
field paths a submit would answer). When the spec is well-formed and a hub is reachable, the
gateway's dry run (``POST /jobs/validate``) checks it against the caller's policy too (GPU
types, limits, images); quota in use right now is no problem (the job would queue). Exit 0:
no problems; 1: problems (each with its field path); 2: the file could not be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gpulab.extensions.client import ConfigError, GatewayError

from .globals import GlobalOptions
from .output import emit
from .runner import EXIT_FAILED, EXIT_USAGE, global_options
from .transport import Transport, resolve_route

__all__ = ["EXAMPLES", "add_validate_arguments", "run_validate"]

EXAMPLES = [
    ("check a spec file before submitting it", "gpulab jobs validate job.yaml"),
    ("offline only (schema, not your policy)", "gpulab jobs validate job.yaml --offline"),
    ("in a script: problems as JSON", "gpulab jobs validate job.yaml -o json || exit 1"),
]


def add_validate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="job spec file, YAML or JSON (- for stdin); see docs/jobs.md")
    p.add_argument(
        "--offline",
        action="store_true",
        help="check against the schema only, without asking the hub about your policy",
    )


def run_validate(args: argparse.Namespace) -> int:
    # The gateway's own parser (pydantic): imported here, so `gpulab --help` stays light.
    from gpulab.hub.jobs.spec import SpecError, parse_job_spec  # noqa: PLC0415

    options = global_options(args)
    try:
        text = sys.stdin.read() if args.spec == "-" else Path(args.spec).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {args.spec}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        parse_job_spec(text.encode())
    except SpecError as exc:
        return _report(options, [p.as_dict() for p in exc.problems], "schema")
    if args.offline:
        return _report(options, [], "schema")
    try:
        transport = Transport(resolve_route(options))
    except ConfigError:
        return _report(options, [], "schema", note="no hub configured: policy not checked")
    try:
        answer = transport.gateway.validate(text)
    except (GatewayError, ConfigError, OSError) as exc:
        return _report(options, [], "schema", note=f"hub not reachable ({exc}): policy not checked")
    finally:
        transport.close()
    return _report(options, list(answer.get("problems") or []), "schema and policy")


def _report(
    options: GlobalOptions, problems: list[dict[str, Any]], checked: str, note: str = ""
) -> int:
    value = {"valid": not problems, "checked": checked, "problems": problems}
    if note:
        value["note"] = note
    lines = [f"{p.get('field') or '(spec)'}: {p.get('message')}" + (
        f" (allowed: {p['allowed']})" if p.get("allowed") else "") for p in problems]  # fmt: skip
    human = "\n".join(lines) if problems else f"valid ({checked})"
    if problems:
        emit(options, value)
        if not options.machine:
            print("\n".join(lines), file=sys.stderr)
            print(f"{len(problems)} problem(s) ({checked})", file=sys.stderr)
        return EXIT_FAILED
    emit(options, value, human)
    if note and not options.machine:
        print(note, file=sys.stderr)
    return 0
