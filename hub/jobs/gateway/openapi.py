"""The OpenAPI 3.1 description of the gateway's REST API (served at ``/openapi.json``).

The request body, the jobs list's parameters and page, and the error's problems are generated
from the models the gateway validates with (:class:`~gpulab.hub.jobs.spec.JobSpec`,
:class:`~.listing.JobListQuery`, :class:`~.listing.JobListPage`,
:class:`~gpulab.hub.field_errors.FieldError`), so the document cannot drift from what is
accepted. Paths and the response bodies, which the
gateway builds as plain JSON without a model, are written here.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from gpulab.wire.jobs import JOB_STATES

from ...field_errors import FieldError
from ..spec import ALLOWED, JobSpec
from .listing import page_schema, query_parameters
from .notify_settings import EVENTS

__all__ = ["openapi"]

_REF = "#/components/schemas/{model}"
_STATES = list(JOB_STATES)


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, ref: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


# A sweep's run (its index): that run's log or files; a sweep's log defaults to run 0.
_RUN = {
    "name": "run",
    "in": "query",
    "schema": {"type": "integer", "minimum": 0},
    "description": "a sweep's run (its index, from the job's runs)",
}
_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?-[a-z2-7]{6}$"},
}

_SPEC_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}},
        "application/yaml": {"schema": {"$ref": "#/components/schemas/JobSpec"}},
    },
}
_COMMON_ERRORS = {
    "401": _error("no or bad hub token / cookie"),
    "404": _error("no such job, or not yours (the same answer)"),
    "503": _error("the cluster, the hub or S3 is unavailable; see Retry-After"),
}


def _spec_schema() -> dict[str, Any]:
    schema = JobSpec.model_json_schema(ref_template=_REF)
    # Say what each field accepts in the words the API's errors use.
    for key, prop in schema["properties"].items():
        if ALLOWED.get(key):
            prop["description"] = ALLOWED[key]
    schema["description"] = "Exactly one of command or notebook. See docs/jobs.md."
    return schema


def _problem_schema() -> dict[str, Any]:
    return TypeAdapter(FieldError).json_schema(ref_template=_REF)


_NOTIFY_SETTINGS = {
    "type": "object",
    "description": "Your notification settings (docs/jobs.md, 'Told when it ends'); "
    "webhook_secret only in the answer that made it",
    "properties": {
        "email": {"type": ["string", "null"]},
        "webhook_url": {"type": ["string", "null"], "description": "https, on a public host"},
        "events": {"type": "array", "items": {"enum": list(EVENTS)}},
        "email_available": {"type": "boolean"},
        "webhook_secret_set": {"type": "boolean"},
        "webhook_secret": {"type": "string"},
        "deliveries": {"type": "array", "items": {"type": "object"}},
    },
}


def _notify_paths() -> dict[str, Any]:
    ok = {
        "200": {
            "description": "your settings",
            "content": {"application/json": {"schema": _NOTIFY_SETTINGS}},
        }
    }
    errors = {"401": _error(""), "503": _error("notifications are off, or the cluster is down")}
    return {
        "/notify": {
            "get": {
                "summary": "Your notification settings and recent deliveries",
                "responses": {**ok, **errors},
            },
            "put": {
                "summary": "Change your notification settings (a key left out is kept, null "
                "removes it)",
                "requestBody": {"content": {"application/json": {"schema": _NOTIFY_SETTINGS}}},
                "responses": {
                    **ok,
                    "422": _error("a setting is wrong: the problem names it"),
                    **errors,
                },
            },
        },
        "/notify/secret": {
            "post": {
                "summary": "A new webhook signing secret, answered once",
                "responses": {**ok, **errors},
            }
        },
        "/notify/test": {
            "post": {
                "summary": "Send a test notification on each channel, once",
                "responses": {
                    "200": {"description": "each channel's delivery"},
                    "409": _error("nothing set up to test"),
                    **errors,
                },
            }
        },
    }


def openapi(server_prefix: str = "/services/jobs-gateway/") -> dict[str, Any]:
    base = server_prefix.rstrip("/") + "/api/v1"
    job_ops = {
        "get": {
            "summary": "One job",
            "parameters": [_JOB_ID],
            "responses": {"200": _json("the job", "Job"), **_COMMON_ERRORS},
        },
        "delete": {
            "summary": "Cancel a job (its pods stop; state Cancelled)",
            "parameters": [_JOB_ID],
            "responses": {
                "202": _json("cancelling", "Job"),
                "409": _error("the job already finished"),
                **_COMMON_ERRORS,
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gpulab jobs gateway",
            "version": "1",
            "description": "Submit, watch and fetch batch jobs. Authenticate with a hub API "
            "token (`Authorization: token <t>`) or the hub OAuth cookie. Names and groups in "
            "bodies are ignored: identity comes from the hub.",
        },
        "servers": [{"url": base}],
        "security": [{"hubToken": []}],
        "paths": {
            **_notify_paths(),
            "/me": {
                "get": {
                    "summary": "Who am I, my quota and limits",
                    "responses": {"200": _json("identity and quota", "Me"), "401": _error("")},
                }
            },
            "/jobs": {
                "get": {
                    "summary": "List jobs (your own; admins: everyone's), newest first, a page at a time",
                    "parameters": query_parameters(),
                    "responses": {
                        "200": _json("a page of jobs", "JobList"),
                        "400": _error("a bad parameter: its problem names it and what it accepts"),
                        "401": _error(""),
                    },
                },
                "post": {
                    "summary": "Submit a job",
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "schema": {"type": "string", "maxLength": 255},
                            "description": "a retried submit with the same key returns the "
                            "existing job (200) instead of a new one",
                        },
                    ],
                    "requestBody": _SPEC_BODY,
                    "responses": {
                        "201": _json("created", "Job"),
                        "200": _json(
                            "the job of an earlier submit with this Idempotency-Key", "Job"
                        ),
                        "400": _error("bad Idempotency-Key"),
                        "403": _error("no access, or the cluster's ResourceQuota refuses it"),
                        "413": _error("body over 64 KiB"),
                        "415": _error("not JSON or YAML"),
                        "422": _error("the spec is invalid or not allowed by policy"),
                        "429": _error("quota (GPUs, CPU, memory or jobs) in use now; retry later"),
                        **_COMMON_ERRORS,
                    },
                },
            },
            "/jobs/validate": {
                "post": {
                    "summary": "Dry run of a submit: every problem of the spec (schema, then "
                    "your policy), nothing created; quota in use now is no problem",
                    "requestBody": _SPEC_BODY,
                    "responses": {
                        "200": {
                            "description": "{valid: bool, problems: [{field, message, "
                            "allowed, code}]}",
                            "content": {"application/json": {}},
                        },
                        "413": _error("body over 64 KiB"),
                        "415": _error("not JSON or YAML"),
                        **_COMMON_ERRORS,
                    },
                }
            },
            **_definition_paths(),
            "/jobs/{job_id}": job_ops,
            "/jobs/{job_id}/logs": {
                "get": {
                    "summary": "The job's log: from the pod while it exists, then from S3",
                    "parameters": [
                        _JOB_ID,
                        {"name": "follow", "in": "query", "schema": {"enum": ["0", "1"]}},
                        {
                            "name": "tail",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 0},
                        },
                        {
                            "name": "rank",
                            "in": "query",
                            "description": "a multi-node job's rank (default 0)",
                            "schema": {"type": "integer", "minimum": 0},
                        },
                        _RUN,
                    ],
                    "responses": {
                        "200": {"description": "the log", "content": {"text/plain": {}}},
                        **_COMMON_ERRORS,
                        "503": _error(
                            "the pod is gone and the log is not archived yet (the message "
                            "names where in the owner's home it is kept), or S3 is down; "
                            "see Retry-After"
                        ),
                    },
                }
            },
            "/jobs/{job_id}/outputs": {
                "get": {
                    "summary": "The job's files in S3 and the upload status",
                    "parameters": [_JOB_ID, _RUN],
                    "responses": {"200": _json("files", "Outputs"), **_COMMON_ERRORS},
                }
            },
            "/jobs/{job_id}/outputs/{path}": {
                "get": {
                    "summary": "Download one file: 307 to a short-lived presigned URL",
                    "parameters": [
                        _JOB_ID,
                        {
                            "name": "path",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "redirect",
                            "in": "query",
                            "schema": {"enum": ["0", "1"]},
                            "description": "0: answer {url, expires_in} instead of redirecting",
                        },
                    ],
                    "responses": {
                        "307": {"description": "redirect to the presigned URL"},
                        "200": _json("the URL", "Download"),
                        "400": _error("a path outside the job"),
                        **_COMMON_ERRORS,
                    },
                }
            },
            "/jobs/{job_id}/resubmit": {
                "post": {
                    "summary": "Run the same spec again as a new job",
                    "parameters": [_JOB_ID],
                    "responses": {"201": _json("the new job", "Job"), **_COMMON_ERRORS},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "hubToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`token <hub API token>`",
                },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "problems": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/FieldError"},
                        },
                    },
                },
                "FieldError": _problem_schema(),
                "JobSpec": _spec_schema(),
                "Job": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "owner": {"type": "string"},
                        "group": {"type": ["string", "null"]},
                        "state": {"enum": _STATES},
                        "message": {"type": "string"},
                        "image": {"type": ["string", "null"]},
                        "gpus": {"type": "integer"},
                        "gpu_type": {"type": ["string", "null"]},
                        "created": {"type": ["string", "null"], "format": "date-time"},
                        "started": {"type": ["string", "null"], "format": "date-time"},
                        "finished": {"type": ["string", "null"], "format": "date-time"},
                        "exit_code": {"type": ["integer", "null"]},
                        "attempts": {"type": "integer"},
                        "spec": {"type": ["object", "null"]},
                        "upload": {"enum": ["ok", "failed", "pending"]},
                        "idempotency_key": {"type": ["string", "null"]},
                        "cancelled_by": {"type": ["string", "null"]},
                        "cancelled_at": {"type": ["string", "null"], "format": "date-time"},
                        "queue": {
                            "description": "where a Queued job stands in its Kueue queue",
                            "type": ["object", "null"],
                            "properties": {
                                "name": {"type": "string"},
                                "position": {"type": "integer"},
                                "ahead": {"type": "integer"},
                                "gpus_busy": {"type": "integer"},
                                "gpus_quota": {"type": ["integer", "null"]},
                                "preemptible": {"type": "boolean"},
                                "reason": {"type": ["string", "null"]},
                            },
                        },
                        "preemptions": {"type": "integer"},
                        "gpu_hours_lost": {"type": "number"},
                        "nodes": {"type": "integer", "description": "ranks (pods) it runs"},
                        "ranks": {
                            "description": "a multi-node job's ranks: each one's newest pod",
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "rank": {"type": "integer"},
                                    "phase": {"type": "string"},
                                    "node": {"type": ["string", "null"]},
                                    "exit_code": {"type": ["integer", "null"]},
                                },
                            },
                        },
                        "runs": {
                            "description": "a sweep's runs, in index order (the job's detail "
                            "only; absent for a job that is no sweep)",
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "index": {"type": "integer"},
                                    "name": {"type": "string"},
                                    "parameters": {"type": "object"},
                                    "state": {"type": "string"},
                                    "exit_code": {"type": ["integer", "null"]},
                                    "metrics": {"type": "object"},
                                },
                            },
                        },
                    },
                },
                "JobList": page_schema(_REF.format(model="Job")),
                "Outputs": {
                    "type": "object",
                    "properties": {
                        "items": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "path": {"type": "string"},
                                    "size": {"type": "integer"},
                                    "modified": {"type": "string", "format": "date-time"},
                                },
                            },
                        },
                        "upload": {"enum": ["ok", "failed", "pending"]},
                    },
                },
                "Download": {
                    "type": "object",
                    "properties": {"url": {"type": "string"}, "expires_in": {"type": "integer"}},
                },
                "Me": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "groups": {"type": "array", "items": {"type": "string"}},
                        "admin": {"type": "boolean"},
                        "quota": {"type": ["object", "null"]},
                        "policy": {"type": ["object", "null"]},
                    },
                },
            },
        },
    }


def _definition_paths() -> dict[str, Any]:
    """Saved definitions and schedules (docs/jobs.md, "Saved definitions and schedules")."""
    name = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    definition = {
        "description": "{name, id, owner, schedule, timezone, concurrency_policy, paused, "
        "last_schedule_time, last_successful_time, active_runs, runs, created, spec}",
        "content": {"application/json": {}},
    }
    action = {
        "post": {
            "summary": "",
            "parameters": [name],
            "responses": {"200": definition, "409": _error("no schedule"), **_COMMON_ERRORS},
        }
    }
    return {
        "/definitions": {
            "get": {
                "summary": "Your saved definitions",
                "responses": {"200": {"description": "{items: [definition]}"}, "401": _error("")},
            },
            "post": {
                "summary": "Save a definition: {name, spec, schedule?, timezone?, "
                "concurrency_policy?: Forbid|Replace, paused?}",
                "responses": {
                    "201": definition,
                    "409": _error("the name is taken, or too many definitions"),
                    "422": _error("invalid, or the job is not allowed by policy"),
                    **_COMMON_ERRORS,
                },
            },
        },
        "/definitions/{name}": {
            "get": {
                "summary": "One definition",
                "parameters": [name],
                "responses": {"200": definition, **_COMMON_ERRORS},
            },
            "delete": {
                "summary": "Delete it with its scheduled runs",
                "parameters": [name],
                "responses": {"200": {"description": "deleted"}, **_COMMON_ERRORS},
            },
        },
        "/definitions/{name}/pause": {"post": {**action["post"], "summary": "Pause its schedule"}},
        "/definitions/{name}/resume": {
            "post": {**action["post"], "summary": "Resume its schedule"}
        },
        "/definitions/{name}/run-now": {
            "post": {
                "summary": "Run it once now: an ordinary job linked to the definition",
                "parameters": [name],
                "responses": {"201": _json("created", "Job"), **_COMMON_ERRORS},
            }
        },
    }
