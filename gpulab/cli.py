"""The ``gpulab`` command line: one entry point, one subcommand module per concern.

Subcommands register themselves through :data:`SUBCOMMANDS` so that importing the CLI never
imports the hub or the notebook side unless that subcommand is used.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, help). Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "up": ("gpulab.up", "run the whole platform locally on the embedded kubesim backend"),
    "jobs": ("gpulab.extensions.jobs_cli", "submit, watch and collect batch jobs"),
    "kubesim": ("gpulab.kubesim.cli", "run the embedded Kubernetes API emulator"),
    "admin": ("gpulab.hub.admin.cli", "admin commands: check-policy, ..."),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpulab",
        description="gpulab: GPU workspaces and batch jobs on JupyterHub and Kubernetes.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(sp)
        sp.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_module", None):
        parser.print_help()
        return 2
    return int(args._module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
