"""Which usage database an admin command reads: the one the platform's culler writes.

The culler takes ``--db`` / ``$GPULAB_USAGE_DB``, else a SQLite file in its working directory
(the hub's: ``/srv/jupyterhub`` under the chart); ``gpulab up`` gives it
``<state dir>/usage.sqlite``. An admin command looks in the same places, in that order, and
never creates a database: opening a missing SQLite file would read an empty new one and
report no usage at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .models import DB_ENV

__all__ = ["HUB_DIR", "DatabaseNotFound", "find_usage_db", "sqlite_path"]

HUB_DIR = Path("/srv/jupyterhub")  # the chart's hub working directory
CULLER_DEFAULT_FILE = "gpulab-usage.sqlite"  # the culler's default, in the hub's directory
PLATFORM_FILE = "usage.sqlite"  # `gpulab up`: <state dir>/usage.sqlite


class DatabaseNotFound(Exception):
    """No usage database where the platform keeps one (the message says where it looked)."""


@dataclass(frozen=True)
class UsageDb:
    url: str
    source: str  # where the URL came from, for the admin: "--db", "$GPULAB_USAGE_DB", a path


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL (None for other databases and in-memory SQLite)."""
    if not url.startswith("sqlite"):
        return None
    _, _, rest = url.partition(":///")
    rest = rest.split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


def _checked(url: str, source: str) -> UsageDb:
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise DatabaseNotFound(f"usage database {path} (from {source}) does not exist")
    return UsageDb(url, source)


def find_usage_db(
    explicit: str | None,
    *,
    env: Mapping[str, str],
    state_dir: Path,
    cwd: Path,
    hub_dir: Path = HUB_DIR,
) -> UsageDb:
    """``explicit`` (``--db``), else ``$GPULAB_USAGE_DB``, else the first existing file of:
    the local platform's ``<state_dir>/usage.sqlite``, the culler's default in ``cwd`` and in
    the chart's hub directory. Raises :class:`DatabaseNotFound` naming what it tried."""
    if explicit:
        return _checked(explicit, "--db")
    if env.get(DB_ENV):
        return _checked(env[DB_ENV], f"${DB_ENV}")
    candidates = [
        state_dir / PLATFORM_FILE,
        cwd / CULLER_DEFAULT_FILE,
        hub_dir / CULLER_DEFAULT_FILE,
    ]
    for path in candidates:
        if path.is_file():
            return UsageDb(f"sqlite:///{path.resolve()}", str(path))
    tried = ", ".join(str(p) for p in candidates)
    raise DatabaseNotFound(
        f"no usage database found (no --db, no ${DB_ENV}; none of {tried} exists): "
        f"give --db URL, set ${DB_ENV} as the culler has it, or --state-dir of `gpulab up`"
    )
