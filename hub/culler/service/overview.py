"""The admin overview (dashboard data): capacity, use by group and type, GPUs per node and
their fragmentation, running pods, idle holders, GPU-hours per group per day, quota use, usage
totals, and Kueue's queues per group (or that Kueue is not installed).

Capacity and the per-node view come from the culler's watch caches (nodes; gpulab's pods), so
building the overview costs no Kubernetes call. The 30-day figures (history and usage totals)
change slowly and cost a scan of every interval of the month: they are kept for
``SLOW_FIGURES_SECONDS`` and refreshed by the first request after that."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from gpulab.hub.usage.models import UsageInterval
from gpulab.hub.usage.queries import gpu_hours_by_group_day, summarize
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .cycle import Culler
from .node_gpus import node_gpus
from .queues import QueueObjects, queues_overview

__all__ = ["SLOW_FIGURES_SECONDS", "ClusterObjects", "SlowFigures", "build_overview"]

SLOW_FIGURES_SECONDS = 60.0

# () -> (nodes, gpulab pods) from the watch caches, or None when Kubernetes is not watched.
ClusterObjects = Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]] | None]


class SlowFigures:
    """The 30-day history and usage totals, read again at most every ``max_age`` seconds
    (one read at a time: concurrent requests wait for the same one)."""

    def __init__(self, engine: Engine, max_age: float = SLOW_FIGURES_SECONDS) -> None:
        self.engine = engine
        self.max_age = max_age
        self._value: tuple[Any, list[Any]] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._value = None

    async def get(self, now: datetime) -> tuple[Any, list[Any]]:
        async with self._lock:
            if self._value is None or time.monotonic() - self._at > self.max_age:
                history = await asyncio.to_thread(gpu_hours_by_group_day, self.engine, 30, now)
                usage = await asyncio.to_thread(
                    summarize, self.engine, now - timedelta(days=30), now
                )
                self._value = (history, [u.to_json() for u in usage])
                self._at = time.monotonic()
            return self._value


log = logging.getLogger("gpulab.culler")


def _open_intervals(engine: Engine) -> list[UsageInterval]:
    with Session(engine) as s:
        rows = s.scalars(select(UsageInterval).where(UsageInterval.ended_at.is_(None))).all()
        s.expunge_all()
        return list(rows)


Counted = tuple[list[dict[str, Any]], dict[str, int], dict[tuple[str, str], int], dict[str, int]]


def _running_of(rows: list[UsageInterval], now: datetime) -> Counted:
    """The running servers and jobs (oldest first) and the GPUs they hold per type, per
    group and type, and per group."""
    in_use_type: dict[str, int] = defaultdict(int)
    in_use_group_type: dict[tuple[str, str], int] = defaultdict(int)
    in_use_group: dict[str, int] = defaultdict(int)
    running = []
    for r in sorted(rows, key=lambda r: r.started_at):
        in_use_type[r.gpu_type] += r.gpus
        in_use_group[r.group] += r.gpus
        if r.gpus:
            in_use_group_type[(r.group, r.gpu_type)] += r.gpus
        running.append(
            {
                "kind": r.kind,
                "user": r.user,
                "group": r.group,
                "name": r.job_id or r.pod_name,
                # The pod's own server name (KubeSpawner's annotation): a user's named
                # servers each get the right stop button.
                "server": r.server_name if r.kind == "server" else "",
                "job_id": r.job_id,
                "gpus": r.gpus,
                "gpu_type": r.gpu_type,
                "started": r.started_at.isoformat(),
                "age_seconds": int((now - r.started_at).total_seconds()),
            }
        )
    return running, in_use_type, in_use_group_type, in_use_group


def _running(engine: Engine, now: datetime) -> Counted:
    return _running_of(_open_intervals(engine), now)


def _gpu_resources(policy: Any) -> list[str]:
    """Every GPU resource name of the policy's GPU types (whole GPUs, slices)."""
    types = (getattr(policy, "gpu_types", None) or {}).values()
    return sorted({t.resource for t in types})


def _type_names(policy: Any) -> dict[str, str]:
    """Node product label -> policy GPU type name."""
    out = {}
    for name, gt in (getattr(policy, "gpu_types", None) or {}).items():
        product = (getattr(gt, "node_selector", None) or {}).get("nvidia.com/gpu.product")
        if product:
            out[product] = name
    return out


async def build_overview(
    culler: Culler,
    engine: Engine,
    cluster: ClusterObjects,
    policy: Any,
    *,
    slow: SlowFigures | None = None,
    accounting_problem: str | None = None,
    policy_status: dict[str, Any] | None = None,
    catalogue_status: dict[str, Any] | None = None,
    queues: QueueObjects | None = None,
) -> dict[str, Any]:
    """The dashboard's data. ``cluster``: the watch caches' nodes and pods; ``slow``: the
    30-day figures' keeper (None: read them now); ``accounting_problem``: why usage accounting
    is unavailable (None: it works); ``policy_status``: the policy file's
    :meth:`~PolicyFile.status`; ``catalogue_status``: whether Harbor recognises the
    catalogue's credentials (:class:`gpulab.hub.catalogue.identity.IdentityCheck`); ``queues``: Kueue's objects from the watch caches
    (None: no cluster access)."""
    now = datetime.now(UTC)
    slow = slow or SlowFigures(engine, max_age=0.0)
    try:
        # Read and shaped in a worker thread: at thousands of servers this is the bulk of
        # the work, and the event loop keeps answering meanwhile.
        counted = await asyncio.to_thread(_running, engine, now)
        history, usage = await slow.get(now)
    except SQLAlchemyError as exc:  # the page still shows the culler's own state
        log.warning("overview: cannot read the usage database: %s", exc)
        accounting_problem = accounting_problem or f"cannot read the usage database: {exc}"
        counted, history, usage = _running_of([], now), {}, []
    running, in_use_type, in_use_group_type, in_use_group = counted

    objects = cluster()
    nodes, spreads = (
        await asyncio.to_thread(node_gpus, *objects, _type_names(policy)) if objects else ([], [])
    )
    capacity = {s.gpu_type: s.capacity for s in spreads}

    types = sorted(set(capacity) | {t for t, n in in_use_type.items() if n})
    quota = []
    for name, group in (getattr(policy, "groups", None) or {}).items():
        limit = int(getattr(getattr(group, "gpu", None), "quota_group", 0) or 0)
        if limit or in_use_group.get(name):
            quota.append({"group": name, "used": in_use_group.get(name, 0), "limit": limit})
    idle = [
        v
        for v in culler.servers.values()
        if v.gpus > 0 and v.decision is not None and v.decision.state in ("idle", "warned")
    ]
    idle.sort(key=lambda v: (v.decision.state != "warned", -v.gpus))

    def groups_of(user: str) -> list[str]:
        return next((v.groups for (u, _), v in culler.servers.items() if u == user), [])

    return {
        "generated": now.isoformat(),
        "capacity": [
            {"gpu_type": t, "capacity": capacity.get(t, 0), "in_use": in_use_type.get(t, 0)}
            for t in types
        ],
        "in_use_by_group": [
            {"group": g, "gpu_type": t, "gpus": n}
            for (g, t), n in sorted(in_use_group_type.items())
        ],
        "running": running,
        "idle_holders": [v.to_json(now) for v in idle[:20]],
        "idle_jobs": culler.idle_jobs(groups_of),
        "gpu_hours_by_group_day": history,
        "quota": quota,
        "usage": usage,
        "nodes": [n.to_json() for n in nodes],
        "gpu_types": [s.to_json() for s in spreads],
        "nodes_watched": objects is not None,
        "last_cycle": culler.last_cycle.to_json() if culler.last_cycle else None,
        "usage_accounting": {
            "available": accounting_problem is None,
            "problem": None
            if accounting_problem is None
            else f"usage accounting unavailable: {accounting_problem}",
        },
        "policy": policy_status,
        "catalogue": catalogue_status,
        "queues": queues_overview(queues() if queues else None, _gpu_resources(policy)),
    }
