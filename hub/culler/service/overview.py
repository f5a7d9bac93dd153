"""The admin overview (dashboard data): capacity, use by group and type, running pods,
idle holders, GPU-hours per group per day, quota use, usage totals."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from gpulab.hub.usage.models import UsageInterval
from gpulab.hub.usage.queries import gpu_hours_by_group_day, summarize
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .cycle import Culler
from .kube import KubeAccess

__all__ = ["build_overview"]

log = logging.getLogger("gpulab.culler")


def _open_intervals(engine: Engine) -> list[UsageInterval]:
    with Session(engine) as s:
        rows = s.scalars(select(UsageInterval).where(UsageInterval.ended_at.is_(None))).all()
        s.expunge_all()
        return list(rows)


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
    kube: KubeAccess | None,
    policy: Any,
    *,
    accounting_problem: str | None = None,
    policy_status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The dashboard's data. ``accounting_problem``: why usage accounting is unavailable (None:
    it works); ``policy_status``: the policy file's :meth:`~PolicyFile.status`."""
    now = datetime.now(UTC)
    try:
        running_rows = await asyncio.to_thread(_open_intervals, engine)
        history = await asyncio.to_thread(gpu_hours_by_group_day, engine, 30, now)
        usage = await asyncio.to_thread(summarize, engine, now - timedelta(days=30), now)
    except SQLAlchemyError as exc:  # the page still shows the culler's own state
        log.warning("overview: cannot read the usage database: %s", exc)
        accounting_problem = accounting_problem or f"cannot read the usage database: {exc}"
        running_rows, history, usage = [], [], []

    capacity: dict[str, int] = {}
    if kube is not None:
        try:
            names = _type_names(policy)
            for product, n in (await kube.gpu_capacity()).items():
                key = names.get(product, product)
                capacity[key] = capacity.get(key, 0) + n
        except Exception as e:  # noqa: BLE001 - the page still shows the rest
            log.warning("overview: cannot read node capacity: %s", e)

    in_use_type: dict[str, int] = defaultdict(int)
    in_use_group_type: dict[tuple[str, str], int] = defaultdict(int)
    in_use_group: dict[str, int] = defaultdict(int)
    running = []
    for r in sorted(running_rows, key=lambda r: r.started_at):
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
        "usage": [u.to_json() for u in usage],
        "last_cycle": culler.last_cycle.to_json() if culler.last_cycle else None,
        "usage_accounting": {
            "available": accounting_problem is None,
            "problem": None
            if accounting_problem is None
            else f"usage accounting unavailable: {accounting_problem}",
        },
        "policy": policy_status,
    }
