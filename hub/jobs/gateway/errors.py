"""The gateway's error answers: ``{error, problems: [{field, message, allowed}]}``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..spec import FieldError
from .kube import KubeError

__all__ = ["ApiError", "from_kube"]


class ApiError(Exception):
    """An answer other than success, for people: status, message, field problems."""

    def __init__(
        self,
        status: int,
        error: str,
        problems: Iterable[FieldError] = (),
        retry_after: int | None = None,
    ) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.problems = list(problems)
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.error}
        if self.problems:
            out["problems"] = [p.as_dict() for p in self.problems]
        return out


def from_kube(exc: KubeError, what: str) -> ApiError:
    """Map a Kubernetes API failure: quota (403 Forbidden with "exceeded quota") -> 403 with
    its message; conflicts -> 409; invalid objects -> 422; unavailable -> 503 + Retry-After;
    anything else -> 503 too (it is the cluster's trouble, not the caller's)."""
    if exc.status == 403 and "quota" in exc.message.lower():
        return ApiError(403, f"{what}: the cluster's resource quota refuses it: {exc.message}")
    if exc.status == 403:
        return ApiError(
            503,
            f"{what}: the gateway is not allowed to do this in the cluster (check its RBAC)",
            retry_after=30,
        )
    if exc.status == 409:
        return ApiError(409, f"{what}: conflict: {exc.message}")
    if exc.status == 422:
        return ApiError(422, f"{what}: the cluster refused the object: {exc.message}")
    return ApiError(
        503,
        f"{what}: the Kubernetes API is unavailable ({exc.status or 'no answer'}); retry later",
        retry_after=exc.retry_after or 5,
    )
