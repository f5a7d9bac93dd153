"""GPU scheduling benchmark: a month of demand from 100 researchers (`scheduling_trace.py`)
replayed with an accelerated clock under three admission policies, through the real decision
code.

    .venv/bin/python benchmarks/scheduling.py [--users 100] [--days 30] [--seed 11]
        [--checkpoint 15] [--policies a,b,c]

Policies:

(a) today's hard quotas: gpulab's own admission check (:func:`gpulab.hub.workload.admission.admit`
    over :func:`gpulab.hub.workload.holdings.count_usage` of the pods and Jobs that run), a
    request over quota answered ``429``; the researcher (or their script) asks again every
    15 minutes until it is admitted. A group's idle GPUs never serve another group.
(b) queueing without borrowing: every server and job waits in its queue, admitted by kubesim's
    Kueue core, fed the Kueue objects :mod:`gpulab.hub.kueue.render` renders from the same
    policy with lending switched off (each group's quota is its own). A server not admitted
    within its group's ``wait_for_gpus`` fails to spawn; its owner starts it again 15 minutes
    later.
(c) queueing with borrowing and preemption: the same, with the benchmark policy's lending and
    borrowing limits: jobs marked ``preemptible`` run on other groups' idle GPUs and are
    preempted when the lender needs them back.

The clock is simulated: the replay jumps from event to event (an arrival, a retry, a job's end)
and asks the policy what to admit (and, for (c), whom to evict) at each one, so a month replays
in a minute or two. Quota is judged on GPUs (the trace's only scarce resource); placing pods on nodes is
kubesim's scheduler's job and not modelled here.

**Preemption and checkpoints.** Every job follows the checkpoint convention and saves its state
every ``--checkpoint`` minutes of progress (15 by default); an evicted job loses the work since its
last checkpoint, holds its GPUs for the runner's grace period (``GRACE_MINUTES``, 2) while its
pods stop, and resuming costs ``RESUME_MINUTES`` (loading the checkpoint) before it makes
progress again. All three count as GPU-hours lost to preemption.

Figures, per policy: GPU allocation as % of capacity while demand (GPUs of all work asked for
and not finished) exceeds capacity; busy GPU-hours served (GPU time of work that counted:
excluding time lost to preemption); p50/p95 queue wait (submission to first start) per group;
p95 wait of in-quota work (non-preemptible work that fits its user's and group's quota next to
everything of its group already waiting or running); preemptions (and those within 5 minutes
of the victim's admission: churn) and GPU-hours lost to them; requests refused (429) or spawns
given up and asked again; quota violations, checked at every step from the admitted set alone, against the benchmark
policy (never against what the policy under test was fed).

Goals (sharing GPUs instead of rationing them, docs/scheduling.md; figures: docs/benchmarks.md): (c) allocation >= 85 % while demand
exceeds capacity, p95 wait of in-quota work <= 5 min, 0 quota violations, GPU-hours lost to
preemption <= 2 % of GPU-hours served.
"""

from __future__ import annotations

import argparse
import heapq
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gpulab.hub.jobs.manifest import TERMINATION_GRACE_SECONDS
from gpulab.hub.kueue import names as kueue_names
from gpulab.hub.kueue.render import render_policy, render_user
from gpulab.hub.policy import Policy
from gpulab.hub.policy.parse import parse_policy
from gpulab.hub.workload.admission import WorkloadRequest, admit
from gpulab.hub.workload.holdings import count_usage
from gpulab.hub.workload.labels import (
    APP,
    GPUS_LABEL,
    GROUP_LABEL,
    JOB_ID_LABEL,
    MANAGED_BY_LABEL,
    USER_LABEL,
)
from gpulab.kubesim.kueue import core

# The rendered objects are read exactly as kubesim's Kueue controller reads them from the API.
from gpulab.kubesim.kueue.controller import queue_spec, resource_groups
from report import record, sized
from scheduling_trace import CAPACITY, GROUPS, Trace, Work, make_trace

BENCH = "scheduling"
RETRY_MINUTES = 15.0  # (a): how soon a refused researcher or script asks again
RESUME_MINUTES = 2.0  # loading a checkpoint after a preempted job is readmitted
CHURN_MINUTES = 5.0  # a preemption this soon after admission: admitted only to be preempted
IMAGE = "harbor.local/shared/pytorch:2.4-cuda12.4"
GPU_TYPE = "a100"
QUOTA_USER = 8
# How long an evicted job holds its GPUs: the runner's grace period after SIGTERM (the most).
GRACE_MINUTES = TERMINATION_GRACE_SECONDS / 60
NAMESPACE = "gpulab-users"

ALLOCATION_GOAL = 85.0  # % of capacity while demand exceeds it
IN_QUOTA_WAIT_GOAL = 5.0  # minutes, p95
LOST_GOAL = 2.0  # % of GPU-hours served


# ----------------------------------------------------------------------------- the policy


def benchmark_policy_document(
    *, borrowing: bool = True, quota_scale: float = 1.0
) -> dict[str, Any]:
    """The benchmark's gpulab policy: one group per trace group, quotas that add up to the
    cluster; with ``borrowing``, every group lends all its idle GPUs (``gpu.lend_idle``) and
    may borrow all the others' for its preemptible jobs (``gpu.borrow_max``).
    ``quota_scale`` inflates every quota (a deliberately broken policy, for tests)."""
    groups: dict[str, Any] = {}
    for g in GROUPS:
        quota = round(g.quota * quota_scale)
        groups[g.name] = {
            "images": {"projects": ["shared"]},
            "profiles": ["gpu"],
            "gpu": {
                "types": [GPU_TYPE],
                "per_server": 2,
                "per_job": 8,
                "quota_user": round(QUOTA_USER * quota_scale),
                "quota_group": quota,
                "lend_idle": quota if borrowing else 0,
                "borrow_max": CAPACITY - g.quota if borrowing else 0,
            },
            "jobs": {"max_runtime": "24h", "max_concurrent": 30},
        }
    return {
        "version": 1,
        "platform": {"contact": "the benchmark"},
        "groups": groups,
        "profiles": {
            "gpu": {
                "display_name": "GPU notebook",
                "gpu_type": GPU_TYPE,
                "gpus": [1, 2],
                "cpu": {"guarantee": 1, "limit": 4},
                "memory": {"guarantee": "2Gi", "limit": "16Gi"},
            }
        },
        "gpu_types": {GPU_TYPE: {"resource": "nvidia.com/gpu", "node_selector": {"gpu": GPU_TYPE}}},
    }


def benchmark_policy(*, borrowing: bool = True, quota_scale: float = 1.0) -> Policy:
    document = benchmark_policy_document(borrowing=borrowing, quota_scale=quota_scale)
    return parse_policy(document, "benchmark policy")


@dataclass(frozen=True)
class Limits:
    """What the admitted set must respect at every step (the violation check's rules)."""

    capacity: int
    quota_user: dict[str, int]  # user -> GPUs
    quota_group: dict[str, int]
    lend: dict[str, int]  # group -> GPUs it may lend (0: borrowing off)
    borrow: dict[str, int]  # group -> GPUs its preemptible work may borrow

    @property
    def borrowing(self) -> bool:
        return any(self.borrow.values())


def limits_of(policy: Policy, trace: Trace) -> Limits:
    """The rules of ``policy`` (its groups' GPU quotas, lending and borrowing limits)."""
    groups = policy.groups
    return Limits(
        capacity=trace.capacity,
        quota_user={u: groups[g].gpu.quota_user for u, g in trace.users.items()},
        quota_group={name: g.gpu.quota_group for name, g in groups.items()},
        lend={name: min(g.gpu.lend_idle, g.gpu.quota_group) for name, g in groups.items()},
        borrow={name: g.gpu.borrow_max for name, g in groups.items()},
    )


def violations(running: Iterable[Work], limits: Limits) -> list[str]:
    """Every rule the admitted set breaks now, one line each (empty: none). Work counts against
    its user's and group's quota unless it borrows (preemptible, with borrowing on); borrowed
    GPUs count against the borrower's limit and the lenders' lending limits."""
    own_user: dict[str, int] = defaultdict(int)
    own_group: dict[str, int] = defaultdict(int)
    borrowed: dict[str, int] = defaultdict(int)
    total = 0
    for w in running:
        total += w.gpus
        if w.preemptible and limits.borrowing:
            borrowed[w.group] += w.gpus
        else:
            own_user[w.user] += w.gpus
            own_group[w.group] += w.gpus
    broken = [f"cluster: {total} GPUs > {limits.capacity}"] if total > limits.capacity else []
    broken += [
        f"user {u}: {n} GPUs > quota {limits.quota_user[u]}"
        for u, n in own_user.items()
        if n > limits.quota_user[u]
    ]
    broken += [
        f"group {g}: {n} GPUs > quota {limits.quota_group[g]}"
        for g, n in own_group.items()
        if n > limits.quota_group[g]
    ]
    broken += [
        f"group {g}: borrows {n} GPUs > limit {limits.borrow[g]}"
        for g, n in borrowed.items()
        if n > limits.borrow[g]
    ]
    # What the groups may lend now: the lendable part of each quota not used by the group itself
    # (a group keeps quota - lend for itself; beyond that its own work uses up what it lends).
    lendable = sum(
        max(0, lend - max(0, own_group[g] - (limits.quota_group[g] - lend)))
        for g, lend in limits.lend.items()
    )
    if sum(borrowed.values()) > lendable:
        broken.append(f"cohort: {sum(borrowed.values())} GPUs borrowed > {lendable} lent")
    return broken


# ----------------------------------------------------------------------------- policies


@dataclass
class Decisions:
    admitted: list[Work] = field(default_factory=list)
    evicted: list[Work] = field(default_factory=list)  # preempted: stop now, still hold GPUs
    released: list[Work] = field(default_factory=list)  # evicted ones whose pods are gone
    refused: list[Work] = field(default_factory=list)  # (a): 429, asked again later
    wake: list[float] = field(default_factory=list)  # when the policy wants to decide again


class Arbiter(Protocol):
    """One admission policy, driven by the replay."""

    name: str

    def ask(self, work: Work, now: float) -> None:
        """``work`` asks to run (arrives, or asks again after a refusal)."""

    def finished(self, work: Work, now: float) -> None:
        """``work`` ended (a job completed, a server was stopped): its GPUs are free."""

    def cycle(self, now: float) -> Decisions:
        """What changes now: admissions, evictions, refusals."""


def _meta(work: Work) -> dict[str, Any]:
    labels = {
        MANAGED_BY_LABEL: APP,
        USER_LABEL: work.user,
        GROUP_LABEL: work.group,
        GPUS_LABEL: str(work.gpus),
    }
    if work.kind == "job":
        labels[JOB_ID_LABEL] = f"job-{work.id}"
    return {"name": f"{work.kind}-{work.id}", "labels": labels}


def _pod(work: Work) -> dict[str, Any]:
    """The running pod of ``work`` as the API returns it (what the quota counter reads)."""
    # Only GPUs: the benchmark policy sets no CPU or memory quota, so nothing else is charged.
    resources = {"requests": {"nvidia.com/gpu": str(work.gpus)}}
    return {
        "metadata": _meta(work),
        "spec": {"containers": [{"name": "main", "resources": resources}]},
        "status": {"phase": "Running"},
    }


def _job(work: Work) -> dict[str, Any]:
    return {"metadata": _meta(work), "spec": {"suspend": False}, "status": {}}


class HardQuota:
    """(a) Today's admission: gpulab's own check, 429 over quota, the researcher retries."""

    def __init__(self, policy: Policy, trace: Trace, name: str) -> None:
        self.name = name
        self._entitlements = {
            user: policy.entitlement([group]) for user, group in trace.users.items()
        }
        self._profile = policy.profiles["gpu"]
        self._asking: list[Work] = []
        self._pods: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)  # group -> pods
        self._jobs: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)  # user -> Jobs
        # The check is pure: asked again while neither the group's pods nor the user's Jobs
        # changed, it answers as before (a month of 15-minute retries is mostly such asks).
        self._changes: dict[str, int] = defaultdict(int)  # group or user -> changes
        self._answers: dict[int, tuple[tuple[int, int], list[Any]]] = {}  # work id -> last

    def ask(self, work: Work, now: float) -> None:
        self._asking.append(work)

    def finished(self, work: Work, now: float) -> None:
        self._pods[work.group].pop(work.id, None)
        self._jobs[work.user].pop(work.id, None)
        self._changed(work)

    def _changed(self, work: Work) -> None:
        self._changes["group:" + work.group] += 1
        self._changes["user:" + work.user] += 1

    def _problems(self, work: Work) -> list[Any]:
        seen = (self._changes["group:" + work.group], self._changes["user:" + work.user])
        last = self._answers.get(work.id)
        if last is None or last[0] != seen:
            last = self._answers[work.id] = (seen, self._check(work))
        return last[1]

    def _check(self, work: Work) -> list[Any]:
        entitlement = self._entitlements[work.user]
        assert entitlement is not None, f"{work.user} has no entitlement"
        request = WorkloadRequest(
            kind=work.kind,
            entitlement=entitlement,
            image=IMAGE,
            gpus=work.gpus,
            gpu_type=GPU_TYPE,
            profile=self._profile if work.kind == "server" else None,
            max_runtime=int(work.duration * 60) if work.kind == "job" else None,
        )
        usage = count_usage(
            self._pods[work.group].values(),
            self._jobs[work.user].values(),
            user=work.user,
            group=work.group,
        )
        return admit(request, usage)

    def cycle(self, now: float) -> Decisions:
        decisions = Decisions()
        asking, self._asking = self._asking, []
        for work in asking:
            problems = self._problems(work)
            if any(p.code != "quota" for p in problems):
                raise AssertionError(f"the trace asks for what the policy never allows: {problems}")
            if problems:
                decisions.refused.append(work)
                continue
            self._pods[work.group][work.id] = _pod(work)
            if work.kind == "job":
                self._jobs[work.user][work.id] = _job(work)
            self._changed(work)
            decisions.admitted.append(work)
        return decisions


def load_objects(engine: core.Engine, objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Configure kubesim's Kueue core with rendered Kueue objects, read as its controller
    reads them from the API; returns the LocalQueues (name -> ClusterQueue) and the
    WorkloadPriorityClasses (name -> value)."""
    local_queues: dict[str, str] = {}
    priorities: dict[str, int] = {}
    for obj in objects:
        kind, name, spec = obj["kind"], obj["metadata"]["name"], obj.get("spec") or {}
        if kind == "ResourceFlavor":
            engine.set_flavor(name, spec.get("nodeLabels") or {})
        elif kind == "Cohort":
            engine.set_cohort(core.CohortSpec(name, spec.get("parentName"), resource_groups(spec)))
        elif kind == "ClusterQueue":
            engine.set_queue(queue_spec(dict(obj)))
        elif kind == "LocalQueue":
            local_queues[name] = spec["clusterQueue"]
        elif kind == "WorkloadPriorityClass":
            priorities[name] = int(obj["value"])
    return {"local_queues": local_queues, "priorities": priorities}


class KueueQueues:
    """(b) and (c): every server and job waits in its Kueue queue; kubesim's Kueue core admits
    and preempts, configured with what :mod:`gpulab.hub.kueue.render` renders from the
    policy (the policy's objects and every user's queues, as the hub makes them on a user's
    first spawn or submit). A job marked preemptible goes to the user's preemptible
    LocalQueue when the policy lets the group borrow; otherwise to the user's own queue."""

    def __init__(
        self, policy: Policy, trace: Trace, name: str, *, fair_sharing: bool = True
    ) -> None:
        self.name = name
        # Fair sharing on by default: the Kueue Configuration gpulab asks for (scheduling.md).
        self.engine = core.Engine(fair_sharing=fair_sharing)
        objects = render_policy(policy, NAMESPACE)
        for user, group in trace.users.items():
            objects += render_user(policy, user, group, NAMESPACE)
        loaded = load_objects(self.engine, objects)
        self._local_queues: dict[str, str] = loaded["local_queues"]
        self._priorities: dict[str, int] = loaded["priorities"]
        self._borrows = {name: g.gpu.borrow_max > 0 for name, g in policy.groups.items()}
        self._wait_for_gpus = {
            name: g.wait_for_gpus_seconds / 60 for name, g in policy.groups.items()
        }
        self._works: dict[str, Work] = {}
        self._stopping: list[tuple[float, int, Work]] = []  # (pods gone at, id, evicted work)
        # A spawn waits at most wait_for_gpus for its server to be admitted, then fails (the
        # researcher starts it again later, as a refused one under (a)).
        self._spawn_deadlines: list[tuple[float, int, Work]] = []
        self._new_deadlines: list[float] = []

    def _queue(self, work: Work) -> tuple[str, str]:
        """(ClusterQueue, WorkloadPriorityClass) of ``work``, through its LocalQueue."""
        queues = kueue_names.user_queue_names(work.user, work.group)
        if work.kind == "server":
            return self._local_queues[queues.local_queue], kueue_names.PRIORITY_INTERACTIVE
        if work.preemptible and self._borrows[work.group]:
            local, priority = queues.preemptible_local_queue, kueue_names.PRIORITY_PREEMPTIBLE
        else:
            local, priority = queues.local_queue, kueue_names.PRIORITY_BATCH
        return self._local_queues[local], priority

    def ask(self, work: Work, now: float) -> None:
        queue, priority = self._queue(work)
        key = self._key(work)
        self._works[key] = work
        # Kueue counts in the resource's units; the controller uses milli-units (1 GPU = 1000).
        pod_set = core.PodSet("main", 1, {"nvidia.com/gpu": work.gpus * 1000})
        self.engine.add_workload(
            core.Workload(key, queue, [pod_set], priority=self._priorities[priority], created=now)
        )
        if work.kind == "server":
            deadline = now + self._wait_for_gpus[work.group]
            heapq.heappush(self._spawn_deadlines, (deadline, work.id, work))
            self._new_deadlines.append(deadline)

    def finished(self, work: Work, now: float) -> None:
        self.engine.remove(self._key(work))

    @staticmethod
    def _key(work: Work) -> str:
        return f"{NAMESPACE}/{work.kind}-{work.id}"

    def cycle(self, now: float) -> Decisions:
        decisions = Decisions()
        while self._stopping and self._stopping[0][0] <= now:
            _, _, work = heapq.heappop(self._stopping)
            self.engine.release(self._key(work), now, requeue=True)
            decisions.released.append(work)
        while self._spawn_deadlines and self._spawn_deadlines[0][0] <= now:
            _, _, work = heapq.heappop(self._spawn_deadlines)
            waiting = self.engine.workloads.get(self._key(work))
            if waiting is not None and waiting.admission is None:
                self.engine.remove(self._key(work))  # the spawn failed: its pod is deleted
                decisions.refused.append(work)
        decisions.wake += self._new_deadlines
        self._new_deadlines = []
        while cycle := self.engine.admit_cycle(now):  # until it has nothing more to say
            for decision in cycle:
                self._apply(decision, now, decisions)
        return decisions

    def _apply(self, decision: core.Decision, now: float, decisions: Decisions) -> None:
        work = self._works[decision.key]
        if isinstance(decision, core.Admit):
            decisions.admitted.append(work)
            return
        # Kueue suspends the Job: its pods get SIGTERM and hold the GPUs until they are gone
        # (at most the grace period), then the workload is requeued.
        decisions.evicted.append(work)
        heapq.heappush(self._stopping, (now + GRACE_MINUTES, work.id, work))
        decisions.wake.append(now + GRACE_MINUTES)


# ----------------------------------------------------------------------------- the replay


@dataclass
class Progress:
    """What happened to one piece of work during the replay."""

    work: Work
    done: float = 0.0  # minutes of its work it has kept (checkpointed, or all when it ran through)
    started: float | None = None  # the current run's start
    first_start: float | None = None
    in_quota: bool = False
    evictions: int = 0
    refusals: int = 0  # 429s (a), spawns failed after wait_for_gpus (b, c)
    admitted_at: float | None = None  # the current run's admission
    churned: int = 0  # preemptions within CHURN_MINUTES of its admission
    lost: float = 0.0  # GPU-minutes lost to preemption
    served: float = 0.0  # GPU-minutes of kept work
    ended: bool = False
    stopping_since: float | None = None  # evicted, its pods not gone yet (GPUs still held)
    token: int = 0  # bumps on eviction: a stale end event is ignored


@dataclass
class Result:
    policy: str
    allocation: float  # % of capacity, while demand exceeds it
    over_hours: float  # hours during which demand exceeded capacity
    served: float  # GPU-hours
    lost: float  # GPU-hours
    preemptions: int
    churned: int  # preemptions of work admitted less than CHURN_MINUTES before
    refusals: int
    violations: int
    waits: dict[str, tuple[float, float]]  # group -> (p50, p95) minutes
    in_quota_p95: float
    unstarted: int
    seconds: float
    first_violation: str = ""


def _p(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q) - 1]


class Replay:
    """The accelerated clock: arrivals, retries and ends in time order; after each instant the
    arbiter decides, and the figures are integrated between instants."""

    def __init__(self, trace: Trace, arbiter: Arbiter, limits: Limits, checkpoint: float) -> None:
        self.trace, self.arbiter, self.limits, self.checkpoint = trace, arbiter, limits, checkpoint
        self.progress = {w.id: Progress(w) for w in trace.works}
        self.running: dict[int, Work] = {}
        # (at, seq, kind, work id (-1: none), token)
        self.events: list[tuple[float, int, str, int, int]] = []
        self.seq = 0
        # GPUs asked and not finished, per group (running or not; for in-quota and demand).
        self.asked_user: dict[str, int] = defaultdict(int)
        self.asked_group: dict[str, int] = defaultdict(int)
        self.demand = 0
        self.allocated = 0
        self.over_minutes = 0.0
        self.over_allocated = 0.0  # GPU-minutes allocated while demand > capacity
        self.violations = 0
        self.first_violation = ""

    def _push(self, at: float, kind: str, work_id: int, token: int = 0) -> None:
        self.seq += 1
        heapq.heappush(self.events, (at, self.seq, kind, work_id, token))

    def _arrive(self, work: Work, now: float) -> None:
        p = self.progress[work.id]
        quota_ok = (
            self.asked_user[work.user] + work.gpus <= self.limits.quota_user[work.user]
            and self.asked_group[work.group] + work.gpus <= self.limits.quota_group[work.group]
        )
        p.in_quota = quota_ok and not work.preemptible
        if not (work.preemptible and self.limits.borrowing):
            self.asked_user[work.user] += work.gpus
            self.asked_group[work.group] += work.gpus
        self.demand += work.gpus
        self.arbiter.ask(work, now)

    def _end(self, work: Work, now: float) -> None:
        p = self.progress[work.id]
        assert p.started is not None
        p.served += work.gpus * (now - p.started)
        p.done, p.started, p.ended = work.duration, None, True
        del self.running[work.id]
        self.allocated -= work.gpus
        self.demand -= work.gpus
        if not (work.preemptible and self.limits.borrowing):
            self.asked_user[work.user] -= work.gpus
            self.asked_group[work.group] -= work.gpus
        self.arbiter.finished(work, now)

    def _start(self, work: Work, now: float) -> None:
        p = self.progress[work.id]
        resume = RESUME_MINUTES if p.evictions else 0.0
        if p.first_start is None:
            p.first_start = now
        p.admitted_at = now
        p.started = now + resume  # progress begins once the checkpoint is loaded
        p.lost += work.gpus * resume
        self.running[work.id] = work
        self.allocated += work.gpus
        self._push(now + resume + (work.duration - p.done), "end", work.id, p.token)

    def _evict(self, work: Work, now: float) -> None:
        """Preempted: the job stops making progress now (SIGTERM) and keeps what its last
        checkpoint saved; its GPUs stay held until its pods are gone (:meth:`_release`)."""
        p = self.progress[work.id]
        assert p.started is not None
        ran = max(0.0, now - p.started)
        kept = (ran // self.checkpoint) * self.checkpoint if work.kind == "job" else 0.0
        p.done += kept
        p.served += work.gpus * kept
        p.lost += work.gpus * (ran - kept)
        p.started, p.token, p.stopping_since = None, p.token + 1, now
        p.evictions += 1
        if p.admitted_at is not None and now - p.admitted_at < CHURN_MINUTES:
            p.churned += 1

    def _release(self, work: Work, now: float) -> None:
        p = self.progress[work.id]
        assert p.stopping_since is not None
        p.lost += work.gpus * (now - p.stopping_since)  # held while stopping, nothing gained
        p.stopping_since = None
        del self.running[work.id]
        self.allocated -= work.gpus

    def run(self) -> Result:
        began = time.perf_counter()
        for w in self.trace.works:
            self._push(w.submit, "arrive", w.id)
        horizon = self.trace.days * 1440.0
        last = 0.0
        while self.events and self.events[0][0] < horizon:
            now = self.events[0][0]
            if self.demand > self.limits.capacity:
                self.over_minutes += now - last
                self.over_allocated += self.allocated * (now - last)
            last = now
            while self.events and self.events[0][0] == now:
                _, _, kind, work_id, token = heapq.heappop(self.events)
                if kind == "wake":
                    continue
                work = self.trace.works[work_id]
                if kind == "arrive":
                    self._arrive(work, now)
                elif kind == "retry":
                    self.arbiter.ask(work, now)
                elif token == self.progress[work_id].token and work_id in self.running:
                    self._end(work, now)  # a stale end (the run was preempted) is dropped
            decisions = self.arbiter.cycle(now)
            for work in decisions.released:
                self._release(work, now)
            # Admissions first: a workload admitted early in a cycle may be preempted later in it.
            for work in decisions.admitted:
                self._start(work, now)
            for work in decisions.evicted:
                self._evict(work, now)
            for at in decisions.wake:
                self._push(at, "wake", -1)
            for work in decisions.refused:
                self.progress[work.id].refusals += 1
                self._push(now + RETRY_MINUTES, "retry", work.id)
            broken = violations(self.running.values(), self.limits)
            if broken:
                self.violations += len(broken)
                self.first_violation = self.first_violation or f"t={now:.0f} min: {broken[0]}"
        if self.demand > self.limits.capacity:
            self.over_minutes += horizon - last
            self.over_allocated += self.allocated * (horizon - last)
        for work_id, work in self.running.items():  # the month ends: count what ran so far
            p = self.progress[work_id]
            assert p.started is not None
            p.served += work.gpus * max(0.0, horizon - p.started)
        return self._result(horizon, time.perf_counter() - began)

    def _result(self, horizon: float, seconds: float) -> Result:
        waits: dict[str, list[float]] = defaultdict(list)
        in_quota: list[float] = []
        unstarted = 0
        for p in self.progress.values():
            start = p.first_start
            if start is None:
                unstarted += 1
                start = horizon  # still waiting when the month ends: counted as waited so far
            wait = start - p.work.submit
            waits[p.work.group].append(wait)
            if p.in_quota:
                in_quota.append(wait)
        allocation = (
            100 * self.over_allocated / (self.over_minutes * self.limits.capacity)
            if self.over_minutes
            else 0.0
        )
        return Result(
            policy=self.arbiter.name,
            allocation=allocation,
            over_hours=self.over_minutes / 60,
            served=sum(p.served for p in self.progress.values()) / 60,
            lost=sum(p.lost for p in self.progress.values()) / 60,
            preemptions=sum(p.evictions for p in self.progress.values()),
            churned=sum(p.churned for p in self.progress.values()),
            refusals=sum(p.refusals for p in self.progress.values()),
            violations=self.violations,
            waits={g.name: (_p(waits[g.name], 50), _p(waits[g.name], 95)) for g in GROUPS},
            in_quota_p95=_p(in_quota, 95),
            unstarted=unstarted,
            seconds=seconds,
            first_violation=self.first_violation,
        )


def replay(trace: Trace, arbiter: Arbiter, limits: Limits, *, checkpoint: float = 15.0) -> Result:
    return Replay(trace, arbiter, limits, checkpoint).run()


# ----------------------------------------------------------------------------- main


POLICIES: Mapping[str, tuple[str, bool]] = {
    "a": ("(a) hard quotas, 429 + retry", False),
    "b": ("(b) Kueue queues, no borrowing", False),
    "c": ("(c) Kueue queues, borrowing + preemption", True),
}


def arbiter_for(key: str, policy: Policy, trace: Trace, *, fair_sharing: bool = True) -> Arbiter:
    """The arbiter of policy ``key`` (a, b or c) deciding by ``policy``."""
    name = POLICIES[key][0]
    if key == "a":
        return HardQuota(policy, trace, name)
    if not fair_sharing:
        name += ", fair sharing off"
    return KueueQueues(policy, trace, name, fair_sharing=fair_sharing)


def _print(result: Result) -> None:
    print(f"\n{result.policy}  (replayed in {result.seconds:.1f} s)")
    print(
        f"  allocation while demand > capacity: {result.allocation:.1f} % "
        f"(demand above capacity for {result.over_hours:.0f} h)"
    )
    print(f"  busy GPU-hours served: {result.served:,.0f}")
    print(f"  preemptions: {result.preemptions}, GPU-hours lost to them: {result.lost:,.1f}")
    print(f"  preemptions of work admitted < {CHURN_MINUTES:g} min before: {result.churned}")
    print(f"  refused (429) or spawn gave up (wait_for_gpus), asked again: {result.refusals}")
    print(f"  quota violations: {result.violations} {result.first_violation}".rstrip())
    print(f"  p95 wait of in-quota work: {result.in_quota_p95:.1f} min")
    print(f"  not started by the end of the trace: {result.unstarted}")
    for group, (p50, p95) in result.waits.items():
        print(f"  wait {group:>9}: p50 {p50:7.1f} min, p95 {p95:7.1f} min")


def _record(key: str, result: Result, goals: bool) -> None:
    def goal(op: str, value: float) -> Any:
        return (op, value) if goals else None

    prefix = f"({key})"
    record(BENCH, f"{prefix} allocation while demand > capacity", result.allocation, "%",
           goal=goal(">=", ALLOCATION_GOAL))  # fmt: skip
    record(BENCH, f"{prefix} busy GPU-hours served", result.served, "GPU-h")
    record(BENCH, f"{prefix} preemptions", result.preemptions, "")
    record(BENCH, f"{prefix} preemptions < {CHURN_MINUTES:g} min after admission",
           result.churned, "")  # fmt: skip
    record(BENCH, f"{prefix} refused or gave up, asked again", result.refusals, "")
    lost_pct = 100 * result.lost / result.served if result.served else 0.0
    record(BENCH, f"{prefix} GPU-hours lost to preemption", result.lost, "GPU-h")
    record(BENCH, f"{prefix} GPU-hours lost / served", lost_pct, "%", goal=goal("<=", LOST_GOAL))
    record(BENCH, f"{prefix} quota violations", result.violations, "", goal=("==", 0))
    record(BENCH, f"{prefix} in-quota wait p95", result.in_quota_p95, "min",
           goal=goal("<=", IN_QUOTA_WAIT_GOAL))  # fmt: skip
    for group, (p50, p95) in result.waits.items():
        record(BENCH, f"{prefix} {group} wait p50", p50, "min")
        record(BENCH, f"{prefix} {group} wait p95", p95, "min")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--days", type=int, default=sized(30, 12))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--checkpoint", type=float, default=15.0, help="minutes between saves")
    parser.add_argument("--policies", default="a,b,c")
    parser.add_argument(
        "--no-fair-sharing",
        dest="fair_sharing",
        action="store_false",
        help="Kueue's fair sharing off (gpulab's configuration has it on)",
    )
    args = parser.parse_args(argv)
    trace = make_trace(args.users, args.days, args.seed)
    print(
        f"{args.users} researchers, {args.days} days, {trace.capacity} GPUs, "
        f"{len(trace.works)} servers and jobs, seed {args.seed}; "
        f"checkpoints every {args.checkpoint:g} min"
    )
    for key in args.policies.split(","):
        policy = benchmark_policy(borrowing=POLICIES[key][1])
        arbiter = arbiter_for(key, policy, trace, fair_sharing=args.fair_sharing)
        result = replay(trace, arbiter, limits_of(policy, trace), checkpoint=args.checkpoint)
        _print(result)
        label = key if args.fair_sharing or key == "a" else f"{key}, fair sharing off"
        _record(label, result, goals=key == "c")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
