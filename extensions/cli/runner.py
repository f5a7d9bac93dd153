"""How every command of this package runs: one place for the connection, the exit codes and
the errors (JSON under ``-o json``).

Exit codes: 0 success; 1 the hub or the gateway refused, or the job or server failed; 2 a
usage or configuration mistake; 130 interrupted.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from gpulab.extensions.client import ConfigError, GatewayError

from .globals import GlobalOptions
from .output import emit_error
from .transport import Transport, resolve_route

__all__ = ["EXIT_FAILED", "EXIT_USAGE", "global_options", "run_with_transport"]

EXIT_FAILED = 1
EXIT_USAGE = 2


def global_options(args: argparse.Namespace) -> GlobalOptions:
    return getattr(args, "globals", None) or GlobalOptions()


def run_with_transport(
    args: argparse.Namespace,
    body: Callable[[argparse.Namespace, GlobalOptions, Transport], int],
) -> int:
    options = global_options(args)
    try:
        transport = Transport(resolve_route(options))
    except ConfigError as exc:
        emit_error(options, str(exc))
        return EXIT_USAGE
    try:
        return body(args, options, transport)
    except GatewayError as exc:
        emit_error(options, exc.message, status=exc.status or None, problems=exc.problems)
        return EXIT_FAILED
    except ConfigError as exc:
        emit_error(options, str(exc))
        return EXIT_USAGE
    except OSError as exc:
        emit_error(options, str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    finally:
        transport.close()
