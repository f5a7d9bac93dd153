"""The scheduling benchmark (benchmarks/scheduling.py) on tiny traces: its figures agree with
each other, its violation check catches a policy that admits over quota, and a preempted job
resumes from its last checkpoint and loses only what the model says."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    # The benchmark scripts import each other by plain name (they run with benchmarks/ on path).
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import scheduling

        return scheduling
    finally:
        sys.path.remove(str(BENCHMARKS))


def _trace(bench: ModuleType, works: list[tuple], days: int = 1):
    """A hand-made trace: (user, kind, gpus, submit, duration, preemptible) per work."""
    trace_mod = sys.modules["scheduling_trace"]
    users = {"vision-00": "vision", "nlp-00": "nlp", "bio-00": "bio", "bio-01": "bio"}
    items = tuple(
        trace_mod.Work(i, user, users[user], kind, gpus, submit, duration, preemptible)
        for i, (user, kind, gpus, submit, duration, preemptible) in enumerate(works)
    )
    return trace_mod.Trace(items, users, days, trace_mod.CAPACITY)


def _run(bench: ModuleType, key: str, trace, *, fed_scale: float = 1.0):
    """Replay policy ``key`` deciding by the benchmark policy scaled by ``fed_scale``, checked
    against the benchmark policy itself."""
    borrowing = bench.POLICIES[key][1]
    truth = bench.benchmark_policy(borrowing=borrowing)
    fed = bench.benchmark_policy(borrowing=borrowing, quota_scale=fed_scale)
    arbiter = bench.arbiter_for(key, fed, trace)
    return bench.replay(trace, arbiter, bench.limits_of(truth, trace), checkpoint=15.0)


@pytest.mark.parametrize("key", ["a", "b", "c"])
def test_small_trace_figures_are_consistent(bench: ModuleType, key: str) -> None:
    trace = sys.modules["scheduling_trace"].make_trace(users=30, days=2, seed=3)
    result = _run(bench, key, trace)
    held_most = trace.capacity * trace.days * 24
    assert result.violations == 0, result.first_violation
    assert 0 < result.served <= held_most
    assert 0 <= result.allocation <= 100
    assert all(0 <= p50 <= p95 for p50, p95 in result.waits.values())
    assert (result.lost > 0) == (result.preemptions > 0)


@pytest.mark.parametrize("key", ["a", "b"])
def test_violations_counted_when_the_policy_admits_over_quota(bench: ModuleType, key: str) -> None:
    # Three 8-GPU jobs of one user (quota_user 8): a policy fed twice the quotas runs two.
    trace = _trace(bench, [("vision-00", "job", 8, 0.0, 60.0, False)] * 3)
    assert _run(bench, key, trace).violations == 0
    broken = _run(bench, key, trace, fed_scale=2.0)
    assert broken.violations > 0
    assert "vision-00" in broken.first_violation


def test_lender_reclaims_and_the_borrower_resumes_from_its_checkpoint(bench: ModuleType) -> None:
    # vision's and bio's preemptible jobs borrow the whole cluster (each group may borrow
    # what the others lend); nlp then asks for 8 of its own GPUs.
    borrowed = [("vision-00", "job", 8, 0.0, 600.0, True)] * 5
    borrowed += [("bio-00", "job", 8, 0.0, 600.0, True)] * 3
    trace = _trace(bench, [*borrowed, ("nlp-00", "job", 8, 67.0, 30.0, False)])
    result = _run(bench, "c", trace)
    assert result.violations == 0, result.first_violation
    assert result.preemptions == 1
    # nlp waits only for the victim's pods to go (the grace period), and is in-quota work.
    assert result.in_quota_p95 == pytest.approx(bench.GRACE_MINUTES)
    # Lost: 7 minutes since the checkpoint at 60, the grace period, loading the checkpoint.
    lost_minutes = 7 + bench.GRACE_MINUTES + bench.RESUME_MINUTES
    assert result.lost == pytest.approx(8 * lost_minutes / 60)
    # Everything finished within the day; each minute of work is served exactly once.
    assert result.unstarted == 0
    assert result.served == pytest.approx((8 * 8 * 600 + 8 * 30) / 60)


def test_a_server_that_waits_past_wait_for_gpus_is_started_again_later(bench: ModuleType) -> None:
    # bio's quota (8) is held by a job until minute 30; a colleague's server asks at minute 1,
    # its spawn fails after wait_for_gpus (10 min), the researcher starts it again 15 minutes
    # later (26), and it starts when the job ends (30).
    works = [("bio-00", "job", 8, 0.0, 30.0, False), ("bio-01", "server", 1, 1.0, 60.0, False)]
    trace = _trace(bench, works)
    policy = bench.benchmark_policy(borrowing=False)
    replay = bench.Replay(
        trace, bench.arbiter_for("b", policy, trace), bench.limits_of(policy, trace), 15.0
    )
    result = replay.run()
    assert result.violations == 0, result.first_violation
    assert replay.progress[1].first_start == pytest.approx(30.0)
    assert replay.progress[1].refusals == 1
