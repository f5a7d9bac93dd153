"""Pure culling decisions: no I/O, no clock reads (``now`` is always a parameter).

Idle, per server (docs/culling.md has the full story):

* CPU server: no kernel execution and no terminal input for ``timeout``.
* GPU server: that, *and* every GPU under ``gpu_threshold`` percent for ``gpu_idle_after``.
* Active, whatever else: a kernel executing (``execution_state == "busy"``), or (GPU server) a
  GPU at or above the threshold. Browser activity is never evidence of work: an open tab does
  not keep a server alive.
* ``max_age`` culls regardless of activity (after a warning; "keep my server" cannot extend it).
* A duration rule set to 0 is off (``timeout: 0`` or, on GPU servers, ``gpu_idle_after: 0``:
  never culled for idleness; ``max_age: 0``: no age limit; ``warn_before: 0``: no warning).

Warn, then cull: the first decision that finds a server cullable answers ``warn`` with
``cull_at = now + warn_before``; later decisions answer ``warn`` (same ``cull_at``) until
``now >= cull_at``, then ``cull`` if the server is still cullable. Activity in between answers
``keep`` and the caller forgets the warning (:mod:`gpulab.hub.culler.state` does this).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

# Re-exported: the culler's messages and the dashboard spell durations as the policy does.
from ..policy.quantities import format_duration

__all__ = [
    "CullRules",
    "Decision",
    "GpuIdleness",
    "GpuPoint",
    "JobActivity",
    "JobGpuIdle",
    "JobIdleRules",
    "ServerActivity",
    "decide",
    "decide_job",
    "describe",
    "format_duration",
    "gpu_idleness",
    "would_cull",
]

Action = Literal["keep", "warn", "cull"]
State = Literal["active", "idle", "warned", "kept", "exempt"]
Cause = Literal["idle", "max_age"]


# ----------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class CullRules:
    """The idle rules of one user (their groups merged), in seconds. Mirrors ``IdleRules``."""

    timeout_seconds: int = 3600
    max_age_seconds: int = 0
    gpu_threshold: float = 10
    gpu_idle_after_seconds: int = 1800
    warn_before_seconds: int = 600
    keep_max_count: int = 2
    keep_max_total_seconds: int = 8 * 3600
    exempt_users: frozenset[str] = frozenset()

    @classmethod
    def from_idle_rules(cls, idle: Any) -> CullRules:
        """From a ``gpulab.hub.policy.IdleRules`` (or anything with the same attributes)."""
        return cls(
            timeout_seconds=int(idle.timeout_seconds),
            max_age_seconds=int(idle.max_age_seconds),
            gpu_threshold=float(idle.gpu_threshold),
            gpu_idle_after_seconds=int(idle.gpu_idle_after_seconds),
            warn_before_seconds=int(idle.warn_before_seconds),
            keep_max_count=int(idle.keep_max_count),
            keep_max_total_seconds=int(idle.keep_max_total_seconds),
            exempt_users=frozenset(idle.exempt_users),
        )

    @classmethod
    def from_entitlement(cls, ent: Any) -> CullRules:
        """From a ``gpulab.hub.policy.Entitlement`` (its merged ``idle`` rules)."""
        return cls.from_idle_rules(ent.idle)

    @property
    def keep_seconds_each(self) -> int:
        """How long one "keep my server" postpones a cull: an equal share of the total."""
        if self.keep_max_count <= 0:
            return 0
        return self.keep_max_total_seconds // self.keep_max_count


@dataclass(frozen=True)
class JobIdleRules:
    """GPU-idle rules for detached jobs (``jobs.gpu_idle_report_after``, ``jobs.kill_gpu_idle``)."""

    gpu_threshold: float = 10
    report_after_seconds: int = 3600
    kill: bool = False

    @classmethod
    def from_entitlement(cls, ent: Any) -> JobIdleRules:
        return cls(
            gpu_threshold=float(ent.idle.gpu_threshold),
            report_after_seconds=int(ent.job_gpu_idle_report_after_seconds),
            kill=bool(ent.job_kill_gpu_idle),
        )


# ----------------------------------------------------------------------------- inputs


class GpuPoint(NamedTuple):
    """One GPU sample of a server: the highest utilisation of its GPUs at ``at``."""

    at: datetime
    utilization_pct: float


@dataclass(frozen=True)
class ServerActivity:
    """What the culler knows about one running server.

    GPU utilisation comes either as ``gpu_samples`` (a recent window, oldest first) or as a
    summary (``gpu_idle_since``/``gpu_busy_since``, computed against the same threshold, e.g. by
    :class:`gpulab.hub.culler.state.GpuIdleTracker`), or both (the summary then extends a
    window that starts idle). A GPU server with neither is judged by the kernel/terminal rule.
    """

    user: str
    server_name: str
    started_at: datetime
    last_kernel_activity: datetime | None = None
    last_terminal_activity: datetime | None = None
    kernels_busy: bool = False
    gpus: int = 0
    gpu_samples: Sequence[GpuPoint | tuple[datetime, float]] = ()
    gpu_idle_since: datetime | None = None
    gpu_busy_since: datetime | None = None
    gpu_idle_peak_pct: float | None = None
    last_browser_activity: datetime | None = None  # reported in reasons, never keeps a server
    exempt: bool = False
    keeps_used: int = 0
    keep_seconds_used: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.user}/{self.server_name}"


# ----------------------------------------------------------------------------- outputs


@dataclass(frozen=True)
class Decision:
    """What to do with one server now, and why (``reason`` is for humans and logs)."""

    action: Action
    reason: str
    cull_at: datetime | None = None
    state: State = "active"
    cause: Cause | None = None  # why it is warned/culled
    first_warning: bool = False  # this decision issues the warning (notify the user now)
    cullable_at: datetime | None = None  # when it becomes cullable if nothing happens
    recheck_at: datetime | None = None  # earliest time this decision can change without input
    keeps_left: int = 0
    keep_seconds_left: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "state": self.state,
            "reason": self.reason,
            "cause": self.cause,
            "cull_at": _iso(self.cull_at),
            "cullable_at": _iso(self.cullable_at),
            "keeps_left": self.keeps_left,
            "keep_seconds_left": int(self.keep_seconds_left),
        }


def would_cull(decision: Decision) -> str:
    """The dry-run wording of a decision: "would cull: …", "would warn (cull at …): …", …"""
    if decision.action == "cull":
        return f"would cull: {decision.reason}"
    if decision.action == "warn":
        return f"would warn (cull at {_hm(decision.cull_at)}): {decision.reason}"
    return f"would keep: {decision.reason}"


def describe(decision: Decision, label: str, *, dry_run: bool = False) -> str:
    """One log line for a decision about server ``label`` ("alice/" or "alice/gpu")."""
    if dry_run:
        return f"{label}: {would_cull(decision)}"
    if decision.action == "cull":
        return f"{label}: culling: {decision.reason}"
    if decision.action == "warn":
        return f"{label}: warned, cull at {_hm(decision.cull_at)}: {decision.reason}"
    return f"{label}: keep: {decision.reason}"


# ----------------------------------------------------------------------------- helpers


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _hm(t: datetime | None) -> str:
    return "-" if t is None else t.strftime("%Y-%m-%d %H:%M %Z").strip()


def _pct(p: float) -> str:
    return f"{p:.0f}%"


@dataclass(frozen=True)
class GpuIdleness:
    """GPU state of a server against a threshold."""

    known: bool  # any GPU data at all
    busy: bool  # latest utilisation >= threshold
    idle_since: datetime | None = None  # start of the current under-threshold stretch
    peak_pct: float | None = None  # highest utilisation in that stretch
    latest_pct: float | None = None


def gpu_idleness(
    samples: Sequence[GpuPoint | tuple[datetime, float]],
    threshold: float,
    *,
    idle_since: datetime | None = None,
    busy_since: datetime | None = None,
    peak_pct: float | None = None,
) -> GpuIdleness:
    """Where the current under-threshold stretch starts (``samples`` oldest first).

    The stretch starts at the first sample after the last one at or above the threshold (a
    conservative bound). If every sample is under the threshold, a summary ``idle_since`` older
    than the window extends it.
    """
    if samples:
        latest = float(samples[-1][1])
        if latest >= threshold:
            return GpuIdleness(known=True, busy=True, latest_pct=latest)
        start = samples[-1][0]
        peak = latest
        whole_window = True
        for at, pct in reversed(samples):
            if pct >= threshold:
                whole_window = False
                break
            start = at
            peak = max(peak, float(pct))
        if whole_window and idle_since is not None and idle_since < start:
            start = idle_since
            if peak_pct is not None:
                peak = max(peak, peak_pct)
        return GpuIdleness(
            known=True, busy=False, idle_since=start, peak_pct=peak, latest_pct=latest
        )
    if idle_since is not None:
        return GpuIdleness(known=True, busy=False, idle_since=idle_since, peak_pct=peak_pct)
    if busy_since is not None:
        return GpuIdleness(known=True, busy=True)
    return GpuIdleness(known=False, busy=False)


@dataclass(frozen=True)
class _Idle:
    active_reason: str | None  # set: the server is active, and why
    cullable_at: datetime | None  # None with no active_reason: never (rule off)
    idle_reason: str  # why it is (or will be) idle


def _assess(a: ServerActivity, rules: CullRules, now: datetime) -> _Idle:
    if a.kernels_busy:
        return _Idle("a kernel is executing", None, "")
    stamps = [t for t in (a.started_at, a.last_kernel_activity, a.last_terminal_activity) if t]
    quiet_since = max(stamps)
    quiet_for = now - quiet_since
    what = "no kernel or terminal activity"
    browser = ""
    if a.last_browser_activity is not None and now - a.last_browser_activity < timedelta(
        seconds=max(rules.timeout_seconds, 3600)
    ):
        browser = f" (browser tab active {format_duration(now - a.last_browser_activity)} ago: not counted)"
    if rules.timeout_seconds <= 0:
        return _Idle(None, None, f"{what} for {format_duration(quiet_for)}; idle culling is off")
    kernel_cullable = quiet_since + timedelta(seconds=rules.timeout_seconds)
    kernel_part = f"{what} for {format_duration(quiet_for)}"
    kernel_part += f" ≥ {format_duration(rules.timeout_seconds)}" if now >= kernel_cullable else ""
    if a.gpus <= 0:
        return _Idle(None, kernel_cullable, kernel_part + browser)

    gpu = gpu_idleness(
        a.gpu_samples,
        rules.gpu_threshold,
        idle_since=a.gpu_idle_since,
        busy_since=a.gpu_busy_since,
        peak_pct=a.gpu_idle_peak_pct,
    )
    thr = _pct(rules.gpu_threshold)
    if gpu.busy:
        at = f" at {_pct(gpu.latest_pct)}" if gpu.latest_pct is not None else ""
        return _Idle(f"GPU busy{at} (≥ {thr})", None, "")
    if not gpu.known:
        return _Idle(
            None, kernel_cullable, kernel_part + " (no GPU utilisation reported)" + browser
        )
    if rules.gpu_idle_after_seconds <= 0:
        return _Idle(None, None, f"{kernel_part}; GPU idle culling is off")
    gpu_since = max(gpu.idle_since or a.started_at, a.started_at)
    gpu_cullable = gpu_since + timedelta(seconds=rules.gpu_idle_after_seconds)
    peak = f"max {_pct(gpu.peak_pct)} < {thr}" if gpu.peak_pct is not None else f"< {thr}"
    gpu_part = f"GPU idle ({peak}) for {format_duration(now - gpu_since)}"
    if now >= gpu_cullable:
        gpu_part += f" ≥ {format_duration(rules.gpu_idle_after_seconds)}"
    return _Idle(None, max(kernel_cullable, gpu_cullable), f"{gpu_part} and {kernel_part}{browser}")


def _keeps_left(a: ServerActivity, rules: CullRules) -> tuple[int, float]:
    count = max(0, rules.keep_max_count - a.keeps_used)
    total = max(0.0, rules.keep_max_total_seconds - a.keep_seconds_used)
    if count == 0 or total <= 0:
        return 0, 0.0
    return count, total


def _min_time(*ts: datetime | None) -> datetime | None:
    present = [t for t in ts if t is not None]
    return min(present) if present else None


# ----------------------------------------------------------------------------- decisions


def decide(
    activity: ServerActivity,
    rules: CullRules,
    now: datetime,
    *,
    warned_cull_at: datetime | None = None,
    warned_cause: Cause | None = None,
    kept_until: datetime | None = None,
) -> Decision:
    """Keep, warn or cull one server at ``now``.

    ``warned_cull_at``/``warned_cause``: the warning in force (from an earlier decision), if
    any. ``kept_until``: the end of a "keep my server" postponement, if any.
    """
    a = activity
    keeps_left, keep_secs_left = _keeps_left(a, rules)
    common: dict[str, Any] = {"keeps_left": keeps_left, "keep_seconds_left": keep_secs_left}
    warn_before = timedelta(seconds=max(0, rules.warn_before_seconds))

    if a.exempt or a.user in rules.exempt_users:
        return Decision("keep", "exempt from culling", state="exempt", **common)

    # Max age: culls regardless of activity and of "keep my server".
    age_warn_at: datetime | None = None
    if rules.max_age_seconds > 0:
        age_limit = a.started_at + timedelta(seconds=rules.max_age_seconds)
        age_warn_at = age_limit - warn_before
        if now >= age_warn_at:
            cull_at = (
                warned_cull_at
                if warned_cull_at is not None and warned_cause == "max_age"
                else max(age_limit, now + warn_before)
            )
            age = format_duration(now - a.started_at)
            limit = format_duration(rules.max_age_seconds)
            if now >= cull_at:
                return Decision(
                    "cull",
                    f"server age {age} ≥ max age {limit}",
                    cull_at=cull_at,
                    state="warned",
                    cause="max_age",
                    **common,
                )
            return Decision(
                "warn",
                f"server reaches its max age {limit} at {_hm(age_limit)} (age {age})",
                cull_at=cull_at,
                state="warned",
                cause="max_age",
                first_warning=not (warned_cull_at is not None and warned_cause == "max_age"),
                cullable_at=age_limit,
                recheck_at=cull_at,
                **common,
            )

    if kept_until is not None and now < kept_until:
        return Decision(
            "keep",
            f"kept by its owner until {_hm(kept_until)}",
            state="kept",
            recheck_at=_min_time(kept_until, age_warn_at),
            **common,
        )

    idle = _assess(a, rules, now)
    if idle.active_reason is not None:
        reason = "active: " + idle.active_reason
        if warned_cull_at is not None:
            reason += " (warning withdrawn)"
        return Decision("keep", reason, state="active", recheck_at=age_warn_at, **common)
    if idle.cullable_at is None or now < idle.cullable_at:
        until = "" if idle.cullable_at is None else f"; cullable at {_hm(idle.cullable_at)}"
        withdrawn = " (warning withdrawn)" if warned_cull_at is not None else ""
        return Decision(
            "keep",
            f"idle: {idle.idle_reason}{until}{withdrawn}",
            state="idle",
            cullable_at=idle.cullable_at,
            recheck_at=_min_time(idle.cullable_at, age_warn_at),
            **common,
        )

    # Cullable now.
    if warned_cull_at is not None and warned_cause == "idle":
        if now >= warned_cull_at:
            return Decision(
                "cull",
                idle.idle_reason,
                cull_at=warned_cull_at,
                state="warned",
                cause="idle",
                cullable_at=idle.cullable_at,
                **common,
            )
        return Decision(
            "warn",
            idle.idle_reason,
            cull_at=warned_cull_at,
            state="warned",
            cause="idle",
            cullable_at=idle.cullable_at,
            recheck_at=_min_time(warned_cull_at, age_warn_at),
            **common,
        )
    if warn_before.total_seconds() <= 0:
        return Decision(
            "cull",
            idle.idle_reason,
            cull_at=now,
            state="warned",
            cause="idle",
            cullable_at=idle.cullable_at,
            **common,
        )
    cull_at = now + warn_before
    return Decision(
        "warn",
        idle.idle_reason,
        cull_at=cull_at,
        state="warned",
        cause="idle",
        first_warning=True,
        cullable_at=idle.cullable_at,
        recheck_at=_min_time(cull_at, age_warn_at),
        **common,
    )


# ----------------------------------------------------------------------------- jobs


@dataclass(frozen=True)
class JobActivity:
    """A running job's GPU utilisation (window and/or summary, as for servers)."""

    job_id: str
    owner: str
    gpus: int
    started_at: datetime
    gpu_samples: Sequence[GpuPoint | tuple[datetime, float]] = ()
    gpu_idle_since: datetime | None = None
    gpu_busy_since: datetime | None = None
    gpu_idle_peak_pct: float | None = None


@dataclass(frozen=True)
class JobGpuIdle:
    """``report``: tell the owner and admins; ``kill``: policy says kill; ``ok``: nothing.

    ``idle_since`` identifies the idle episode: report each episode once.
    """

    job_id: str
    action: Literal["ok", "report", "kill"]
    reason: str
    idle_since: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def decide_job(job: JobActivity, rules: JobIdleRules, now: datetime) -> JobGpuIdle:
    """Report (or, if the policy says so, kill) a job whose GPUs stay under the threshold."""
    if job.gpus <= 0:
        return JobGpuIdle(job.job_id, "ok", "CPU job")
    if rules.report_after_seconds <= 0:
        return JobGpuIdle(job.job_id, "ok", "GPU-idle reporting is off")
    gpu = gpu_idleness(
        job.gpu_samples,
        rules.gpu_threshold,
        idle_since=job.gpu_idle_since,
        busy_since=job.gpu_busy_since,
        peak_pct=job.gpu_idle_peak_pct,
    )
    thr = _pct(rules.gpu_threshold)
    if not gpu.known:
        return JobGpuIdle(job.job_id, "ok", "no GPU utilisation reported")
    if gpu.busy:
        return JobGpuIdle(job.job_id, "ok", f"GPU busy (≥ {thr})")
    since = max(gpu.idle_since or job.started_at, job.started_at)
    idle_for = now - since
    peak = f"max {_pct(gpu.peak_pct)} < {thr}" if gpu.peak_pct is not None else f"< {thr}"
    if idle_for < timedelta(seconds=rules.report_after_seconds):
        return JobGpuIdle(
            job.job_id, "ok", f"GPU idle ({peak}) for {format_duration(idle_for)}", since
        )
    reason = (
        f"GPU idle ({peak}) for {format_duration(idle_for)} "
        f"≥ {format_duration(rules.report_after_seconds)}"
    )
    return JobGpuIdle(job.job_id, "kill" if rules.kill else "report", reason, since)
