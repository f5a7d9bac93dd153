"""One cull cycle, and the state the service keeps between cycles.

A cycle reads pages of active users from the hub (each user model carries its groups and its
servers: O(pages) requests, never one per user), builds a ``ServerActivity`` per ready server
from the latest ``ActivityReport`` its extension posted and from the hub's server model, asks
``ServerBook.observe`` (``decide``) what to do, logs the decision with its reason, and stops the
servers to cull through the hub API (not in dry-run). Rules come from the policy: the user's hub
groups merged into an ``Entitlement``.

Keeps and warnings are saved (``StateStore``) on every change and restored at start. A fresh
culler has seen no report yet: for its first ``report_interval`` it judges no server that was
already running without a report since, unless that server's saved warning has expired.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from gpulab.hub.culler.rules import (
    CullRules,
    Decision,
    JobActivity,
    JobGpuIdle,
    JobIdleRules,
    ServerActivity,
    decide_job,
    describe,
)
from gpulab.hub.culler.state import CullStatus, GpuIdleTracker, SavedState, ServerBook

from gpulab.wire.activity import ActivityReport

from .hub_client import HubClient
from .metrics import CULL_ERRORS, CULLS, CYCLE_SECONDS, WARNINGS
from .store import StateStore

__all__ = ["Culler", "CycleResult", "ServerView", "utcnow"]

log = logging.getLogger("gpulab.culler")

Key = tuple[str, str]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass
class ServerView:
    """What the last cycle saw of one server (for the dashboard and ``/servers/me``)."""

    user: str
    server_name: str
    groups: list[str]
    started: datetime
    gpus: int
    decision: Decision | None = None
    decided_at: datetime | None = None
    last_browser_activity: datetime | None = None

    def to_json(self, now: datetime) -> dict[str, Any]:
        d = self.decision
        return {
            "user": self.user,
            "server": self.server_name,
            "groups": self.groups,
            "started": self.started.isoformat(),
            "age_seconds": int((now - self.started).total_seconds()),
            "gpus": self.gpus,
            "state": d.state if d else "unknown",
            "action": d.action if d else None,
            "reason": d.reason if d else "",
            "cull_at": d.cull_at.isoformat() if d and d.cull_at else None,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
        }


@dataclass
class CycleResult:
    started: datetime
    seconds: float
    hub_requests: int
    pages: int
    servers: int
    kept: int = 0
    warned: int = 0
    culled: int = 0
    errors: int = 0
    dry_run: bool = False
    lines: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "started": self.started.isoformat(),
            "seconds": round(self.seconds, 4),
            "hub_requests": self.hub_requests,
            "pages": self.pages,
            "servers": self.servers,
            "kept": self.kept,
            "warned": self.warned,
            "culled": self.culled,
            "errors": self.errors,
            "dry_run": self.dry_run,
        }


@dataclass
class _JobState:
    """One running GPU job's idle record, fed by its runner's reports
    (``POST /api/v1/jobs/<id>/activity``)."""

    owner: str
    gpus: int
    started: datetime
    book: GpuIdleTracker
    last: JobGpuIdle | None = None
    groups: list[str] | None = None  # the owner's groups when the last report came
    last_report: datetime | None = None
    acted_since: datetime | None = None  # the idle episode already reported (or stopped)


class JobActions(Protocol):
    """What the culler asks of the jobs gateway for a job holding idle GPUs
    (:class:`~.job_cancel.JobCanceller`)."""

    async def report_idle(self, job_id: str, since: str, reason: str, action: str) -> bool: ...

    async def cancel(self, job_id: str, admin: str, reason: str) -> Any: ...


# Who a stop for idle GPUs is recorded as (the job's "cancelled by").
CULLER_ACTOR = "gpulab-culler"


class Culler:
    """The service's brain: latest reports, the server book, the cycle."""

    def __init__(
        self,
        hub: HubClient,
        policy: Callable[[], Any],
        *,
        dry_run: bool = False,
        now: Callable[[], datetime] = utcnow,
        log_keeps: bool = True,
        store: StateStore | None = None,
        report_interval: float = 60.0,
    ) -> None:
        self.hub = hub
        self._policy = policy  # () -> Policy (the PolicyFile's last good one)
        self.dry_run = dry_run
        self.now = now
        self.log_keeps = log_keeps
        self.store = store or StateStore(None)  # tests and benchmarks: memory only
        # Until grace_until a server running since before grace_started may simply not have
        # reported to this culler yet: its silence is not idleness.
        self.grace_started = now()
        self.grace_until = self.grace_started + timedelta(seconds=report_interval)
        self.report_interval = report_interval
        self.book = ServerBook()
        self._saved: dict[Key, SavedState] = {}
        self.reports: dict[Key, ActivityReport] = {}
        self.servers: dict[Key, ServerView] = {}
        self.jobs: dict[str, _JobState] = {}
        # The jobs gateway, to report and stop jobs holding idle GPUs (None: only listed).
        self.job_actions: JobActions | None = None
        self.last_cycle: CycleResult | None = None
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ rules
    def entitlement(self, groups: list[str]) -> Any | None:
        return self._policy().entitlement(groups)

    def rules_for(self, groups: list[str]) -> CullRules:
        ent = self.entitlement(groups)
        return CullRules() if ent is None else CullRules.from_entitlement(ent)

    # ------------------------------------------------------------------ inputs
    def record_report(
        self, user: str, server_name: str, report: ActivityReport, groups: list[str]
    ) -> None:
        key = (user, server_name)
        old = self.reports.get(key)
        if old is not None and report.sampled_at < old.sampled_at:
            return  # out of order
        self.reports[key] = report
        pct = report.gpu_max_utilization_pct
        if pct is not None:
            self.book.record_gpu(user, server_name, report.sampled_at, pct, self.rules_for(groups))

    def status(self, user: str, server_name: str, groups: list[str]) -> dict[str, Any]:
        st: CullStatus = self.book.status(user, server_name, self.rules_for(groups), self.now())
        out = st.to_json()
        view = self.servers.get((user, server_name))
        out["server"] = server_name
        out["decided_at"] = view.decided_at.isoformat() if view and view.decided_at else None
        out["dry_run"] = self.dry_run
        # The server's kernel reaper takes its rules from here (issue: idle kernels holding GPU
        # memory), so that the policy has one home: the hub.
        ent = self.entitlement(groups)
        if ent is not None:
            out["kernels"] = {
                "gpu_idle_after_seconds": ent.kernels.gpu_idle_after_seconds,
                "action": ent.kernels.action,
                "warn_before_seconds": ent.idle.warn_before_seconds,
            }
        return out

    async def keep(
        self, user: str, server_name: str, groups: list[str], seconds: float | None = None
    ) -> tuple[bool, str]:
        rules = self.rules_for(groups)
        st = self.book.state(user, server_name)
        view = self.servers.get((user, server_name))
        if st.started_at is None and view is not None:
            st.started_at = view.started
        ok, message = self.book.keep(user, server_name, self.now(), rules, seconds)
        await self._save((user, server_name))
        return ok, message

    # ------------------------------------------------------------------ persistence
    async def restore(self) -> int:
        """Take back the keeps and warnings a previous culler saved; how many servers."""
        saved = await self.store.load()
        for item in saved:
            self.book.restore(item)
            self._saved[(item.user, item.server_name)] = item
        return len(saved)

    async def _save(self, key: Key) -> None:
        """Save one server's state if it changed since it was last saved."""
        st = self.book.servers.get(key)
        if st is None:
            return
        snapshot = st.saved()
        if self._saved.get(key) != snapshot:
            self._saved[key] = snapshot
            await self.store.save(snapshot)

    async def _forget(self, key: Key) -> None:
        self.servers.pop(key, None)
        self.reports.pop(key, None)
        self.book.forget(*key)
        if self._saved.pop(key, None) is not None:
            await self.store.forget(*key)

    def _waiting(self, key: Key, started: datetime, now: datetime) -> Decision | None:
        """The decision for a server the culler cannot judge yet, or None to judge it.

        Within the grace period a server running since before this culler started, with no
        report since, is not judged; its saved warning stays as it was, and is carried out
        once its deadline has passed (its owner was warned before the restart)."""
        if now >= self.grace_until or key in self.reports or started >= self.grace_started:
            return None
        st = self.book.state(*key)
        waiting = "no activity report since the culler started: waiting for one"
        if st.started_at != started:
            return Decision("keep", waiting)
        if st.warned_cull_at is not None:
            if st.warned_cull_at <= now:
                return None
            return Decision(
                "warn",
                f"warned before the culler restarted: culled at {st.warned_cull_at:%H:%M %Z}"
                " unless activity is reported",
                cull_at=st.warned_cull_at,
                state="warned",
                cause=st.warned_cause,
            )
        if st.kept_until is not None and now < st.kept_until:
            reason = f"kept by its owner until {st.kept_until:%H:%M %Z}"
            return Decision("keep", reason, state="kept")
        return Decision("keep", waiting)

    # ------------------------------------------------------------------ jobs
    def idle_jobs(self, groups_of: Callable[[str], list[str]]) -> list[dict[str, Any]]:
        """Jobs whose GPUs stayed idle for their owner's policy duration (report or kill)."""
        now = self.now()
        out = []
        for job_id, js in self.jobs.items():
            ent = self.entitlement(js.groups if js.groups is not None else groups_of(js.owner))
            rules = JobIdleRules() if ent is None else JobIdleRules.from_entitlement(ent)
            js.book.retarget(rules.gpu_threshold)
            verdict = decide_job(
                JobActivity(
                    job_id,
                    js.owner,
                    js.gpus,
                    js.started,
                    gpu_idle_since=js.book.idle_since,
                    gpu_busy_since=js.book.busy_since,
                    gpu_idle_peak_pct=js.book.peak_pct,
                ),
                rules,
                now,
            )
            js.last = verdict
            if verdict.action != "ok":
                out.append(
                    {
                        "job_id": job_id,
                        "owner": js.owner,
                        "gpus": js.gpus,
                        "action": verdict.action,
                        "reason": verdict.reason,
                        "idle_since": verdict.idle_since.isoformat()
                        if verdict.idle_since
                        else None,
                    }
                )
        return out

    def record_job_report(
        self,
        job_id: str,
        *,
        owner: str,
        groups: list[str],
        gpus: int,
        started: datetime,
        report: ActivityReport,
    ) -> None:
        """A GPU job's runner reported (its pod already matched: the handler's business)."""
        ent = self.entitlement(groups)
        rules = JobIdleRules() if ent is None else JobIdleRules.from_entitlement(ent)
        js = self.jobs.get(job_id)
        if js is None or js.started != started:  # a new run (a retry, after a preemption)
            js = self.jobs[job_id] = _JobState(
                owner, gpus, started, GpuIdleTracker(rules.gpu_threshold)
            )
        js.groups, js.last_report = groups, report.sampled_at
        js.book.retarget(rules.gpu_threshold)
        pct = report.gpu_max_utilization_pct
        if pct is not None:
            js.book.update(report.sampled_at, pct)

    async def act_on_idle_jobs(self) -> list[tuple[str, str]]:
        """Report each idle episode of a job once to the gateway (which tells the owner) and,
        when the policy says so, stop the job; ``(job id, action)`` done. A job silent for
        five report intervals (at least 10 min) has ended and is forgotten."""
        now = self.now()
        silent = timedelta(seconds=max(600.0, 5 * self.report_interval))
        for job_id, js in list(self.jobs.items()):
            if js.last_report is not None and now - js.last_report > silent:
                del self.jobs[job_id]
        done: list[tuple[str, str]] = []
        actions = self.job_actions
        for item in self.idle_jobs(lambda _user: []):
            js = self.jobs[item["job_id"]]
            since = js.last.idle_since if js.last is not None else None
            if since is None or js.acted_since == since:
                continue
            line = f"job {item['job_id']} of {js.owner}: {item['action']}: {item['reason']}"
            if self.dry_run or actions is None:
                log.info("%s (not acted on: %s)", line, "dry run" if self.dry_run else "no gateway")
                continue
            reason = f"its GPUs were idle: {item['reason']}"
            if not await actions.report_idle(item["job_id"], since.isoformat(), reason,
                                             item["action"]):  # fmt: skip
                log.warning("%s: the gateway did not take the report (retried)", line)
                continue
            if item["action"] == "kill":
                answer = await actions.cancel(item["job_id"], CULLER_ACTOR, reason[:500])
                if getattr(answer, "status", 500) >= 400 and getattr(answer, "status", 0) != 409:
                    log.warning("%s: stopping it failed (retried)", line)
                    continue
            js.acted_since = since
            log.warning(line)
            done.append((item["job_id"], str(item["action"])))
        return done

    # ------------------------------------------------------------------ the cycle
    def _activity(self, user: str, name: str, started: datetime, server: dict) -> ServerActivity:
        rep = self.reports.get((user, name))
        return ServerActivity(
            user=user,
            server_name=name,
            started_at=started,
            last_kernel_activity=rep.last_kernel_activity if rep else None,
            last_terminal_activity=rep.last_terminal_activity if rep else None,
            kernels_busy=rep.kernels_busy if rep else False,
            gpus=len(rep.gpus) if rep else 0,
            last_browser_activity=_time(server.get("last_activity")),
        )

    async def run_cycle(self) -> CycleResult:
        async with self._lock:
            return await self._run_cycle()

    async def _run_cycle(self) -> CycleResult:
        t0 = time.perf_counter()
        started = self.now()
        req0 = self.hub.requests
        result = CycleResult(started, 0.0, 0, 0, 0, dry_run=self.dry_run)
        seen: set[Key] = set()
        to_stop: list[tuple[str, str, Decision]] = []
        async for page in self.hub.active_user_pages():
            result.pages += 1
            now = self.now()
            for user in page:
                self.hub.remember_user(user)
                groups = list(user.get("groups") or [])
                rules = self.rules_for(groups)
                for name, server in (user.get("servers") or {}).items():
                    if not server.get("ready"):
                        continue  # pending spawn or stop: not ours to judge
                    server_started = _time(server.get("started")) or now
                    key = (user["name"], name)
                    seen.add(key)
                    result.servers += 1
                    activity = self._activity(user["name"], name, server_started, server)
                    st = self.book.state(*key)
                    if st.started_at is None:  # reports came first: keep their GPU summary
                        st.started_at = server_started
                    waiting = self._waiting(key, server_started, now)
                    if waiting is not None:
                        d = waiting
                    else:
                        d = self.book.observe(activity, rules, now)
                        await self._save(key)
                    view = self.servers.get(key)
                    if view is None or view.started != server_started:
                        view = self.servers[key] = ServerView(
                            user["name"], name, groups, server_started, activity.gpus
                        )
                    view.groups, view.gpus = groups, activity.gpus
                    view.decision, view.decided_at = d, now
                    view.last_browser_activity = activity.last_browser_activity
                    line = describe(d, f"{user['name']}/{name}", dry_run=self.dry_run)
                    if d.action == "cull":
                        result.culled += 1
                        to_stop.append((user["name"], name, d))
                        log.warning(line)
                    elif d.action == "warn":
                        result.warned += 1
                        if d.first_warning:
                            WARNINGS.labels(d.cause or "idle").inc()
                        log.info(line)
                    else:
                        result.kept += 1
                        if self.log_keeps:
                            log.info(line)
                    result.lines.append(line)
        for user_name, name, d in to_stop:
            if self.dry_run:
                continue
            try:
                await self.hub.stop_server(user_name, name)
                CULLS.labels(d.cause or "idle").inc()
                await self._forget((user_name, name))
            except Exception as e:  # noqa: BLE001 - one failure must not stop the cycle
                result.errors += 1
                CULL_ERRORS.inc()
                log.error("%s/%s: stopping failed: %s", user_name, name, e)
        # Stopped by its owner or the hub meanwhile (saved ones: while no culler ran).
        for key in set(self.servers) | set(self._saved):
            if key not in seen:
                await self._forget(key)
        try:
            await self.act_on_idle_jobs()
        except Exception as e:  # noqa: BLE001 - jobs must not stop the servers' cycle
            result.errors += 1
            log.error("acting on jobs holding idle GPUs failed: %s", e)
        result.seconds = time.perf_counter() - t0
        CYCLE_SECONDS.observe(result.seconds)
        result.hub_requests = self.hub.requests - req0
        self.last_cycle = result
        log.info(
            "cycle%s: %d servers in %d page(s), %d hub request(s), kept %d, warned %d, "
            "culled %d, %.3f s",
            " (dry run)" if self.dry_run else "",
            result.servers,
            result.pages,
            result.hub_requests,
            result.kept,
            result.warned,
            result.culled,
            result.seconds,
        )
        return result
