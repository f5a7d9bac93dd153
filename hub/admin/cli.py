"""``gpulab admin``: the admin's command group.

Sub-subcommands are registered in :data:`COMMANDS` (name -> (module, help)); each module
exposes ``add_arguments(parser)`` and ``run(args) -> int``, like the top-level subcommands.
Modules are imported only to build the parser, so keep their top level light (no jupyterhub,
no kubernetes clients at import time).
"""

from __future__ import annotations

import argparse
import importlib

COMMANDS: dict[str, tuple[str, str]] = {
    "check-policy": ("gpulab.hub.admin.check_policy", "validate a policy file offline"),
    "usage": ("gpulab.hub.admin.usage", "GPU/CPU usage per user, group and kind"),
    "home": ("gpulab.hub.admin.home", "snapshot, reset, restore or list a user's home"),
    "kueue": ("gpulab.hub.admin.kueue", "print the Kueue objects gpulab makes from a policy"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="admin_command", metavar="ADMIN_COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        description = (module.__doc__ or help_text).strip()
        sp = sub.add_parser(
            name,
            help=help_text,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(sp)
        sp.set_defaults(_admin_module=module)
    parser.set_defaults(_admin_parser=parser)


def run(args: argparse.Namespace) -> int:
    module = getattr(args, "_admin_module", None)
    if module is None:
        args._admin_parser.print_help()
        return 2
    return int(module.run(args) or 0)
