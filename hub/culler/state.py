"""Per-server idle bookkeeping: warnings in force, "keep my server" extensions, GPU summary.

Still pure (time is a parameter); the culler service owns one :class:`ServerBook` and feeds it
activity reports and decisions. What must outlive a culler restart (keeps, a warning in force,
the server run they belong to) is snapshotted as a :class:`SavedState`; the service's store
writes and reads those, this module never does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from .rules import Cause, CullRules, Decision, ServerActivity, decide, format_duration

__all__ = [
    "CullStatus",
    "GpuIdleTracker",
    "SavedState",
    "ServerBook",
    "ServerState",
    "apply_decision",
    "request_keep",
]


@dataclass
class GpuIdleTracker:
    """Run-length summary of a stream of (time, max GPU utilisation) samples.

    Keeps O(1) state however long the stretch: where the current under-threshold stretch
    started, its peak, or where the current busy stretch started.
    """

    threshold: float
    idle_since: datetime | None = None
    busy_since: datetime | None = None
    peak_pct: float | None = None
    last_at: datetime | None = None

    def update(self, at: datetime, max_utilization_pct: float) -> None:
        if self.last_at is not None and at < self.last_at:
            return  # out-of-order report
        self.last_at = at
        if max_utilization_pct >= self.threshold:
            self.idle_since, self.peak_pct = None, None
            if self.busy_since is None:
                self.busy_since = at
        else:
            self.busy_since = None
            if self.idle_since is None:
                self.idle_since, self.peak_pct = at, max_utilization_pct
            else:
                self.peak_pct = max(self.peak_pct or 0.0, max_utilization_pct)

    def retarget(self, threshold: float) -> None:
        """The policy changed the threshold: the summary is meaningless, start over."""
        if threshold != self.threshold:
            self.threshold = threshold
            self.idle_since = self.busy_since = self.peak_pct = self.last_at = None


@dataclass(frozen=True)
class SavedState:
    """The part of a server's state that must survive a culler restart: a restart must neither
    give back keeps already used, nor forget a keep or a warning's deadline. ``started_at``
    ties it to one run of the server, so a new run starts afresh."""

    user: str
    server_name: str
    started_at: datetime | None
    keeps_used: int = 0
    keep_seconds_used: float = 0.0
    kept_until: datetime | None = None
    warned_at: datetime | None = None
    warned_cull_at: datetime | None = None
    warned_cause: Cause | None = None


_SAVED_FIELDS = tuple(f.name for f in fields(SavedState))


@dataclass
class ServerState:
    """What the culler remembers about one server between cycles."""

    user: str
    server_name: str = ""
    started_at: datetime | None = None
    warned_cull_at: datetime | None = None
    warned_cause: Cause | None = None
    warned_at: datetime | None = None
    keeps_used: int = 0
    keep_seconds_used: float = 0.0
    kept_until: datetime | None = None
    gpu: GpuIdleTracker | None = None
    last_decision: Decision | None = None

    def reset_for_new_start(self, started_at: datetime) -> None:
        """A new server start: warnings and keeps are per run of the server."""
        self.started_at = started_at
        self.warned_cull_at = self.warned_cause = self.warned_at = None
        self.keeps_used, self.keep_seconds_used, self.kept_until = 0, 0.0, None
        self.gpu = None
        self.last_decision = None

    def saved(self) -> SavedState:
        return SavedState(**{name: getattr(self, name) for name in _SAVED_FIELDS})

    @classmethod
    def restored(cls, saved: SavedState) -> ServerState:
        return cls(**{name: getattr(saved, name) for name in _SAVED_FIELDS})


def apply_decision(state: ServerState, decision: Decision, now: datetime) -> None:
    """Record a decision: a warning starts or stays in force; anything else withdraws it
    (activity resets the warning)."""
    state.last_decision = decision
    if decision.action == "warn":
        if state.warned_cull_at != decision.cull_at or state.warned_cause != decision.cause:
            state.warned_at = now
        state.warned_cull_at, state.warned_cause = decision.cull_at, decision.cause
    elif decision.action == "keep":
        state.warned_cull_at = state.warned_cause = state.warned_at = None


def request_keep(
    state: ServerState, now: datetime, rules: CullRules, seconds: float | None = None
) -> tuple[bool, str]:
    """ "Keep my server": postpone idle culling by ``seconds`` (default: an equal share of
    ``keep_max_total`` per allowed keep), within the policy's count and total. Returns
    ``(ok, message)``; a refusal says why."""
    if state.user in rules.exempt_users:
        return True, "you are exempt from culling: nothing to postpone"
    if rules.keep_max_count <= 0 or rules.keep_max_total_seconds <= 0:
        return False, "your group's policy does not allow keeping idle servers"
    if rules.max_age_seconds > 0 and state.started_at is not None:
        limit = state.started_at + timedelta(seconds=rules.max_age_seconds)
        if now >= limit - timedelta(seconds=rules.warn_before_seconds):
            return False, (
                f"this server reaches its maximum age ({format_duration(rules.max_age_seconds)})"
                f" at {limit:%Y-%m-%d %H:%M %Z}; keeping cannot extend that"
            )
    if state.keeps_used >= rules.keep_max_count:
        return False, (
            f"already kept {state.keeps_used} time{'s' if state.keeps_used != 1 else ''}: "
            f"the most your group's policy allows is {rules.keep_max_count}"
        )
    left = rules.keep_max_total_seconds - state.keep_seconds_used
    if left <= 0:
        return False, (
            f"already kept for {format_duration(state.keep_seconds_used)} in all: the most your "
            f"group's policy allows is {format_duration(rules.keep_max_total_seconds)}"
        )
    want = rules.keep_seconds_each if seconds is None else seconds
    if want <= 0:
        return False, "ask for a positive duration"
    grant = min(float(want), left)
    base = state.kept_until if state.kept_until is not None and state.kept_until > now else now
    state.kept_until = base + timedelta(seconds=grant)
    state.keeps_used += 1
    state.keep_seconds_used += grant
    state.warned_cull_at = state.warned_cause = state.warned_at = None
    count_left = rules.keep_max_count - state.keeps_used
    return True, (
        f"kept until {state.kept_until:%Y-%m-%d %H:%M %Z}".rstrip()
        + f" ({format_duration(grant)}); {count_left} keep{'s' if count_left != 1 else ''} and "
        f"{format_duration(rules.keep_max_total_seconds - state.keep_seconds_used)} left"
    )


@dataclass(frozen=True)
class CullStatus:
    """What the user's server shows (``GET /servers/me``)."""

    state: Literal["active", "idle", "warned", "kept", "exempt"]
    reason: str
    cull_at: datetime | None
    keeps_left: int
    keep_seconds_left: float

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "cull_at": None if self.cull_at is None else self.cull_at.isoformat(),
            "keeps_left": self.keeps_left,
            "keep_seconds_left": int(self.keep_seconds_left),
        }


@dataclass
class ServerBook:
    """All servers' states, keyed by (user, server_name)."""

    servers: dict[tuple[str, str], ServerState] = field(default_factory=dict)

    def state(self, user: str, server_name: str = "") -> ServerState:
        key = (user, server_name)
        st = self.servers.get(key)
        if st is None:
            st = self.servers[key] = ServerState(user, server_name)
        return st

    def restore(self, saved: SavedState) -> None:
        """Take back what a previous culler saved (at start, before any report)."""
        self.servers[(saved.user, saved.server_name)] = ServerState.restored(saved)

    def forget(self, user: str, server_name: str = "") -> None:
        """The server stopped (culled or by its owner)."""
        self.servers.pop((user, server_name), None)

    def record_gpu(
        self, user: str, server_name: str, at: datetime, max_pct: float, rules: CullRules
    ) -> None:
        """Feed one GPU sample (highest utilisation over the server's GPUs)."""
        st = self.state(user, server_name)
        if st.gpu is None:
            st.gpu = GpuIdleTracker(rules.gpu_threshold)
        st.gpu.retarget(rules.gpu_threshold)
        st.gpu.update(at, max_pct)

    def observe(self, activity: ServerActivity, rules: CullRules, now: datetime) -> Decision:
        """Decide about one server with what the book remembers, and remember the decision.

        The book fills in keeps and (if the activity carries no GPU data) its GPU summary.
        """
        st = self.state(activity.user, activity.server_name)
        if st.started_at != activity.started_at:
            st.reset_for_new_start(activity.started_at)
        a = replace(activity, keeps_used=st.keeps_used, keep_seconds_used=st.keep_seconds_used)
        if (
            st.gpu is not None
            and not a.gpu_samples
            and a.gpu_idle_since is None
            and a.gpu_busy_since is None
        ):
            st.gpu.retarget(rules.gpu_threshold)
            a = replace(
                a,
                gpu_idle_since=st.gpu.idle_since,
                gpu_busy_since=st.gpu.busy_since,
                gpu_idle_peak_pct=st.gpu.peak_pct,
            )
        d = decide(
            a,
            rules,
            now,
            warned_cull_at=st.warned_cull_at,
            warned_cause=st.warned_cause,
            kept_until=st.kept_until,
        )
        apply_decision(st, d, now)
        return d

    def keep(
        self,
        user: str,
        server_name: str,
        now: datetime,
        rules: CullRules,
        seconds: float | None = None,
    ) -> tuple[bool, str]:
        return request_keep(self.state(user, server_name), now, rules, seconds)

    def status(
        self, user: str, server_name: str, rules: CullRules, now: datetime | None = None
    ) -> CullStatus:
        st = self.state(user, server_name)
        d = st.last_decision
        count = max(0, rules.keep_max_count - st.keeps_used)
        secs = max(0.0, rules.keep_max_total_seconds - st.keep_seconds_used)
        if count == 0 or secs <= 0:
            count, secs = 0, 0.0
        if st.kept_until is not None and (now is None or now < st.kept_until):
            reason = f"kept by its owner until {st.kept_until:%Y-%m-%d %H:%M %Z}".rstrip()
            return CullStatus("kept", reason, None, count, secs)
        if d is None:
            return CullStatus("active", "no report yet", None, count, secs)
        return CullStatus(d.state, d.reason, d.cull_at, count, secs)
