"""The jobs list's query and page: the model that checks ``GET /jobs``'s parameters, the page it
answers, and the opaque ``continue`` token (no I/O).

The OpenAPI document's parameters and ``JobList`` schema are generated from these models
(:mod:`.openapi`), so the document says exactly what the gateway accepts.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from gpulab.wire.jobs import JOB_STATES, JobState

from ...field_errors import FieldError, schema_errors
from .errors import ApiError
from .job_index import Key

__all__ = [
    "MAX_LIMIT",
    "JobListPage",
    "JobListQuery",
    "decode_cursor",
    "encode_cursor",
    "page_schema",
    "parse_list_query",
    "query_parameters",
]

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
_TIME_EXAMPLE = "2026-01-31T12:00:00Z"

# What each parameter accepts, in the words of the 400's `allowed`.
ALLOWED: dict[str, str] = {
    "user": "a hub username (1-255 characters)",
    "group": "a group name (1-255 characters)",
    "state": ", ".join(JOB_STATES),
    "created_since": f"an RFC 3339 time with its zone, e.g. {_TIME_EXAMPLE}",
    "created_before": f"an RFC 3339 time with its zone, e.g. {_TIME_EXAMPLE}",
    "limit": f"an integer {1}-{MAX_LIMIT}",
    "continue": "the `continue` of a previous page",
}


class JobListQuery(BaseModel):
    """The filters and paging of ``GET /jobs``. Unknown parameters are ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    user: str | None = Field(
        None,
        min_length=1,
        max_length=255,
        description="only this user's jobs. Admins: anyone's; everyone else sees their own "
        "jobs only, so another name lists nothing",
    )
    group: str | None = Field(
        None, min_length=1, max_length=255, description="only jobs charged to this quota group"
    )
    state: JobState | None = Field(None, description="only jobs in this state")
    created_since: AwareDatetime | None = Field(
        None, description="only jobs created at or after this time"
    )
    created_before: AwareDatetime | None = Field(
        None, description="only jobs created before this time"
    )
    limit: int = Field(
        DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="at most this many jobs on the page"
    )
    continue_: str | None = Field(
        None,
        alias="continue",
        min_length=1,
        max_length=1024,
        description="the `continue` of the previous page: the page after it, with the same "
        "filters (jobs submitted since do not shift it)",
    )


class JobListPage(BaseModel):
    """One page of jobs, newest first."""

    model_config = ConfigDict(populate_by_name=True)

    items: list[dict[str, Any]] = Field(description="the jobs (the Job schema), newest first")
    continue_: str | None = Field(
        alias="continue",
        description="pass it as `continue` for the next page; null on the last page",
    )


def _bad(field: str, message: str) -> ApiError:
    return ApiError(400, f"bad {field}", [FieldError(field, message, ALLOWED[field])])


def parse_list_query(args: Mapping[str, str]) -> JobListQuery:
    """The query of ``GET /jobs`` from its parameters (empty ones are absent); 400 naming each
    bad parameter and what it accepts."""
    given = {k: v for k, v in args.items() if v != ""}
    try:
        return JobListQuery.model_validate(given)
    except ValidationError as exc:
        problems = []
        for err in schema_errors(exc):
            name = str(err.loc[0]) if err.loc else "query"
            shown = str(given.get(name, ""))[:40]
            problems.append(FieldError(name, f"{shown!r}: {err.message}", ALLOWED.get(name, "")))
        fields = ", ".join(dict.fromkeys(p.field for p in problems))
        raise ApiError(400, f"bad {fields}", problems) from None


def api_time(at: dt.datetime) -> str:
    """``at`` in the API server's creationTimestamp format (UTC, whole seconds), rounded up, so
    that comparing the strings compares the times (timestamps have no fraction)."""
    at = at.astimezone(dt.UTC)
    if at.microsecond:
        at = at.replace(microsecond=0) + dt.timedelta(seconds=1)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_cursor(key: Key) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode_cursor(token: str) -> Key:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created, name = json.loads(raw)
        if not isinstance(created, str) or not isinstance(name, str):
            raise ValueError
        return created, name
    except (ValueError, TypeError, UnicodeDecodeError):
        raise _bad("continue", "is not a continue token") from None


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent or has a value: drop the ``null`` of ``X | None``."""
    out = {k: v for k, v in schema.items() if k not in ("title", "description", "anyOf")}
    for branch in schema.get("anyOf") or []:
        if branch.get("type") != "null":
            out.update(branch)
    if out.get("default", 0) is None:
        del out["default"]
    return out


def query_parameters() -> list[dict[str, Any]]:
    """The OpenAPI parameters of ``GET /jobs``, from :class:`JobListQuery`."""
    schema = JobListQuery.model_json_schema(by_alias=True)
    return [
        {
            "name": name,
            "in": "query",
            "schema": _without_null(prop),
            "description": prop.get("description", ""),
        }
        for name, prop in schema["properties"].items()
    ]


def page_schema(job_ref: str) -> dict[str, Any]:
    """The OpenAPI schema of :class:`JobListPage`, its items referring to ``job_ref``."""
    schema = JobListPage.model_json_schema(by_alias=True)
    schema["properties"]["items"]["items"] = {"$ref": job_ref}
    schema["properties"]["continue"] = _without_null(schema["properties"]["continue"]) | {
        "type": ["string", "null"],
        "description": schema["properties"]["continue"]["description"],
    }
    return schema
