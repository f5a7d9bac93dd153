"""Confine the paths of a submitted spec to the server's root dir (pure, file-system reads only).

The browser names files as the Contents API does: relative to the server's root dir. The
gateway wants them relative to the home. A path that leaves the root dir (``..``, absolute
paths, symlinks pointing out) is refused here, before anything is sent to the gateway.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpulab.hub.jobs.spec import FieldError

__all__ = ["PathProblem", "confine_spec_paths"]

# spec field -> (must be a file?, what is allowed)
_FIELDS = {
    "notebook": (True, "a .ipynb file inside your server's folder, e.g. work/train.ipynb"),
    "working_dir": (False, "a folder inside your server's folder, e.g. work/project"),
}


@dataclass(frozen=True)
class PathProblem(Exception):
    field: str
    message: str
    allowed: str

    def as_dict(self) -> dict[str, str]:
        """The gateway's problem shape (``FieldError``): clients read one shape whoever
        refused the spec."""
        return FieldError(self.field, self.message, self.allowed).as_dict()


def _confine(field: str, value: Any, root: Path, home: Path) -> str:
    is_file, allowed = _FIELDS[field]
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise PathProblem(field, f"{value!r} is not a path", allowed)
    # Absolute paths are accepted only when they point inside the root dir.
    candidate = Path(value) if os.path.isabs(value) else root / value
    try:
        target = candidate.resolve(strict=False)
    except (OSError, RuntimeError):
        raise PathProblem(field, f"{value!r} cannot be resolved", allowed) from None
    if not target.is_relative_to(root):
        raise PathProblem(field, f"{value!r} is outside your server's folder", allowed)
    if is_file and not target.is_file():
        raise PathProblem(field, f"{value!r}: no such file", allowed)
    if not is_file and not target.is_dir():
        raise PathProblem(field, f"{value!r}: no such folder", allowed)
    if not target.is_relative_to(home):
        raise PathProblem(field, f"{value!r} is outside your home ({home})", allowed)
    return target.relative_to(home).as_posix() or "."


def confine_spec_paths(
    spec: dict[str, Any], root_dir: str | os.PathLike[str], home: str | os.PathLike[str]
) -> dict[str, Any]:
    """A copy of ``spec`` whose ``notebook`` / ``working_dir`` are home-relative and proven to
    lie inside ``root_dir`` (and the home). Raises :class:`PathProblem`."""
    root = Path(root_dir).resolve()
    home_path = Path(home).resolve()
    out = dict(spec)
    for field in _FIELDS:
        if out.get(field) is not None:
            out[field] = _confine(field, out[field], root, home_path)
    return out
