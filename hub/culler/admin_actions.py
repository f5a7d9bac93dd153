"""What an admin did to a user's workload, and why: one row per stop of a server or cancel of
a job from the dashboard (``gpulab_admin_actions``, in the usage database beside the culler's
state), with who, when and the reason the admin gave.

The culler writes rows (:class:`~gpulab.hub.culler.service.store.StateStore`); the hub reads a
user's own rows for their home page (:mod:`gpulab.hub.culler.user_notices`). The reason is
checked here, once, for both the stop and the cancel: :func:`check_reason`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from gpulab.hub.field_errors import FieldError
from gpulab.hub.usage.models import UTCDateTime
from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "REASON_MAX",
    "AdminAction",
    "AdminActionRow",
    "ActionsBase",
    "check_reason",
]

REASON_MIN = 3  # "oom" is a reason; "" or "x" is not
REASON_MAX = 500  # a sentence or two: it is shown on the user's home page

Kind = Literal["server-stop", "job-cancel"]


def check_reason(value: Any, field: str = "reason") -> tuple[str | None, list[FieldError]]:
    """The reason an admin typed, trimmed, or the problems with it (required, one line of
    printable text, ``REASON_MIN``-``REASON_MAX`` characters)."""
    allowed = f"a reason the user will read, {REASON_MIN}-{REASON_MAX} characters"
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, [FieldError(field, "is required", allowed)]
    if not isinstance(value, str):
        return None, [FieldError(field, f"must be text, not {type(value).__name__}", allowed)]
    text = " ".join(value.split())  # newlines and runs of blanks become one space
    if len(text) < REASON_MIN or len(text) > REASON_MAX:
        return None, [FieldError(field, f"has {len(text)} characters", allowed)]
    if not text.isprintable():
        return None, [FieldError(field, "contains control characters", allowed)]
    return text, []


class ActionsBase(DeclarativeBase):
    pass


class AdminActionRow(ActionsBase):
    __tablename__ = "gpulab_admin_actions"
    __table_args__ = (Index("ix_gpulab_admin_actions_user_at", "user", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user: Mapped[str] = mapped_column(String(255))  # whose workload (the hub's username)
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(255))  # the server's name ("" default) or job id
    reason: Mapped[str] = mapped_column(String(REASON_MAX))
    by: Mapped[str] = mapped_column(String(255))  # the admin
    at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class AdminAction:
    user: str
    kind: Kind
    target: str
    reason: str
    by: str
    at: datetime

    @classmethod
    def of(cls, row: AdminActionRow) -> AdminAction:
        return cls(row.user, row.kind, row.target, row.reason, row.by, row.at)  # type: ignore[arg-type]

    def what(self) -> str:
        """In words, for the user: "your server big" / "your default server" / "your job j-1"."""
        if self.kind == "job-cancel":
            return f"cancelled your job {self.target}"
        return (
            f"stopped your server {self.target}" if self.target else "stopped your default server"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "kind": self.kind,
            "target": self.target,
            "reason": self.reason,
            "by": self.by,
            "at": self.at.isoformat(),
            "what": self.what(),
            "message": f"{self.by} {self.what()}: {self.reason}",
        }
