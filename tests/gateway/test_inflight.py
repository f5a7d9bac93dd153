"""Which submits need the quota group's ledger, and how the gateway's own reservations of
submits in flight are kept (pure: the policy of the end-to-end tests, a clock given)."""

from __future__ import annotations

from pathlib import Path

from gpulab.hub.jobs.gateway.inflight import InFlight, needs_ledger
from gpulab.hub.jobs.spec import parse_job_spec
from gpulab.hub.jobs.validate import job_request
from gpulab.hub.policy import load_policy
from gpulab.hub.workload.admission import WorkloadRequest

POLICY = load_policy(Path(__file__).resolve().parents[1] / "e2e" / "policy.yaml")
IMAGE = "harbor.local/shared/scipy:2024.10"


def request(group: str, gpus: int = 0) -> WorkloadRequest:
    ent = POLICY.entitlement(groups=[group])
    assert ent is not None
    spec = parse_job_spec({"name": "t", "image": IMAGE, "command": ["true"], "gpus": gpus})
    return job_request(spec, ent, POLICY)


def test_a_gpu_job_needs_the_ledger() -> None:
    assert needs_ledger(request("vision", gpus=1))


def test_a_cpu_job_in_a_group_without_cpu_or_memory_quota_does_not() -> None:
    assert not needs_ledger(request("vision"))


def test_a_cpu_job_in_a_group_with_a_cpu_quota_does() -> None:
    assert needs_ledger(request("default"))


def test_a_reservation_counts_until_its_job_is_seen() -> None:
    inflight = InFlight(ttl=60, clock=lambda: 1000.0)
    entry = inflight.reservation(request("vision"), "alice", "t-aaaaaa")
    inflight.add("vision", entry)
    assert inflight.entries("vision", seen=lambda e: False) == [entry]
    assert inflight.entries("vision", seen=lambda e: True) == []
    assert not inflight.holds("vision", entry.key)  # dropped once seen


def test_a_reservation_expires() -> None:
    now = [1000.0]
    inflight = InFlight(ttl=60, clock=lambda: now[0])
    inflight.add("vision", inflight.reservation(request("vision"), "alice", "t-aaaaaa"))
    now[0] += 61
    assert inflight.entries("vision", seen=lambda e: False) == []


def test_reservations_are_kept_per_group() -> None:
    inflight = InFlight(ttl=60, clock=lambda: 1000.0)
    entry = inflight.reservation(request("vision"), "alice", "t-aaaaaa")
    inflight.add("vision", entry)
    assert inflight.entries("nlp", seen=lambda e: False) == []
    assert inflight.drop("vision", entry.key)
    assert inflight.entries("vision", seen=lambda e: False) == []
