"""kubesim's Kueue engine (``gpulab.kubesim.kueue.core``), one admission rule per test.

Amounts are in whole units here (the engine is unit-agnostic): ``gpu`` is nvidia.com/gpu.
"""

from __future__ import annotations

from gpulab.kubesim.kueue.core import (
    ANY,
    IN_CLUSTER_QUEUE,
    IN_COHORT_RECLAIM_WHILE_BORROWING,
    IN_COHORT_RECLAMATION,
    LOWER_PRIORITY,
    Admit,
    CohortSpec,
    Engine,
    FlavorQuotas,
    PodSet,
    Preempt,
    Preemption,
    QueueSpec,
    Quota,
    ResourceGroup,
    Workload,
)

GPU = "nvidia.com/gpu"
RECLAIM = Preemption(within_cluster_queue=LOWER_PRIORITY, reclaim_within_cohort=ANY)


def gpus(nominal: int, borrow: int | None = None, lend: int | None = None, flavor: str = "a100"):
    return [ResourceGroup((GPU,), [FlavorQuotas(flavor, {GPU: Quota(nominal, borrow, lend)})])]


def engine() -> Engine:
    e = Engine()
    e.set_flavor("a100", {"gpu": "a100"})
    e.set_flavor("v100", {"gpu": "v100"})
    return e


def job(key: str, queue: str, n: int, priority: int = 0, t: float = 0.0, count: int = 1, **kw):
    return Workload(key, queue, [PodSet("main", count, {GPU: n}, **kw)], priority, t)


def admitted(decisions) -> list[str]:
    return [d.key for d in decisions if isinstance(d, Admit)]


def preempted(decisions) -> list[tuple[str, str]]:
    return [(d.key, d.reason) for d in decisions if isinstance(d, Preempt)]


def gpulab_tree(e: Engine, lend: int = 4) -> None:
    """The gpulab mapping: root cohort, a cohort per group, per-user and borrow queues."""
    e.set_cohort(CohortSpec("gpulab"))
    for g in ("vision", "nlp"):
        e.set_cohort(CohortSpec(f"gpulab-{g}", "gpulab", gpus(4, 0, lend)))
        e.set_queue(QueueSpec(f"{g}-alice", f"gpulab-{g}", gpus(0, 4), RECLAIM))
        e.set_queue(QueueSpec(f"{g}-bob", f"gpulab-{g}", gpus(0, 4), RECLAIM))
        e.set_queue(QueueSpec(f"{g}-borrow", "gpulab", gpus(0, 8)))


def test_a_workload_within_nominal_quota_is_admitted_with_its_flavor():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(2)))
    e.add_workload(job("w", "cq", 2))
    (d,) = e.admit_cycle(1.0)
    assert isinstance(d, Admit) and d.admission.flavors == {"main": {GPU: "a100"}}
    assert e.workloads["w"].admitted_at == 1.0


def test_a_workload_over_quota_waits_with_the_reason():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(2)))
    e.add_workload(job("w1", "cq", 2))
    e.add_workload(job("w2", "cq", 1, t=1))
    assert admitted(e.admit_cycle(2)) == ["w1"]
    assert "insufficient unused quota for nvidia.com/gpu in flavor a100, 1 more needed" in (
        e.workloads["w2"].message
    )


def test_requests_are_counted_for_every_pod_of_a_pod_set():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(4)))
    e.add_workload(job("w", "cq", 2, count=3))
    assert admitted(e.admit_cycle(0)) == []
    assert "request > maximum capacity (6 > 4)" in e.workloads["w"].message


def test_a_resource_the_queue_does_not_cover_makes_the_workload_inadmissible():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(4)))
    e.add_workload(Workload("w", "cq", [PodSet("main", 1, {"cpu": 1})]))
    assert admitted(e.admit_cycle(0)) == []
    assert e.workloads["w"].message == "resource cpu unavailable in ClusterQueue"


def test_the_next_flavor_is_used_when_the_first_is_full():
    e = engine()
    groups = [
        ResourceGroup(
            (GPU,),
            [FlavorQuotas("a100", {GPU: Quota(1)}), FlavorQuotas("v100", {GPU: Quota(2)})],
        )
    ]
    e.set_queue(QueueSpec("cq", None, groups))
    e.add_workload(job("w1", "cq", 1))
    e.add_workload(job("w2", "cq", 1, t=1))
    decisions = e.admit_cycle(0)
    assert [d.admission.flavors["main"][GPU] for d in decisions if isinstance(d, Admit)] == [
        "a100",
        "v100",
    ]


def test_a_flavor_whose_node_labels_contradict_the_node_selector_is_skipped():
    e = engine()
    groups = [
        ResourceGroup(
            (GPU,),
            [FlavorQuotas("a100", {GPU: Quota(4)}), FlavorQuotas("v100", {GPU: Quota(4)})],
        )
    ]
    e.set_queue(QueueSpec("cq", None, groups))
    e.add_workload(job("w", "cq", 1, node_selector={"gpu": "v100"}))
    (d,) = e.admit_cycle(0)
    assert d.admission.flavors["main"][GPU] == "v100"


def test_a_queue_borrows_idle_quota_of_its_cohort_up_to_its_borrowing_limit():
    e = engine()
    e.set_queue(QueueSpec("a", "co", gpus(2, borrow=1)))
    e.set_queue(QueueSpec("b", "co", gpus(4)))
    e.add_workload(job("w1", "a", 3))
    e.add_workload(job("w2", "a", 4, t=1))
    assert admitted(e.admit_cycle(0)) == ["w1"]
    assert e.borrowing("a") == {("a100", GPU): 1}
    assert "maximum capacity (4 > 3)" in e.workloads["w2"].message


def test_a_lending_limit_keeps_the_rest_of_the_quota_for_its_owner():
    e = engine()
    e.set_queue(QueueSpec("lender", "co", gpus(4, lend=1)))
    e.set_queue(QueueSpec("borrower", "co", gpus(0)))
    e.add_workload(job("w", "borrower", 2))
    assert admitted(e.admit_cycle(0)) == []
    e.add_workload(job("w1", "borrower", 1, t=1))
    assert admitted(e.admit_cycle(1)) == ["w1"]


def test_a_user_queue_uses_its_group_cohort_quota_up_to_its_own_limit():
    e = engine()
    gpulab_tree(e)
    e.add_workload(job("a1", "vision-alice", 3))
    e.add_workload(job("b1", "vision-bob", 2, t=1))
    assert admitted(e.admit_cycle(0)) == ["a1"]  # the group has 4: bob's 2 do not fit
    assert e.usage("vision-alice") == {("a100", GPU): 3}


def test_a_group_cohort_with_borrowing_limit_zero_never_exceeds_its_quota():
    e = engine()
    gpulab_tree(e)
    e.add_workload(job("a1", "vision-alice", 4))
    e.add_workload(job("b1", "vision-bob", 1, t=1))
    assert admitted(e.admit_cycle(0)) == ["a1"]
    assert "1 more needed" in e.workloads["b1"].message


def test_the_borrow_queue_runs_on_idle_quota_lent_by_other_groups():
    e = engine()
    gpulab_tree(e)
    e.add_workload(job("p1", "vision-borrow", 6))
    assert admitted(e.admit_cycle(0)) == ["p1"]
    assert e.borrowing("vision-borrow") == {("a100", GPU): 6}


def test_higher_priority_is_admitted_first():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(1)))
    e.add_workload(job("low", "cq", 1, priority=1, t=0))
    e.add_workload(job("high", "cq", 1, priority=10, t=5))
    assert admitted(e.admit_cycle(6)) == ["high"]


def test_equal_priority_is_first_in_first_out():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(1)))
    e.add_workload(job("later", "cq", 1, t=5))
    e.add_workload(job("earlier", "cq", 1, t=1))
    assert admitted(e.admit_cycle(6)) == ["earlier"]
    assert [w.key for w in e.pending("cq")] == ["later"]


def test_best_effort_fifo_admits_a_smaller_workload_behind_one_that_does_not_fit():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(2)))
    e.add_workload(job("big", "cq", 3, t=0))
    e.add_workload(job("small", "cq", 1, t=1))
    assert admitted(e.admit_cycle(2)) == ["small"]


def test_strict_fifo_blocks_behind_the_head():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(2), strategy="StrictFIFO"))
    e.add_workload(job("big", "cq", 3, t=0))
    e.add_workload(job("small", "cq", 1, t=1))
    assert admitted(e.admit_cycle(2)) == []


def test_a_stopped_queue_admits_nothing():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(2), stopped=True))
    e.add_workload(job("w", "cq", 1))
    assert e.admit_cycle(0) == []


def fair_group(e: Engine) -> None:
    e.set_cohort(CohortSpec("g", None, gpus(4)))
    e.set_queue(QueueSpec("alice", "g", gpus(0, 4)))
    e.set_queue(QueueSpec("bob", "g", gpus(0, 4)))


def test_fair_sharing_admits_the_queue_with_the_lower_share_first():
    e = engine()
    e.fair_sharing = True
    fair_group(e)
    e.add_workload(job("a1", "alice", 2, t=0))
    assert admitted(e.admit_cycle(0)) == ["a1"]
    e.add_workload(job("a2", "alice", 2, t=1))  # alice asked first ...
    e.add_workload(job("b1", "bob", 2, t=2))  # ... but bob uses less
    e.add_workload(job("b2", "bob", 2, t=3))
    assert admitted(e.admit_cycle(4)) == ["b1"]


def test_lower_priority_in_the_same_queue_is_preempted():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(2), RECLAIM))
    e.add_workload(job("low", "cq", 2, priority=1))
    e.admit_cycle(0)
    e.add_workload(job("high", "cq", 2, priority=10, t=1))
    assert preempted(e.admit_cycle(1)) == [("low", IN_CLUSTER_QUEUE)]
    assert e.workloads["low"].evicting


def test_equal_or_higher_priority_is_never_preempted_within_the_queue():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(2), RECLAIM))
    e.add_workload(job("server", "cq", 2, priority=1000))
    e.admit_cycle(0)
    e.add_workload(job("batch", "cq", 2, priority=100, t=1))
    assert e.admit_cycle(1) == []


def test_a_preemptor_waits_until_its_victims_release_their_quota():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(2), RECLAIM))
    e.add_workload(job("low", "cq", 2, priority=1))
    e.admit_cycle(0)
    e.add_workload(job("high", "cq", 2, priority=10, t=1))
    e.admit_cycle(1)
    assert e.admit_cycle(2) == []  # no second round of preemptions
    e.release("low", 3)
    assert admitted(e.admit_cycle(3)) == ["high"]


def test_a_lender_reclaims_its_lent_quota_from_a_borrower():
    e = engine()
    gpulab_tree(e)
    e.add_workload(job("p1", "nlp-borrow", 8, priority=-10))
    assert admitted(e.admit_cycle(0)) == ["p1"]
    e.add_workload(job("v1", "vision-alice", 2, priority=100, t=1))
    assert preempted(e.admit_cycle(1)) == [("p1", IN_COHORT_RECLAMATION)]


def test_only_as_many_borrowers_as_needed_are_preempted():
    e = engine()
    gpulab_tree(e)
    for i in range(4):
        e.add_workload(job(f"p{i}", "nlp-borrow", 2, priority=-10, t=i))
    assert len(admitted(e.admit_cycle(0))) == 4
    e.add_workload(job("v1", "vision-alice", 2, priority=100, t=9))
    victims = preempted(e.admit_cycle(10))
    assert len(victims) == 1


def test_users_of_one_group_do_not_reclaim_from_each_other():
    e = engine()
    gpulab_tree(e)
    e.add_workload(job("a1", "vision-alice", 4, priority=100))
    e.admit_cycle(0)
    e.add_workload(job("b1", "vision-bob", 2, priority=100, t=1))
    assert e.admit_cycle(1) == []


def test_borrow_within_cohort_preempts_lower_priority_up_to_its_threshold():
    e = engine()
    pre = Preemption(
        reclaim_within_cohort=ANY, borrow_within_cohort=LOWER_PRIORITY, borrow_max_priority=0
    )
    e.set_queue(QueueSpec("a", "co", gpus(1, borrow=4), pre))
    e.set_queue(QueueSpec("b", "co", gpus(3, borrow=4)))
    e.add_workload(job("b1", "b", 4, priority=0))
    e.add_workload(job("b2", "b", 0, priority=5, t=1))
    e.admit_cycle(0)
    e.add_workload(job("a1", "a", 2, priority=10, t=2))
    assert preempted(e.admit_cycle(2)) == [("b1", IN_COHORT_RECLAIM_WHILE_BORROWING)]


def test_an_evicted_workload_is_requeued_by_its_eviction_time():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(1)))
    e.add_workload(job("w1", "cq", 1, t=0))
    e.admit_cycle(0)
    e.add_workload(job("w2", "cq", 1, t=5))
    e.evict("w1")
    e.release("w1", 10)
    assert e.workloads["w1"].requeue_count == 1
    assert admitted(e.admit_cycle(11)) == ["w2"]


def test_a_removed_workload_frees_its_quota():
    e = engine()
    e.set_queue(QueueSpec("cq", None, gpus(1)))
    e.add_workload(job("w1", "cq", 1, t=0))
    e.add_workload(job("w2", "cq", 1, t=1))
    e.admit_cycle(0)
    e.remove("w1")
    assert admitted(e.admit_cycle(1)) == ["w2"]


def test_without_fair_sharing_a_group_goes_by_priority_then_age():
    e = engine()
    fair_group(e)
    e.add_workload(job("a1", "alice", 2, t=0))
    e.admit_cycle(0)
    e.add_workload(job("a2", "alice", 2, t=1))
    e.add_workload(job("b1", "bob", 2, t=2))
    assert admitted(e.admit_cycle(4)) == ["a2"]


SERVER, BATCH, PREEMPTIBLE = 1000, 100, 10  # gpulab's WorkloadPriorityClasses


def lending_tree(e: Engine, vision_lends: int = 6, nlp_lends: int = 0) -> None:
    """gpulab's rendering of a two-group policy: vision (8 GPUs, quota_user 4, lends 6) with
    alice, carol and dave; nlp (4 GPUs, quota_user 2, lends none) with bob; each group's
    preemptible jobs may borrow 2 (``borrow_max``)."""
    e.set_cohort(CohortSpec("gpulab"))
    e.set_cohort(CohortSpec("gpulab-vision", "gpulab", gpus(8, 0, vision_lends)))
    e.set_cohort(CohortSpec("gpulab-nlp", "gpulab", gpus(4, 0, nlp_lends)))
    for user in ("alice", "carol", "dave"):
        e.set_queue(QueueSpec(f"vision-{user}", "gpulab-vision", gpus(0, 4), RECLAIM))
    e.set_queue(QueueSpec("nlp-bob", "gpulab-nlp", gpus(0, 2), RECLAIM))
    for group in ("vision", "nlp"):
        e.set_queue(QueueSpec(f"{group}-borrow", "gpulab", gpus(0, 2)))


def fair_engine(**lends: int) -> Engine:
    """An engine with fair sharing on (as kubesim runs it) and the lending tree."""
    e = Engine(fair_sharing=True)
    e.set_flavor("a100", {"gpu": "a100"})
    lending_tree(e, **lends)
    return e


def settle(e: Engine, now: float) -> list[str]:
    """Cycles until nothing changes, each victim releasing its quota at once (as the
    controller does once the victim's pods are gone); the workloads admitted."""
    out: list[str] = []
    for _ in range(10):
        decisions = e.admit_cycle(now)
        if not decisions:
            return out
        out += admitted(decisions)
        for victim, _reason in preempted(decisions):
            e.release(victim, now)
    raise AssertionError("the engine did not settle")


def test_the_reclaiming_workload_is_admitted_once_its_victim_released_its_quota():
    e = fair_engine()
    e.add_workload(job("bob", "nlp-borrow", 2, priority=PREEMPTIBLE))
    assert settle(e, 0) == ["bob"]  # on 2 of the 6 GPUs vision lends
    e.add_workload(job("alice", "vision-alice", 4, priority=BATCH, t=1))
    assert settle(e, 1) == ["alice"]
    e.add_workload(job("carol", "vision-carol", 4, priority=BATCH, t=2))
    assert settle(e, 2) == ["carol"]
    assert e.workloads["bob"].admission is None and e.workloads["bob"].requeue_count == 1


def test_a_users_work_is_bounded_by_quota_user_while_the_group_has_room():
    e = fair_engine()
    e.add_workload(job("a1", "vision-alice", 4, priority=BATCH))
    e.add_workload(job("a2", "vision-alice", 1, priority=BATCH, t=1))
    assert settle(e, 1) == ["a1"]
    assert "request > maximum capacity" not in e.workloads["a2"].message
    assert "1 more needed" in e.workloads["a2"].message


def test_a_groups_work_is_bounded_by_quota_group_even_when_another_group_lends():
    e = fair_engine(nlp_lends=4)
    e.add_workload(job("a1", "vision-alice", 4, priority=BATCH))
    e.add_workload(job("c1", "vision-carol", 4, priority=BATCH, t=1))
    assert sorted(settle(e, 1)) == ["a1", "c1"]
    e.add_workload(job("d1", "vision-dave", 1, priority=BATCH, t=2))
    assert settle(e, 2) == []  # nlp's 4 idle GPUs are not for vision's jobs


def test_preemptible_jobs_borrow_idle_gpus_up_to_borrow_max():
    e = fair_engine()
    e.add_workload(job("p1", "nlp-borrow", 2, priority=PREEMPTIBLE))
    e.add_workload(job("p2", "nlp-borrow", 1, priority=PREEMPTIBLE, t=1))
    assert settle(e, 1) == ["p1"]
    assert e.borrowing("nlp-borrow") == {("a100", GPU): 2}


def test_ordinary_jobs_never_borrow_another_groups_idle_gpus():
    e = fair_engine()  # vision lends 6, all idle
    e.add_workload(job("b1", "nlp-bob", 2, priority=BATCH))
    e.add_workload(job("b2", "nlp-bob", 1, priority=BATCH, t=1))
    assert settle(e, 1) == ["b1"]  # quota_user 2 of nlp: vision's idle GPUs do not help


def test_preemptible_jobs_borrow_nothing_while_no_group_lends():
    e = fair_engine(vision_lends=0)
    e.add_workload(job("p1", "nlp-borrow", 1, priority=PREEMPTIBLE))
    assert settle(e, 0) == []


def test_a_lender_reclaims_exactly_the_gpus_its_own_work_needs():
    e = fair_engine()
    e.add_workload(job("p1", "nlp-borrow", 1, priority=PREEMPTIBLE))
    e.add_workload(job("p2", "nlp-borrow", 1, priority=PREEMPTIBLE, t=1))
    assert settle(e, 1) == ["p1", "p2"]
    e.add_workload(job("a1", "vision-alice", 4, priority=BATCH, t=2))
    e.add_workload(job("c1", "vision-carol", 3, priority=BATCH, t=3))
    assert sorted(settle(e, 3)) == ["a1", "c1"]  # 7 of vision's 8: one borrower stays
    assert len(e.admitted("nlp-borrow")) == 1


def test_a_server_reclaims_a_borrowed_gpu_for_its_group():
    e = fair_engine()
    e.add_workload(job("p1", "nlp-borrow", 2, priority=PREEMPTIBLE))
    e.add_workload(job("a1", "vision-alice", 4, priority=BATCH, t=1))
    e.add_workload(job("c1", "vision-carol", 2, priority=BATCH, t=2))
    assert sorted(settle(e, 2)) == ["a1", "c1", "p1"]
    e.add_workload(job("server", "vision-dave", 2, priority=SERVER, t=3))
    assert settle(e, 3) == ["server"]
    assert e.workloads["p1"].requeue_count == 1


def test_a_server_is_never_preempted_by_another_users_work():
    e = fair_engine()
    e.add_workload(job("server", "vision-alice", 4, priority=SERVER))
    e.add_workload(job("c1", "vision-carol", 4, priority=BATCH, t=1))
    assert sorted(settle(e, 1)) == ["c1", "server"]
    e.add_workload(job("d-server", "vision-dave", 2, priority=SERVER, t=2))
    assert e.admit_cycle(2) == []  # the group is full: it waits, nothing is preempted


def test_lower_priority_within_a_queue_lets_a_server_preempt_its_users_job():
    e = fair_engine()
    e.add_workload(job("a1", "vision-alice", 4, priority=BATCH))
    assert settle(e, 0) == ["a1"]
    e.add_workload(job("server", "vision-alice", 1, priority=SERVER, t=1))
    assert preempted(e.admit_cycle(1)) == [("a1", IN_CLUSTER_QUEUE)]


def test_inside_a_group_the_user_holding_less_goes_first_even_when_no_group_lends():
    e = fair_engine(vision_lends=0)
    e.add_workload(job("a1", "vision-alice", 2, priority=BATCH))
    e.add_workload(job("c1", "vision-carol", 4, priority=BATCH, t=1))
    assert sorted(settle(e, 1)) == ["a1", "c1"]  # 2 of vision's 8 left
    e.add_workload(job("a2", "vision-alice", 2, priority=BATCH, t=2))  # alice asked first ...
    e.add_workload(job("d1", "vision-dave", 2, priority=BATCH, t=3))  # ... dave holds nothing
    assert settle(e, 4) == ["d1"]


def test_inside_a_group_the_user_holding_less_goes_first_while_the_group_lends():
    e = fair_engine()
    e.add_workload(job("a1", "vision-alice", 2, priority=BATCH))
    e.add_workload(job("c1", "vision-carol", 4, priority=BATCH, t=1))
    assert sorted(settle(e, 1)) == ["a1", "c1"]  # 2 of vision's 8 left
    e.add_workload(job("a2", "vision-alice", 2, priority=BATCH, t=2))
    e.add_workload(job("d1", "vision-dave", 2, priority=BATCH, t=3))
    assert settle(e, 4) == ["d1"]


def borrowed_from_vision(gpus: int) -> Engine:
    """bob's preemptible ``p1`` on ``gpus`` of vision's lent GPUs, and alice's 4-GPU job."""
    e = fair_engine()
    e.add_workload(job("p1", "nlp-borrow", gpus, priority=PREEMPTIBLE))
    e.add_workload(job("a1", "vision-alice", 4, priority=BATCH, t=1))
    assert sorted(settle(e, 1)) == ["a1", "p1"]
    return e


def test_a_released_victim_is_not_readmitted_ahead_of_its_preemptor():
    e = borrowed_from_vision(2)
    e.add_workload(job("c0", "vision-carol", 5, priority=BATCH, t=2))  # over quota_user: never
    e.add_workload(job("c1", "vision-carol", 4, priority=BATCH, t=3))  # behind it in its queue
    assert settle(e, 3) == ["c1"]


def test_the_room_a_preemptor_makes_is_not_taken_by_others_meanwhile():
    e = borrowed_from_vision(1)
    e.add_workload(job("c1", "vision-carol", 4, priority=BATCH, t=2))  # needs p1's GPU too
    e.add_workload(job("p2", "nlp-borrow", 1, priority=PREEMPTIBLE, t=3))
    assert settle(e, 3) == ["c1"]
    assert e.admitted("nlp-borrow") == []


def test_a_fractional_request_parsed_by_the_scheduler_is_counted_in_milli_units():
    """A server asking for half a CPU: the scheduler's parsed requests are Fractions, whose
    text ("1/2") is no Kubernetes quantity."""
    from fractions import Fraction

    from gpulab.kubesim.kueue.controller import milli

    assert milli(Fraction(1, 2)) == 500
    assert milli("1500m") == 1500
