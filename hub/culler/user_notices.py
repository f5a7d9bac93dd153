"""What the hub's home page tells a user about their own servers and jobs that an admin stopped
or cancelled, and why (the rows the culler stores: :mod:`gpulab.hub.culler.admin_actions`).

JupyterHub calls a ``template_vars`` value that is callable with the page's user, so
``c.JupyterHub.template_vars["gpulab_notices"] = UserNotices(url)`` gives ``home.html`` that
user's rows and no one else's (``hub/templates/home.html`` shows them). The read is one indexed
query per home page view, in the hub's process; a database that is missing or does not answer
costs the message, never the page.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..usage.location import sqlite_path
from ..usage.models import default_db_url, make_engine
from .admin_actions import AdminAction, AdminActionRow

__all__ = ["NOTICE_DAYS", "UserNotices", "culler_db_url"]

log = logging.getLogger("gpulab.notices")

NOTICE_DAYS = 7  # how long a stop or cancel stays on its owner's home page
NOTICE_LIMIT = 5
DB_OPTION = "--CullerApp.db_url="


def culler_db_url(services: Iterable[Mapping[str, Any]], culler_name: str = "culler") -> str:
    """The usage database the culler service writes: its ``db_url`` option in the service's
    command, else ``$GPULAB_USAGE_DB`` of its environment or the hub's, else its default (a
    file in the hub's directory, which is the culler's too)."""
    for entry in services:
        if entry.get("name") != culler_name:
            continue
        for arg in entry.get("command") or ():
            if str(arg).startswith(DB_OPTION):
                return str(arg)[len(DB_OPTION) :]
        env = entry.get("environment") or {}
        if env.get("GPULAB_USAGE_DB"):
            return str(env["GPULAB_USAGE_DB"])
    return default_db_url()


class UserNotices:
    """``template_vars`` callable: ``user`` -> their stops and cancels of the last
    ``NOTICE_DAYS`` days, newest first, each ``{"message", "reason", "by", "at", ...}``."""

    def __init__(self, db_url: str) -> None:
        self.db_url = db_url
        self._engine: Engine | None = None

    def _open(self) -> Engine | None:
        if self._engine is None:
            path = sqlite_path(self.db_url)
            if path is not None and not path.is_file():
                return None  # the culler has not made it yet; never create it from here
            self._engine = make_engine(self.db_url, create=False)
        return self._engine

    def for_user(self, name: str, now: datetime | None = None) -> list[dict[str, Any]]:
        since = (now or datetime.now(UTC)) - timedelta(days=NOTICE_DAYS)
        try:
            engine = self._open()
            if engine is None:
                return []
            with Session(engine) as session:
                rows = session.scalars(
                    select(AdminActionRow)
                    .where(AdminActionRow.user == name, AdminActionRow.at >= since)
                    .order_by(AdminActionRow.at.desc(), AdminActionRow.id.desc())
                    .limit(NOTICE_LIMIT)
                ).all()
                return [AdminAction.of(r).to_json() for r in rows]
        except SQLAlchemyError as exc:  # no table yet, a locked or broken database
            log.warning("cannot read admins' notices for %s: %s", name, type(exc).__name__)
            return []

    def __call__(self, user: Any) -> list[dict[str, Any]]:
        name = getattr(user, "name", None)
        return self.for_user(str(name)) if name else []
