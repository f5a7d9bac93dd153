"""The error type every gpulab boundary answers a user's mistake with: which field, what is
wrong, what is allowed (the job spec, admission of servers and jobs, the gateway's API)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FieldError"]


@dataclass(frozen=True)
class FieldError:
    """One problem with a submitted spec: which field, what is wrong, what is allowed.

    ``code`` is ``invalid`` (schema), ``policy`` (the spec is well-formed but not allowed for
    this user) or ``quota`` (allowed, but not now: GPUs or job slots are in use)."""

    field: str
    message: str
    allowed: str = ""
    code: Literal["invalid", "policy", "quota"] = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {
            "field": self.field,
            "message": self.message,
            "allowed": self.allowed,
            "code": self.code,
        }
