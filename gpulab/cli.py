"""The ``gpulab`` command line: one entry point, one module per command.

Commands register in :data:`SUBCOMMANDS`. The researchers' commands (:data:`CLIENT_COMMANDS`,
in ``gpulab.extensions.cli``) take the global flags ``--hub-url``, ``--token`` and
``-o/--output`` anywhere on the line (:mod:`gpulab.extensions.cli.globals`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import dataclass
from typing import NoReturn

CLI = "gpulab.extensions.cli"


@dataclass(frozen=True)
class Subcommand:
    module: str
    help: str
    add: str = "add_arguments"  # the module's function that declares the arguments
    run: str = "run"  # the module's function that runs it: (args) -> exit code


SUBCOMMANDS: dict[str, Subcommand] = {
    "login": Subcommand(
        f"{CLI}.auth_cmd",
        "log in to a hub (its URL and an API token)",
        "add_login_arguments",
        "run_login",
    ),
    "logout": Subcommand(
        f"{CLI}.auth_cmd",
        "forget the stored hub URL and token",
        "add_logout_arguments",
        "run_logout",
    ),
    "server": Subcommand(f"{CLI}.server_cmd", "list, start, stop your JupyterLab servers"),
    "jobs": Subcommand(f"{CLI}.jobs_cmd", "submit, watch and collect batch jobs"),
    "notify": Subcommand(f"{CLI}.notify_cmd", "be told when your jobs end (e-mail, webhook)"),
    "images": Subcommand(
        f"{CLI}.info_cmd",
        "images you may use for servers and jobs",
        "add_images_arguments",
        "run_images",
    ),
    "quota": Subcommand(
        f"{CLI}.info_cmd", "your GPU quota and job limits", "add_quota_arguments", "run_quota"
    ),
    "completion": Subcommand(
        f"{CLI}.completion", "print a shell completion script (bash, zsh, fish)"
    ),
    "up": Subcommand("gpulab.up", "run the whole platform locally on the embedded kubesim backend"),
    "kubesim": Subcommand("gpulab.kubesim.cli", "run the embedded Kubernetes API emulator"),
    "admin": Subcommand("gpulab.hub.admin.cli", "admin commands: check-policy, ..."),
}
# The commands that talk to a hub as a researcher, and so take the global flags.
CLIENT_COMMANDS = frozenset(
    {"login", "logout", "server", "jobs", "notify", "images", "quota", "completion"}
)

EPILOG = """\
global flags (anywhere on the line):
  --hub-url URL       the hub; any hub page's address will do (default: from `gpulab login`)
  --token TOKEN       an API token from the hub's token page (default: from `gpulab login`)
  -o, --output FMT    table (default), wide, json or yaml; errors are JSON too under -o json

examples:
  gpulab login --hub-url https://hub.example.org/hub/home
  gpulab server start --profile gpu --gpus 1 --wait
  gpulab jobs submit --notebook work/train.ipynb --gpus 1 -p epochs=3 --follow
  gpulab jobs list -o wide
  gpulab quota

Run `gpulab COMMAND --help` for a command's flags and examples."""


class JsonErrorParser(argparse.ArgumentParser):
    """A parser whose usage errors are one JSON document on stderr (``-o json``)."""

    def error(self, message: str) -> NoReturn:
        print(
            json.dumps({"error": f"{self.prog}: {message}", "usage": self.format_usage().strip()}),
            file=sys.stderr,
        )
        sys.exit(2)


def build_parser(json_errors: bool = False) -> argparse.ArgumentParser:
    parser_class = JsonErrorParser if json_errors else argparse.ArgumentParser
    parser = parser_class(
        prog="gpulab",
        description="gpulab: GPU workspaces and batch jobs on JupyterHub and Kubernetes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=command.help, description=command.help)
        module = importlib.import_module(command.module)
        getattr(module, command.add)(sp)
        sp.set_defaults(_run=getattr(module, command.run))
    return parser


def main(argv: list[str] | None = None) -> int:
    from gpulab.extensions.cli.globals import UsageError, split_global_flags

    line = list(sys.argv[1:] if argv is None else argv)
    options = None
    try:
        options, rest = split_global_flags(line)
    except UsageError as exc:
        error: UsageError | None = exc
    else:
        error = None
    # Only the researchers' commands take global flags; the others get their line untouched.
    command = next((w for w in (rest if error is None else line) if not w.startswith("-")), None)
    if command in CLIENT_COMMANDS:
        if error is not None:
            print(f"gpulab: error: {error}", file=sys.stderr)
            return 2
        line = rest
    else:
        options = None
    parser = build_parser(json_errors=options is not None and options.output == "json")
    try:
        args = parser.parse_args(line)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    args.globals = options
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
