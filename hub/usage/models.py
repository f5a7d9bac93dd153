"""The usage tables (their own table set, ``gpulab_usage_*``) and the engine factory.

One row per pod uid: a pod's life is one interval, so a re-listed or re-watched pod updates its
row instead of adding one; nothing is counted twice across restarts. sqlite by default,
PostgreSQL supported (``postgresql+psycopg2://...``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy import DateTime, Engine, Float, Integer, String, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

__all__ = ["Base", "UsageInterval", "default_db_url", "make_engine", "open_or_stand_in"]


DB_ENV = "GPULAB_USAGE_DB"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (sqlite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    pass


class UsageInterval(Base):
    """The life of one gpulab pod (a notebook server or a job's pod)."""

    __tablename__ = "gpulab_usage_intervals"

    pod_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(253))
    pod_name: Mapped[str] = mapped_column(String(253))
    user: Mapped[str] = mapped_column(String(255), index=True)
    group: Mapped[str] = mapped_column("group_name", String(255), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # server | job
    job_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    gpu_type: Mapped[str] = mapped_column(String(64), default="")
    cpu: Mapped[float] = mapped_column(Float, default=0.0)  # cores requested
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    # Open intervals: the last time the recorder saw the pod alive. A pod that vanished while
    # the recorder was down is closed at this time (an undercount of at most one heartbeat).
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Servers: the hub's server name ("" = the default server), from KubeSpawner's
    # ``hub.jupyter.org/servername`` annotation; the dashboard's stop button needs it.
    server_name: Mapped[str] = mapped_column(String(255), default="", server_default="")


def default_db_url() -> str:
    """``$GPULAB_USAGE_DB``, else a sqlite file in the working directory (the hub's, for a
    managed service: next to ``jupyterhub.sqlite``)."""
    return os.environ.get(DB_ENV) or "sqlite:///gpulab-usage.sqlite"


def make_engine(url: str | None = None, *, create: bool = True) -> Engine:
    """An engine for ``url`` with the usage tables created (``create_all`` is idempotent)."""
    url = url or default_db_url()
    kwargs: dict = {"future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _wal(dbapi_conn, _record) -> None:  # several processes read while one writes
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

    if create:
        Base.metadata.create_all(engine)
        _add_missing_columns(engine)
    return engine


def open_or_stand_in(url: str | None = None) -> tuple[Engine, str | None]:
    """``(engine, None)`` for the usage database at ``url``; when it cannot be opened (a
    corrupted sqlite file, an unreachable server): ``(an empty in-memory stand-in, reason)``.
    Accounting is then unavailable, but whatever only reads usage (the culler's dashboard and
    API) keeps answering, with nothing recorded."""
    url = url or default_db_url()
    try:
        return make_engine(url), None
    except (SQLAlchemyError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc
        shown = make_url(url).render_as_string(hide_password=True)
        reason = f"{shown}: {type(cause).__name__}: {cause}"
    stand_in = create_engine(
        "sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool
    )
    Base.metadata.create_all(stand_in)
    return stand_in, reason


# Columns added after the table's first release: (name, DDL type and default).
_ADDED_COLUMNS = {"server_name": "VARCHAR(255) NOT NULL DEFAULT ''"}


def _add_missing_columns(engine: Engine) -> None:
    """Bring a table made by an older gpulab up to date (``create_all`` never alters)."""
    present = {c["name"] for c in inspect(engine).get_columns(UsageInterval.__tablename__)}
    missing = [name for name in _ADDED_COLUMNS if name not in present]
    if not missing:
        return
    with engine.begin() as conn:
        for name in missing:
            conn.execute(
                text(
                    f"ALTER TABLE {UsageInterval.__tablename__} "
                    f"ADD COLUMN {name} {_ADDED_COLUMNS[name]}"
                )
            )
