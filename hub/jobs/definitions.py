"""Saved job definitions: what a user sends, and the CronJob the gateway makes of it.

A definition is a job spec under a name its owner picks, with an optional cron schedule. It is
kept as a ``batch/v1`` CronJob the gateway owns (named by the definition's id, shaped like a
job id), whose ``jobTemplate`` is the Job :func:`gpulab.hub.jobs.manifest.render_job` makes for
the spec, with three changes so that each run is an ordinary job of its own:

- the runs' pods start behind the ``UPLOAD_CREDENTIAL_GATE`` scheduling gate: the gateway
  removes it once it has written the run's own S3 credential into the definition's upload
  Secret (a Job the CronJob controller makes has no gateway-made Secret);
- ``GPULAB_JOB_ID`` comes from the pod's ``batch.kubernetes.io/job-name`` label, i.e. the run's
  name ``<definition id>-<minute>``, so each run's outputs and log go under its own prefix;
- everything carries ``DEFINITION_LABEL`` (the definition's id), linking runs to it.

Only ``Forbid`` (the default) and ``Replace`` are offered: one run at a time, because the runs
share one upload Secret. Pure: no I/O.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, ValidationError

from gpulab.wire.cron import CronError, parse_schedule, zone

from ..field_errors import FieldError, schema_errors
from ..names import is_dns_label
from ..workload.labels import (
    APP,
    DEFINITION_LABEL,
    DEFINITION_NAME_LABEL,
    GROUP_LABEL,
    JOB_NAME_LABEL,
    MANAGED_BY_LABEL,
    OWNER_ANNOTATION,
    SPEC_ANNOTATION,
    UPLOAD_CREDENTIAL_GATE,
    USER_LABEL,
)
from .ids import NAME_MAX
from .spec import JobSpec, SpecError, load_document, parse_job_spec

__all__ = [
    "HISTORY_LIMIT",
    "STARTING_DEADLINE_SECONDS",
    "UNSCHEDULED",
    "Definition",
    "parse_definition",
    "render_cronjob",
]

# Finished runs kept per definition, each of succeeded and failed (then the CronJob
# controller deletes the oldest; their outputs stay in S3).
HISTORY_LIMIT = 5
# A firing missed by more than this (gateway or cluster down) is skipped, not run late; it
# also keeps the controller from giving up after 100 missed times.
STARTING_DEADLINE_SECONDS = 3600
# An unscheduled definition (run-now only) is a CronJob that is always suspended, with a
# schedule that never matters.
UNSCHEDULED = "@yearly"
_SCHEDULE_MAX = 200


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(description="a DNS label of at most 40 characters")
    spec: dict[str, Any] = Field(description="a job spec (docs/jobs.md)")
    schedule: StrictStr | None = Field(
        None, description='a cron schedule ("0 2 * * *", "@daily"); none: run-now only'
    )
    timezone: StrictStr | None = Field(None, description="an IANA time zone, e.g. Asia/Shanghai")
    concurrency_policy: Literal["Forbid", "Replace"] = Field(
        "Forbid", description="Forbid (skip a run while one is active) or Replace"
    )
    paused: StrictBool = Field(False, description="true or false")


@dataclass(frozen=True)
class Definition:
    name: str
    spec: JobSpec
    schedule: str | None
    timezone: str | None
    concurrency_policy: str
    paused: bool


def parse_definition(raw: bytes | str, content_type: str | None = None) -> Definition:
    """The definition a user sent; :class:`SpecError` listing every problem by field path
    (the job spec's own under ``spec.``)."""
    doc = load_document(raw, content_type)
    if not isinstance(doc, dict):
        raise SpecError([FieldError("", "is not a mapping", "a mapping with name and spec")])
    try:
        req = _Request.model_validate(doc)
    except ValidationError as exc:
        raise SpecError(
            [
                FieldError(
                    e.field,
                    "unknown field" if e.kind == "extra_forbidden" else e.message,
                    _allowed(e.field),
                )
                for e in schema_errors(exc)
            ]
        ) from None
    problems: list[FieldError] = []
    if not is_dns_label(req.name) or len(req.name) > NAME_MAX:
        problems.append(
            FieldError("name", f"{req.name[:60]!r} is not a definition name", _allowed("name"))
        )
    if req.schedule is not None:
        if len(req.schedule) > _SCHEDULE_MAX:
            problems.append(FieldError("schedule", "is too long", _allowed("schedule")))
        else:
            try:
                parse_schedule(req.schedule)
            except CronError as exc:
                problems.append(FieldError("schedule", str(exc), _allowed("schedule")))
    if req.timezone is not None:
        try:
            zone(req.timezone)
        except CronError as exc:
            problems.append(FieldError("timezone", str(exc), _allowed("timezone")))
    spec: JobSpec | None = None
    try:
        spec = parse_job_spec(req.spec)
    except SpecError as exc:
        problems += [
            FieldError(f"spec.{p.field}" if p.field else "spec", p.message, p.allowed, p.code)
            for p in exc.problems
        ]
    if problems or spec is None:
        raise SpecError(problems)
    return Definition(
        name=req.name,
        spec=spec,
        schedule=req.schedule,
        timezone=req.timezone,
        concurrency_policy=req.concurrency_policy,
        paused=req.paused,
    )


def _allowed(field: str) -> str:
    head = re.split(r"[.\[]", field or "", maxsplit=1)[0]
    info = _Request.model_fields.get(head)
    return (
        (info.description or "")
        if info is not None
        else "one of: " + ", ".join(_Request.model_fields)
    )


def render_cronjob(
    job: dict[str, Any], definition: Definition, *, definition_id: str, owner: str
) -> dict[str, Any]:
    """The CronJob for ``definition`` from ``job``, the Job ``render_job`` made for its spec
    with ``job_id=definition_id`` (so the upload Secret it names is the definition's)."""
    meta = job["metadata"]
    labels = dict(meta.get("labels") or {})
    template = copy.deepcopy(job["spec"])
    pod_meta = template["template"].setdefault("metadata", {})
    pod_meta["labels"] = {**(pod_meta.get("labels") or {}), DEFINITION_LABEL: definition_id}
    pod_spec = template["template"]["spec"]
    pod_spec["schedulingGates"] = [
        *(pod_spec.get("schedulingGates") or []),
        {"name": UPLOAD_CREDENTIAL_GATE},
    ]
    for container in pod_spec.get("containers") or []:
        for var in container.get("env") or []:
            if var.get("name") == "GPULAB_JOB_ID":
                var.pop("value", None)
                var["valueFrom"] = {
                    "fieldRef": {"fieldPath": f"metadata.labels['{JOB_NAME_LABEL}']"}
                }
    scheduled = definition.schedule is not None
    cj_labels = {
        MANAGED_BY_LABEL: APP,
        USER_LABEL: labels.get(USER_LABEL, ""),
        GROUP_LABEL: labels.get(GROUP_LABEL, ""),
        DEFINITION_LABEL: definition_id,
        DEFINITION_NAME_LABEL: definition.name,
    }
    spec: dict[str, Any] = {
        "schedule": definition.schedule if scheduled else UNSCHEDULED,
        "concurrencyPolicy": definition.concurrency_policy,
        "suspend": definition.paused or not scheduled,
        "startingDeadlineSeconds": STARTING_DEADLINE_SECONDS,
        "successfulJobsHistoryLimit": HISTORY_LIMIT,
        "failedJobsHistoryLimit": HISTORY_LIMIT,
        "jobTemplate": {
            "metadata": {
                "labels": {**labels, DEFINITION_LABEL: definition_id},
                "annotations": dict(meta.get("annotations") or {}),
            },
            "spec": template,
        },
    }
    if definition.timezone is not None:
        spec["timeZone"] = definition.timezone
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {
            "name": definition_id,
            "namespace": meta["namespace"],
            "labels": cj_labels,
            "annotations": {
                OWNER_ANNOTATION: owner,
                SPEC_ANNOTATION: (meta.get("annotations") or {}).get(SPEC_ANNOTATION, "{}"),
            },
        },
        "spec": spec,
    }
