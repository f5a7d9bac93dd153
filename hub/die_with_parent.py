"""Run a command that the kernel ends when the process that started it dies.

JupyterHub starts its proxy and its managed services (gateway, culler) in sessions of their
own and stops them only when it shuts down cleanly. A hub killed with SIGKILL (or an OOM kill)
leaves them running: they keep their ports, and the next hub starts second copies beside them.
This tiny exec-wrapper closes that gap::

    python -m gpulab.hub.die_with_parent <parent pid> <command...>

sets ``PR_SET_PDEATHSIG`` (Linux; kept across ``execve``) and then *becomes* the command, so
the hub still sees, signals and waits for the command's own pid. :func:`dying_with_this_process`
builds such a command line from inside the hub's config (which runs in the hub's process).
Elsewhere the wrapper just runs the command.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

__all__ = ["dying_with_this_process", "set_parent_death_signal"]

MODULE = "gpulab.hub.die_with_parent"


def dying_with_this_process(argv: Sequence[str]) -> list[str]:
    """``argv`` wrapped so that it ends when the calling process dies."""
    return [sys.executable, "-m", MODULE, str(os.getpid()), *argv]


def set_parent_death_signal(sig: signal.Signals = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent dies (Linux only)."""
    if sys.platform.startswith("linux"):
        import ctypes  # noqa: PLC0415 - only on Linux

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, int(sig))


def main(args: Sequence[str]) -> int:
    if len(args) < 2 or not args[0].isdigit():
        print(f"usage: python -m {MODULE} <parent pid> <command...>", file=sys.stderr)
        return 2
    parent, argv = int(args[0]), list(args[1:])
    set_parent_death_signal()
    # The parent may have died before the signal was armed: then nobody will send it.
    if sys.platform.startswith("linux") and os.getppid() != parent:
        print(f"{MODULE}: parent {parent} is gone; not starting {argv[0]}", file=sys.stderr)
        return 1
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"{MODULE}: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
        return 127
    return 0  # not reached: execvp replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
