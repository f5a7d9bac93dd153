"""Where the culler keeps what must outlive its restarts: one row per server (keeps used, the
keep's end, a warning in force and its deadline, the server run they belong to), in a table of
its own (``gpulab_culler_state``) in the usage database; and the admins' stops and cancels with
their reasons (``gpulab_admin_actions``, :mod:`gpulab.hub.culler.admin_actions`).

Every call runs in a thread: the service's event loop never waits on the database. When the
database is unavailable the culler goes on in memory; that is logged once, not per call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from gpulab.hub.culler.admin_actions import ActionsBase, AdminAction, AdminActionRow
from gpulab.hub.culler.state import SavedState
from gpulab.hub.usage.models import UTCDateTime
from sqlalchemy import Engine, Float, Integer, String, delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

__all__ = ["CullerStateRow", "StateStore"]

log = logging.getLogger("gpulab.culler")

T = TypeVar("T")


class _Base(DeclarativeBase):
    pass


class CullerStateRow(_Base):
    __tablename__ = "gpulab_culler_state"

    user: Mapped[str] = mapped_column(String(255), primary_key=True)
    server_name: Mapped[str] = mapped_column(String(255), primary_key=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    keeps_used: Mapped[int] = mapped_column(Integer, default=0)
    keep_seconds_used: Mapped[float] = mapped_column(Float, default=0.0)
    kept_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    warned_cull_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    warned_cause: Mapped[str | None] = mapped_column(String(32), nullable=True)


_FIELDS = (
    "started_at",
    "keeps_used",
    "keep_seconds_used",
    "kept_until",
    "warned_at",
    "warned_cull_at",
    "warned_cause",
)


class StateStore:
    """Load and save :class:`SavedState` rows. ``engine=None`` (or a database that fails) makes
    it a no-op store: the culler then remembers only in memory."""

    def __init__(self, engine: Engine | None, unavailable: str | None = None) -> None:
        self._engine = engine if unavailable is None else None
        self._problem_logged = False
        if unavailable is not None:
            self._unavailable(unavailable)

    @property
    def persistent(self) -> bool:
        return self._engine is not None

    def _unavailable(self, why: object) -> None:
        if not self._problem_logged:
            self._problem_logged = True
            log.error(
                "culler state is kept in memory only (%s): a restart forgets keeps and warnings",
                why,
            )

    async def _run(self, work: Callable[[Session], T], default: T) -> T:
        engine = self._engine
        if engine is None:
            return default

        def call() -> T:
            with Session(engine) as session, session.begin():
                return work(session)

        try:
            return await asyncio.to_thread(call)
        except SQLAlchemyError as exc:
            self._unavailable(exc)
            return default

    async def open(self) -> None:
        """Create the table (idempotent), as the usage tables are on start."""
        engine = self._engine
        if engine is None:
            return
        try:
            await asyncio.to_thread(_Base.metadata.create_all, engine)
            await asyncio.to_thread(ActionsBase.metadata.create_all, engine)
        except SQLAlchemyError as exc:
            self._engine = None
            self._unavailable(exc)

    async def load(self) -> list[SavedState]:
        def work(session: Session) -> list[SavedState]:
            rows = session.scalars(select(CullerStateRow)).all()
            return [_saved(row) for row in rows]

        return await self._run(work, [])

    async def save(self, state: SavedState) -> None:
        def work(session: Session) -> None:
            row = session.get(CullerStateRow, (state.user, state.server_name))
            if row is None:
                row = CullerStateRow(user=state.user, server_name=state.server_name)
                session.add(row)
            for name in _FIELDS:
                setattr(row, name, getattr(state, name))

        await self._run(work, None)

    async def forget(self, user: str, server_name: str) -> None:
        def work(session: Session) -> None:
            session.execute(
                delete(CullerStateRow).where(
                    CullerStateRow.user == user, CullerStateRow.server_name == server_name
                )
            )

        await self._run(work, None)

    async def record_action(self, action: AdminAction) -> bool:
        """Store an admin's stop or cancel; False when the database refused it."""

        def work(session: Session) -> bool:
            session.add(
                AdminActionRow(
                    user=action.user,
                    kind=action.kind,
                    target=action.target,
                    reason=action.reason,
                    by=action.by,
                    at=action.at,
                )
            )
            return True

        return await self._run(work, False)

    async def actions_for(self, user: str, since: datetime, limit: int = 20) -> list[AdminAction]:
        """``user``'s stops and cancels since ``since``, newest first."""

        def work(session: Session) -> list[AdminAction]:
            rows = session.scalars(
                select(AdminActionRow)
                .where(AdminActionRow.user == user, AdminActionRow.at >= since)
                .order_by(AdminActionRow.at.desc(), AdminActionRow.id.desc())
                .limit(limit)
            ).all()
            return [AdminAction.of(r) for r in rows]

        return await self._run(work, [])


def _saved(row: CullerStateRow) -> SavedState:
    values: dict[str, Any] = {name: getattr(row, name) for name in _FIELDS}
    return SavedState(row.user, row.server_name, **values)
