"""Quota reservations: what a GPU-quota ledger holds, and how a checker counts it (pure).

The spawner (in the hub) and the jobs gateway (its own process) each count what a user and their
quota group hold from their own watch cache (:mod:`.holdings`). A server and a job admitted at
the same instant by the two would each miss the other. So both also read one **ledger** per
quota group, a ConfigMap the API server keeps (:mod:`.quota_ledger` does the I/O): before
creating a pod or a Job, a checker writes a short-lived reservation for it, in the same
conditional write that follows its quota check (a resourceVersion precondition; a conflict
means re-read and check again).

A reservation names the object it is for. A checker counts it on top of its cache's usage until
it sees that object in its own cache (the cache then counts it), or until it expires: the
object was never made, or was made and is already gone. Expired reservations are dropped at the
next write. A reservation for the same object replaces the previous one (a server started
again), and one whose object was not made or was stopped is released at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from ..names import escape_username
from .holdings import GpuUsage, Holder
from .labels import GROUP_LABEL, QUOTA_LEDGER_COMPONENT, base_labels

__all__ = [
    "DEFAULT_TTL_SECONDS",
    "ObjectKind",
    "Reservation",
    "ledger_configmap",
    "ledger_entries",
    "ledger_name",
    "live_entries",
    "usage_with",
]

ObjectKind = Literal["pod", "job"]

# Long enough for the slowest way from the quota check to the object reaching the caches
# (the spawner waits for a previous pod of the same name to go; the gateway asks S3 for a
# credential first); short enough that a job which finishes quickly frees its GPUs soon.
DEFAULT_TTL_SECONDS = 60.0

_PREFIX = "gpulab-quota-"


@dataclass(frozen=True)
class Reservation:
    """GPUs (and, for a job, a job slot), CPU and memory held for ``kind``/``name`` until
    ``expires`` (epoch seconds). ``user`` is the escaped ``gpulab.io/user`` value."""

    kind: ObjectKind
    name: str
    user: str
    gpus: int
    expires: float
    cpu_millis: int = 0
    memory_bytes: int = 0

    @property
    def key(self) -> str:
        """The ConfigMap data key: ``pod.<name>`` or ``job.<name>`` (Kubernetes names are
        valid ConfigMap keys)."""
        return f"{self.kind}.{self.name}"

    def to_json(self) -> str:
        data: dict[str, Any] = {"user": self.user, "gpus": self.gpus}
        # Only when held: ledgers of groups without CPU or memory quotas stay as small as before.
        if self.cpu_millis:
            data["cpu_millis"] = self.cpu_millis
        if self.memory_bytes:
            data["memory_bytes"] = self.memory_bytes
        data["expires"] = round(self.expires, 3)
        return json.dumps(data, separators=(",", ":"))


def ledger_name(group: str) -> str:
    """The ConfigMap of quota group ``group`` (DNS-safe, one per group)."""
    return _PREFIX + escape_username(group)


def ledger_configmap(
    group: str, namespace: str, entries: Iterable[Reservation], resource_version: str | None
) -> dict[str, Any]:
    """The ledger as a ConfigMap body; with ``resource_version`` a replace that fails with 409
    when someone wrote in between."""
    metadata: dict[str, Any] = {
        "name": ledger_name(group),
        "namespace": namespace,
        # Group names are label values already (pods carry them in gpulab.io/group).
        "labels": {**base_labels(QUOTA_LEDGER_COMPONENT), GROUP_LABEL: group},
    }
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata,
        "data": {e.key: e.to_json() for e in entries},
    }


def _entry(key: str, value: Any) -> Reservation | None:
    kind, _, name = key.partition(".")
    if kind not in ("pod", "job") or not name:
        return None
    try:
        data = json.loads(value)
        return Reservation(
            kind=kind,  # type: ignore[arg-type]  # checked above
            name=name,
            user=str(data["user"]),
            gpus=max(0, int(data["gpus"])),
            expires=float(data["expires"]),
            cpu_millis=max(0, int(data.get("cpu_millis", 0))),
            memory_bytes=max(0, int(data.get("memory_bytes", 0))),
        )
    except (TypeError, ValueError, KeyError):
        return None  # not ours, or hand-edited: ignored, and dropped at the next write


def ledger_entries(configmap: Mapping[str, Any] | None) -> list[Reservation]:
    """The reservations a ledger ConfigMap holds (none when it does not exist yet)."""
    data = (configmap or {}).get("data") or {}
    return [e for key, value in data.items() if (e := _entry(key, value)) is not None]


def live_entries(entries: Iterable[Reservation], now: float) -> list[Reservation]:
    """The reservations not yet expired."""
    return [e for e in entries if e.expires > now]


def usage_with(
    usage: GpuUsage,
    entries: Iterable[Reservation],
    *,
    user: str,
    now: float,
    seen: Callable[[Reservation], bool],
    group: str = "",
) -> GpuUsage:
    """``usage`` (counted from a cache, for ``user`` and the ledger's group ``group``) plus the
    live reservations whose object that cache does not hold yet (``seen`` is False)."""
    user_gpus, group_gpus, jobs = usage.user, usage.group, usage.jobs
    cpu, memory = usage.group_cpu_millis, usage.group_memory_bytes
    holders = list(usage.holders)
    for e in live_entries(entries, now):
        if seen(e):
            continue
        if e.gpus:
            kind = "server" if e.kind == "pod" else "job"
            holders.append(Holder(kind, e.name, e.user, e.user, e.gpus, group, starting=True))
        group_gpus += e.gpus
        cpu += e.cpu_millis
        memory += e.memory_bytes
        if e.user == user:
            user_gpus += e.gpus
            jobs += e.kind == "job"
    return replace(
        usage,
        user=user_gpus,
        group=group_gpus,
        jobs=jobs,
        group_cpu_millis=cpu,
        group_memory_bytes=memory,
        holders=tuple(holders),
    )
