"""Server-side ``Table`` output (``Accept: application/json;as=Table;g=meta.k8s.io;v=v1``),
which ``kubectl get`` prints. Columns follow the real printers for pods and jobs; any other
kind gets NAME and AGE.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

Row = list[Any]


def _age(obj: dict[str, Any]) -> str:
    ts = (obj.get("metadata") or {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    return human_duration(
        datetime.now(UTC) - datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    )


def human_duration(delta: Any) -> str:
    """kubectl's short durations: 42s, 5m3s, 3h, 2d."""
    s = max(0, int(delta.total_seconds()))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 48:
        return f"{h}h"
    return f"{h // 24}d"


def _pod_status(pod: dict[str, Any]) -> str:
    """The STATUS column's reason, as kubectl's pod printer derives it."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if (w := state.get("waiting")) and w.get("reason"):
            reason = w["reason"]
        elif (t := state.get("terminated")) and t.get("reason"):
            reason = t["reason"]
        elif t:
            reason = (
                f"Signal:{t['signal']}" if t.get("signal") else f"ExitCode:{t.get('exitCode', 0)}"
            )
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        reason = "Terminating"
    return reason


def _pod_row(pod: dict[str, Any]) -> Row:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(int(cs.get("restartCount", 0)) for cs in statuses)
    return [
        pod["metadata"]["name"],
        f"{ready}/{len(spec.get('containers') or [])}",
        _pod_status(pod),
        restarts,
        _age(pod),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


def _job_row(job: dict[str, Any]) -> Row:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if conditions.get("Complete") == "True":
        state = "Complete"
    elif conditions.get("Failed") == "True":
        state = "Failed"
    elif conditions.get("Suspended") == "True":
        state = "Suspended"
    else:
        state = "Running"
    completions = spec.get("completions")
    done = f"{status.get('succeeded', 0)}/{completions if completions is not None else 1}"
    duration = "<none>"
    if start := status.get("startTime"):
        end = status.get("completionTime")
        t0 = datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        t1 = (
            datetime.strptime(end, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
            if end
            else datetime.now(UTC)
        )
        duration = human_duration(t1 - t0)
    return [job["metadata"]["name"], state, done, duration, _age(job)]


def _col(name: str, type_: str = "string", priority: int = 0, fmt: str = "") -> dict[str, Any]:
    col = {"name": name, "type": type_, "format": fmt, "description": name, "priority": priority}
    if name == "Name":
        col["format"] = "name"
    return col


_PRINTERS: dict[str, tuple[list[dict[str, Any]], Callable[[dict[str, Any]], Row]]] = {
    "Pod": (
        [
            _col("Name"),
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "string"),
            _col("Age"),
            _col("IP", priority=1),
            _col("Node", priority=1),
        ],
        _pod_row,
    ),
    "Job": (
        [_col("Name"), _col("Status"), _col("Completions"), _col("Duration"), _col("Age")],
        _job_row,
    ),
    "CronJob": (
        [
            _col("Name"),
            _col("Schedule"),
            _col("Timezone"),
            _col("Suspend"),
            _col("Active", "integer"),
            _col("Last Schedule"),
            _col("Age"),
        ],  # fmt: skip
        lambda o: [
            o["metadata"]["name"],
            (o.get("spec") or {}).get("schedule", ""),
            (o.get("spec") or {}).get("timeZone") or "<none>",
            str(bool((o.get("spec") or {}).get("suspend"))),
            len((o.get("status") or {}).get("active") or []),
            (o.get("status") or {}).get("lastScheduleTime") or "<none>",
            _age(o),
        ],
    ),
    "Namespace": (
        [_col("Name"), _col("Status"), _col("Age")],
        lambda o: [o["metadata"]["name"], (o.get("status") or {}).get("phase", ""), _age(o)],
    ),
    "Node": (
        [_col("Name"), _col("Status"), _col("Roles"), _col("Age"), _col("Version")],
        lambda o: [
            o["metadata"]["name"],
            "Ready"
            if any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (o.get("status") or {}).get("conditions") or []
            )
            else "NotReady",
            "<none>",
            _age(o),
            ((o.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", ""),
        ],
    ),
}
_GENERIC = ([_col("Name"), _col("Age")], lambda o: [o["metadata"]["name"], _age(o)])


def _partial(obj: dict[str, Any], include: str) -> dict[str, Any] | None:
    if include == "None":
        return None
    if include == "Object":
        return obj
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata"),
    }


def to_table(
    kind: str,
    objects: list[dict[str, Any]],
    *,
    resource_version: str | None = None,
    include_object: str = "Metadata",
    headers: bool = True,
) -> dict[str, Any]:
    columns, row_fn = _PRINTERS.get(kind, _GENERIC)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_fn(obj)}
        if (partial := _partial(obj, include_object)) is not None:
            row["object"] = partial
        rows.append(row)
    table: dict[str, Any] = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version} if resource_version else {},
        "columnDefinitions": columns if headers else [],
        "rows": rows,
    }
    return table


def wants_table(accept: str) -> bool:
    """True if the client prefers a meta.k8s.io/v1 Table (its first acceptable type)."""
    first = accept.split(",")[0]
    params = dict(p.strip().split("=", 1) for p in first.split(";")[1:] if "=" in p)
    return (
        params.get("as") == "Table"
        and params.get("g", "meta.k8s.io") == "meta.k8s.io"
        and params.get("v", "v1") == "v1"
    )
