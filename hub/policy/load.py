"""The policy's load step: a file -> bytes -> :func:`.parse.parse_policy` (which cross-checks)
-> :class:`.document.Policy`; every failure is a :class:`.errors.PolicyError` naming the file."""

from __future__ import annotations

from pathlib import Path

from .document import Policy
from .errors import PolicyError
from .parse import parse_policy

__all__ = ["load_policy", "read_policy_file"]


def read_policy_file(path: Path) -> bytes:
    """The file's bytes; a :class:`PolicyError` with the reason when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PolicyError([f"cannot read the file: {exc.strerror or exc}"], str(path)) from None


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; raises :class:`PolicyError` (also when the file cannot
    be read, with the reason)."""
    p = Path(path)
    return parse_policy(read_policy_file(p), str(p))
