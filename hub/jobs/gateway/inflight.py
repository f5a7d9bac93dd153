"""The reservations of the Jobs this gateway is making, and which submits need the shared ledger.

The quota group's ledger (:mod:`gpulab.hub.workload.quota_ledger`) exists because two processes
admit work that holds the same quota: the spawner starts servers, the gateway submits jobs, and
each counts from its own cache. What a server can hold is GPUs, CPU and memory; a job also holds
a job slot of its owner. Only the gateway makes Jobs, so job slots race only between the
gateway's own submits, and those it arbitrates in memory: a reservation is checked and added
here with no ``await`` in between, counted until the gateway's cache holds its Job (the cache
counts it then) or until it expires.

So a submit goes through the ledger (one read and one conditional write more) only when the
spawner could be counting the same thing (:func:`needs_ledger`): the job holds GPUs, or its
quota group has a CPU or memory quota. A CPU job in a group without those is checked here
alone. Every reservation this gateway makes, through the ledger or not, is kept here too, so
a check of either kind counts the other kind's submits in flight; a ledger entry also held
here is counted once (:meth:`InFlight.holds`). A submit going through the ledger is held here
from before it asks the ledger (and dropped if refused): a submit checked here alone while the
ledger is being asked counts it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ...workload.admission import WorkloadRequest
from ...workload.reservations import DEFAULT_TTL_SECONDS, Reservation, live_entries

__all__ = ["InFlight", "needs_ledger"]


def needs_ledger(request: WorkloadRequest) -> bool:
    """Whether checking ``request`` needs the quota group's ledger: what it holds is also
    counted by the spawner (GPUs; CPU and memory when the group has a quota on them)."""
    ent = request.entitlement
    return request.gpus > 0 or ent.cpu_quota_limit is not None or ent.memory_quota_limit is not None


class InFlight:
    """Reservations per quota group, by ledger key (``job.<id>``), until seen or expired."""

    def __init__(
        self, *, ttl: float = DEFAULT_TTL_SECONDS, clock: Callable[[], float] = time.time
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self._groups: dict[str, dict[str, Reservation]] = {}

    def reservation(self, request: WorkloadRequest, user: str, job_id: str) -> Reservation:
        """The reservation of job ``job_id`` of ``user`` (escaped) for ``request``, from now."""
        demand = request.requested
        return Reservation(
            "job",
            job_id,
            user,
            request.held_gpus,
            self.clock() + self.ttl,
            cpu_millis=demand.cpu_millis,
            memory_bytes=demand.memory_bytes,
        )

    def entries(self, group: str, seen: Callable[[Reservation], bool]) -> list[Reservation]:
        """The live reservations of ``group`` whose Job the cache does not hold yet (the others
        are dropped: they are counted from the cache, or were never made)."""
        held = self._groups.get(group)
        if not held:
            return []
        kept = [e for e in live_entries(held.values(), self.clock()) if not seen(e)]
        if len(kept) != len(held):
            self._groups[group] = {e.key: e for e in kept}
        return kept

    def add(self, group: str, entry: Reservation) -> None:
        self._groups.setdefault(group, {})[entry.key] = entry

    def drop(self, group: str, key: str) -> bool:
        """Forget ``key`` (its Job was not made, or was cancelled); whether it was held."""
        return self._groups.get(group, {}).pop(key, None) is not None

    def holds(self, group: str, key: str) -> bool:
        return key in self._groups.get(group, {})
