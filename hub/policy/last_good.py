"""The last good copy of a policy file, so that a broken edit never stops a restart.

:class:`~.watch.PolicyFile` saves every policy that validated with :func:`save_last_good`
and, when the file itself does not load at start, falls back to :func:`read_last_good`.

Where the copy lives: beside the policy, as ``.<name>.last-good`` (so it moves with the file
and every process reading that file shares it). When that folder is read-only (a mounted
ConfigMap is), under the state directory: ``$GPULAB_STATE_DIR``, else
``$XDG_CACHE_HOME/gpulab`` (``~/.cache/gpulab``), as ``policy-last-good/<hash>-<name>`` where
the hash is of the policy's absolute path (two policies named alike never share a copy).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from pathlib import Path

__all__ = ["STATE_DIR_ENV", "last_good_candidates", "read_last_good", "save_last_good"]

STATE_DIR_ENV = "GPULAB_STATE_DIR"

log = logging.getLogger("gpulab.policy")


def state_dir() -> Path:
    """Where gpulab keeps state of its own when the policy's folder is read-only."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "gpulab"


def last_good_candidates(policy: Path) -> list[Path]:
    """The places a last good copy of ``policy`` may be, in the order they are tried."""
    policy = policy.absolute()
    digest = hashlib.sha256(str(policy).encode()).hexdigest()[:16]
    return [
        policy.with_name(f".{policy.name}.last-good"),
        state_dir() / "policy-last-good" / f"{digest}-{policy.name}",
    ]


def _write_atomically(target: Path, data: bytes, mode: int) -> None:
    """Temp file in the same folder + rename: a reader never sees half a copy."""
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def save_last_good(policy: Path, data: bytes) -> Path | None:
    """Keep ``data`` (a policy that validated) as the last good copy of ``policy``; returns
    where it went, or None (logged) when no candidate place is writable. Owner-only mode
    unless the policy file's own mode is stricter: the copy is as private as the file."""
    try:
        mode = policy.stat().st_mode & 0o600 or 0o600
    except OSError:
        mode = 0o600
    problems = []
    for target in last_good_candidates(policy):
        try:
            if target.exists() and target.read_bytes() == data:
                return target
            _write_atomically(target, data, mode)
            return target
        except OSError as exc:
            problems.append(f"{target}: {exc.strerror or exc}")
    log.warning("policy %s: cannot keep a last good copy (%s)", policy, "; ".join(problems))
    return None


def read_last_good(policy: Path) -> tuple[Path, bytes] | None:
    """The first last good copy of ``policy`` that can be read, or None."""
    for candidate in last_good_candidates(policy):
        with contextlib.suppress(OSError):
            return candidate, candidate.read_bytes()
    return None
