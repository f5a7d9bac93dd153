"""The one quota arbiter across processes: check + reserve as one conditional write to a quota
group's ledger ConfigMap (what a ledger holds and how it counts: :mod:`.reservations`).

:meth:`QuotaLedger.reserve` reads the ledger, adds its live reservations that the caller's
cache does not show yet to the usage counted from that cache, runs the caller's quota check,
and, when it passes, writes the ledger back with the new reservation and without the expired
ones, on the resourceVersion it read. A 409 means another checker (the spawner, the gateway,
another submit) wrote in between: read again and check again. The object is created only
after the write succeeded, so two checkers never both admit work the quota cannot hold.

The ledger is a ConfigMap (``coordination.k8s.io`` Leases would do as well on a real cluster;
kubesim serves ConfigMaps, and a ledger needs nothing a Lease adds). RBAC: ``configmaps`` get,
create, update in the namespace, for the hub and for the jobs gateway.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..field_errors import FieldError
from ..kube import KubeClient, KubeError, Obj, resource_path
from .holdings import Demand, GpuUsage
from .reservations import (
    DEFAULT_TTL_SECONDS,
    ObjectKind,
    Reservation,
    ledger_configmap,
    ledger_entries,
    ledger_name,
    live_entries,
    usage_with,
)

__all__ = ["LedgerBusy", "QuotaLedger"]

log = logging.getLogger("gpulab.workload.quota_ledger")

# Conflicts mean other checkers wrote; each retry is one read and one write. Dozens of
# simultaneous starts in one group still settle well within these.
MAX_ATTEMPTS = 50


class LedgerBusy(KubeError):
    """The ledger kept changing under every attempt (503: try again)."""

    def __init__(self, group: str) -> None:
        super().__init__(
            503, "Conflict", f"the GPU quota of group {group} is being changed by many starts"
        )


class QuotaLedger:
    """Reservations in ``namespace``, one ConfigMap per quota group, through ``kube``."""

    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        *,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.kube = kube
        self.namespace = namespace
        self.ttl = ttl
        self.clock = clock

    def _path(self, group: str | None = None) -> str:
        name = ledger_name(group) if group is not None else None
        return resource_path("v1", "configmaps", self.namespace, name)

    async def _write(self, group: str, entries: list[Reservation], configmap: Obj | None) -> bool:
        """Replace the ledger (create it when ``configmap`` is None); False on a conflict."""
        rv = (configmap or {}).get("metadata", {}).get("resourceVersion")
        body = ledger_configmap(group, self.namespace, entries, rv)
        try:
            if configmap is None:
                await self.kube.create(self._path(), body)
            else:
                await self.kube.request("PUT", self._path(group), body=body)
        except KubeError as exc:
            if exc.status == 409:  # written in between (or created by another checker)
                return False
            raise
        return True

    async def reserve(
        self,
        group: str,
        kind: ObjectKind,
        name: str,
        *,
        user: str,
        gpus: int,
        demand: Demand = Demand(),
        counted: Callable[[], GpuUsage],
        seen: Callable[[Reservation], bool],
        check: Callable[[GpuUsage], list[FieldError]],
    ) -> list[FieldError]:
        """Check the quota and reserve ``gpus`` (and the ``demand``'s CPU and memory) for ``kind``/``name`` of ``user`` (escaped) in
        ``group``, atomically across processes. ``counted`` is the usage from the caller's
        cache; ``seen`` says whether that cache holds a reservation's object; ``check`` is the
        quota rule. Returns its problems (nothing reserved), or [] once reserved. KubeError
        when the API server cannot be reached, :class:`LedgerBusy` after too many conflicts."""
        for _ in range(MAX_ATTEMPTS):
            configmap = await self.kube.get(self._path(group))
            now = self.clock()
            mine = Reservation(
                kind,
                name,
                user,
                gpus,
                now + self.ttl,
                cpu_millis=demand.cpu_millis,
                memory_bytes=demand.memory_bytes,
            )
            # The same object reserved again (a server started again) replaces its entry.
            others = [e for e in live_entries(ledger_entries(configmap), now) if e.key != mine.key]
            # No await between counting and checking: the cache and the ledger are one view.
            problems = check(
                usage_with(counted(), others, user=user, now=now, seen=seen, group=group)
            )
            if problems:
                return problems
            if await self._write(group, [*others, mine], configmap):
                return []
        raise LedgerBusy(group)

    async def release(self, group: str, kind: ObjectKind, name: str) -> None:
        """Drop the reservation of ``kind``/``name`` (its object was not made, or is being
        removed), so it does not hold the quota until it expires. No write when it is not
        there."""
        key = f"{kind}.{name}"
        for _ in range(MAX_ATTEMPTS):
            configmap = await self.kube.get(self._path(group))
            entries = ledger_entries(configmap)
            if configmap is None or all(e.key != key for e in entries):
                return
            kept = [e for e in live_entries(entries, self.clock()) if e.key != key]
            if await self._write(group, kept, configmap):
                return
        raise LedgerBusy(group)
