"""The workload trace `scheduling.py` replays: a seeded month of GPU demand from 100
researchers in five groups.

    .venv/bin/python benchmarks/scheduling_trace.py [--users 100] [--days 30] [--seed 11]

prints (and records, for context) what the trace asks for: its servers and jobs, the GPU-hours
they ask, and how many hours the demand exceeds the cluster even if every GPU were shared.

What a researcher does (minute resolution, time 0 = a Monday 00:00):

* **Interactive servers** on most working days: started between 8:30 and 11:00 (and again after
  lunch on some days), 1 GPU (2 for a few), kept 1-6 h. Never preemptible.
* **Batch jobs**: 1, 2, 4 or 8 GPUs (45/25/20/10 %), runtimes lognormal with a median of 75 min,
  from 5 min up to a day (the policy's `max_runtime`); submitted mostly in working hours, fewer
  in the evening and at weekends.
* **Bursts before deadlines**: each group has a deadline (a conference, a report) during the
  month; in the four days before it its members submit four times as many jobs, around the
  clock, many of them sweeps of several similar jobs at once.
* **Preemptible**: a researcher marks a job `preemptible: true` when it checkpoints and can wait
  (sweeps, long training): about half of ordinary jobs, 70 % of burst jobs.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from report import record

BENCH = "scheduling_trace"
DAY = 1440  # minutes
MAX_RUNTIME = DAY  # the benchmark policy's jobs.max_runtime (24h)

Kind = Literal["server", "job"]


@dataclass(frozen=True)
class GroupShape:
    """One research group: its size share, GPU quota, and its deadline (day of the month)."""

    name: str
    share: float  # fraction of the researchers
    quota: int  # quota_group, GPUs
    deadline_day: int


# 64 GPUs in all (eight 8-GPU nodes); the groups' quotas add up to the cluster.
GROUPS: tuple[GroupShape, ...] = (
    GroupShape("vision", 0.30, 20, 10),
    GroupShape("nlp", 0.25, 16, 15),
    GroupShape("robotics", 0.20, 12, 19),
    GroupShape("bio", 0.15, 8, 24),
    GroupShape("theory", 0.10, 8, 28),
)
CAPACITY = sum(g.quota for g in GROUPS)
BURST_DAYS = 4
BURST_FACTOR = 4.0


@dataclass(frozen=True)
class Work:
    """One server or job of the trace. ``duration``: minutes of GPU work a job needs to finish
    (a server: how long its owner keeps it once it runs)."""

    id: int
    user: str
    group: str
    kind: Kind
    gpus: int
    submit: float  # minutes since time 0
    duration: float
    preemptible: bool = False


@dataclass(frozen=True)
class Trace:
    works: tuple[Work, ...]
    users: dict[str, str]  # user -> group
    days: int
    capacity: int


def _users(n: int) -> dict[str, str]:
    """``n`` researchers split over the groups by their shares (largest remainders)."""
    raw = [g.share * n for g in GROUPS]
    counts = [int(x) for x in raw]
    order = sorted(range(len(GROUPS)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    users: dict[str, str] = {}
    for g, count in zip(GROUPS, counts, strict=True):
        for k in range(count):
            users[f"{g.name}-{k:02d}"] = g.name
    return users


def _job_gpus(rng: random.Random) -> int:
    return rng.choices((1, 2, 4, 8), weights=(45, 25, 20, 10))[0]


def _job_minutes(rng: random.Random) -> float:
    return min(MAX_RUNTIME, max(5.0, rng.lognormvariate(math.log(75), 1.2)))


def _in_burst(group: GroupShape, day: int) -> bool:
    return group.deadline_day - BURST_DAYS <= day < group.deadline_day


def _poisson(rng: random.Random, mean: float) -> int:
    # Knuth's method: the means here are small (a few jobs a day).
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _researcher(
    user: str, group: GroupShape, days: int, rng: random.Random
) -> Iterable[tuple[Kind, int, float, float, bool]]:
    """(kind, gpus, submit, duration, preemptible) of everything one researcher asks for."""
    activity = rng.lognormvariate(0, 0.5)  # some researchers run far more than others
    two_gpu_server = rng.random() < 0.15
    for day in range(days):
        weekday = day % 7 < 5
        burst = _in_burst(group, day)
        start = day * DAY
        if weekday and rng.random() < 0.6:
            at = start + rng.uniform(8.5 * 60, 11 * 60)
            yield "server", 2 if two_gpu_server else 1, at, rng.uniform(60, 6 * 60), False
            if rng.random() < 0.3:
                at = start + rng.uniform(13.5 * 60, 16 * 60)
                yield "server", 1, at, rng.uniform(45, 3 * 60), False
        rate = (0.55 if weekday else 0.15) * activity * (BURST_FACTOR if burst else 1.0)
        for _ in range(_poisson(rng, rate)):
            if burst:
                at = start + rng.uniform(0, DAY)  # around the clock before a deadline
            elif weekday and rng.random() < 0.8:
                at = start + rng.uniform(9 * 60, 19 * 60)
            else:
                at = start + rng.uniform(19 * 60, 24 * 60)
            gpus, minutes = _job_gpus(rng), _job_minutes(rng)
            sweep = burst and rng.random() < 0.3
            preemptible = rng.random() < (0.7 if burst else 0.5)
            for k in range(rng.randint(3, 6) if sweep else 1):
                spread = min(MAX_RUNTIME, minutes * rng.uniform(0.8, 1.2)) if k else minutes
                yield "job", gpus, at + k * 0.5, spread, preemptible or sweep


def make_trace(users: int = 100, days: int = 30, seed: int = 11) -> Trace:
    """The trace: every researcher's servers and jobs, in submission order."""
    rng = random.Random(seed)
    people = _users(users)
    shapes = {g.name: g for g in GROUPS}
    raw: list[tuple[float, str, str, Kind, int, float, bool]] = []
    for user, group in people.items():
        for kind, gpus, at, minutes, preemptible in _researcher(user, shapes[group], days, rng):
            if at < days * DAY:
                raw.append((at, user, group, kind, gpus, minutes, preemptible))
    raw.sort(key=lambda r: (r[0], r[1]))
    works = tuple(
        Work(i, user, group, kind, gpus, at, minutes, preemptible)
        for i, (at, user, group, kind, gpus, minutes, preemptible) in enumerate(raw)
    )
    return Trace(works, people, days, CAPACITY)


def demand_profile(trace: Trace) -> tuple[float, float]:
    """(GPU-hours asked, hours during which the GPUs asked at once exceed the cluster, were
    every piece of work to start the moment it is asked for)."""
    edges: list[tuple[float, int]] = []
    for w in trace.works:
        edges += [(w.submit, w.gpus), (w.submit + w.duration, -w.gpus)]
    edges.sort()
    over, level, last = 0.0, 0, 0.0
    for at, delta in edges:
        if level > trace.capacity:
            over += at - last
        level += delta
        last = at
    asked = sum(w.gpus * w.duration for w in trace.works) / 60
    return asked, over / 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    trace = make_trace(args.users, args.days, args.seed)
    servers = sum(1 for w in trace.works if w.kind == "server")
    jobs = len(trace.works) - servers
    asked, over = demand_profile(trace)
    capacity_hours = trace.capacity * trace.days * 24
    print(f"{args.users} researchers, {args.days} days, {trace.capacity} GPUs, seed {args.seed}")
    print(
        f"  {servers} servers, {jobs} jobs ({sum(w.preemptible for w in trace.works)} preemptible)"
    )
    print(f"  {asked:,.0f} GPU-hours asked ({100 * asked / capacity_hours:.0f} % of the cluster's)")
    print(f"  demand above capacity (no queueing) for {over:,.1f} h")
    record(BENCH, "servers", servers, "")
    record(BENCH, "jobs", jobs, "")
    record(BENCH, "GPU-hours asked", asked, "GPU-h")
    record(BENCH, "GPU-hours asked / capacity", 100 * asked / capacity_hours, "%")
    record(BENCH, "hours demand exceeds capacity (unqueued)", over, "h")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
