"""CPU and memory at admission: the per-job caps (``jobs.max_cpu``, ``jobs.max_memory``) and the
quota group's CPU and memory quota, counted from the cluster's pods and Jobs like GPUs.

The policy is the demo's (hub/demo/policy.yaml): carol is in no group and gets ``default``
(CPU only; jobs capped at its cpu profile, 2 CPUs and 4Gi; the group holds at most 4 CPUs and
16Gi); alice is in ``vision`` (jobs up to 8 CPUs and 32Gi; 16 CPUs and 64Gi for the group)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gpulab.hub.jobs.spec import parse_job_spec
from gpulab.hub.jobs.validate import job_request
from gpulab.hub.policy import load_policy
from gpulab.hub.workload.admission import (
    GpuUsage,
    WorkloadRequest,
    admit,
    quota_applies,
)
from gpulab.hub.workload.holdings import Demand, count_usage, pod_spec_demand

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy(ROOT / "hub" / "demo" / "policy.yaml")
DEFAULT = POLICY.entitlement([])  # carol: the default group
VISION = POLICY.entitlement(["vision"])
CPU_IMAGE = "harbor.local/shared/scipy:2024.10"
GPU_IMAGE = "harbor.local/vision/pytorch:2.4-cuda12.4"
GIB = 1 << 30


def job(ent=DEFAULT, **spec: Any) -> WorkloadRequest:
    doc = {"name": "train", "image": CPU_IMAGE, "command": ["python", "train.py"], **spec}
    return job_request(parse_job_spec(doc), ent, POLICY)


def server(ent=DEFAULT, profile: str = "cpu") -> WorkloadRequest:
    chosen = ent.profile(profile)
    assert chosen is not None
    gpus = chosen.gpus[0] if chosen.gpus else 0
    return WorkloadRequest(
        kind="server",
        entitlement=ent,
        image=GPU_IMAGE if gpus else CPU_IMAGE,
        gpus=gpus,
        gpu_type=chosen.gpu_type,
        profile=chosen,
    )


def fields(problems) -> list[tuple[str, str]]:
    return [(p.field, p.code) for p in problems]


def held(group: str, name: str, cpu: str, memory: str, **labels: str) -> dict[str, Any]:
    """A live gpulab pod charged to ``group`` requesting ``cpu`` and ``memory``."""
    return {
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/managed-by": "gpulab",
                "gpulab.io/user": name,
                "gpulab.io/group": group,
                **labels,
            },
        },
        "spec": {"containers": [{"resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
        "status": {"phase": "Running"},
    }


# ----------------------------------------------------------------------------- per job


def test_carols_1024_cpu_64ti_job_is_refused_on_cpu_and_memory_with_the_maximum():
    problems = admit(job(cpu="1024", memory="64Ti"), GpuUsage())
    assert fields(problems) == [("cpu", "policy"), ("memory", "policy")]
    cpu, memory = problems
    assert cpu.message == "1024 CPUs is more than your groups allow in one job"
    assert cpu.allowed == "at most 2"
    assert memory.message == "64Ti of memory is more than your groups allow in one job"
    assert memory.allowed == "at most 4Gi"


def test_a_job_at_its_cap_is_admitted():
    assert admit(job(cpu="2", memory="4Gi"), GpuUsage()) == []


def test_a_written_cap_wins_over_the_profiles():
    assert admit(job(VISION, cpu="8", memory="32Gi"), GpuUsage()) == []
    [p] = admit(job(VISION, cpu="9"), GpuUsage())
    assert (p.field, p.allowed) == ("cpu", "at most 8")


def test_a_job_naming_no_amount_is_charged_its_profiles_guarantee():
    request = job()
    assert request.requested == Demand(cpu_millis=500, memory_bytes=GIB)
    assert (request.cpu_millis, request.memory_bytes) == (2000, 4 * GIB)  # the profile's limits


def test_a_job_amount_is_its_request_and_its_limit():
    request = job(cpu="1500m", memory="3Gi")
    assert request.requested == Demand(cpu_millis=1500, memory_bytes=3 * GIB)
    assert (request.cpu_millis, request.memory_bytes) == (1500, 3 * GIB)


# ----------------------------------------------------------------------------- group quota


def test_the_group_cpu_quota_counts_servers_and_jobs_and_refuses_with_429_code():
    pods = [held("default", "dave", "2", "1Gi"), held("default", "erin", "1500m", "1Gi")]
    usage = count_usage(pods, [], user="carol", group="default")
    assert (usage.group_cpu_millis, usage.group_memory_bytes) == (3500, 2 * GIB)
    [p] = admit(job(cpu="1"), usage)
    assert (p.field, p.code, p.allowed) == ("cpu", "quota", "at most 500m CPUs now")
    assert "group default already holds 3500m of its 4 CPUs" in p.message


def test_the_group_memory_quota_refuses_a_server_on_its_profile():
    usage = count_usage([held("default", "dave", "1", "15.5Gi")], [], user="carol", group="default")
    [p] = admit(server(), usage)  # the cpu profile guarantees 1Gi; 512Mi are left
    assert (p.field, p.code, p.allowed) == ("profile", "quota", "at most 512Mi of memory now")
    assert "group 'default' already holds 15872Mi of its 16Gi of memory" in p.message


def test_other_groups_holdings_do_not_count():
    usage = count_usage([held("vision", "alice", "16", "64Gi")], [], user="carol", group="default")
    assert admit(job(cpu="2"), usage) == []


def test_a_group_without_cpu_or_memory_quota_is_never_refused_for_them():
    policy = load_policy(ROOT / "tests" / "e2e" / "policy.yaml")
    ent = policy.entitlement(["vision"])
    assert ent.cpu_quota_limit is None and ent.memory_quota_limit is None
    usage = GpuUsage(group_cpu_millis=10**9, group_memory_bytes=10**15)
    request = job_request(
        parse_job_spec({"name": "x", "image": CPU_IMAGE, "command": ["x"]}), ent, policy
    )
    assert admit(request, usage) == []


def test_a_cpu_server_is_counted_only_where_a_cpu_or_memory_quota_applies():
    assert quota_applies(server(DEFAULT))
    no_quota = load_policy(ROOT / "tests" / "e2e" / "policy.yaml").entitlement(["vision"])
    assert not quota_applies(server(no_quota))


# ----------------------------------------------------------------------------- holdings


def test_a_container_with_only_limits_requests_its_limits():
    spec = {"containers": [{"resources": {"limits": {"cpu": "2", "memory": "1Gi"}}}]}
    assert pod_spec_demand(spec) == Demand(2000, GIB)


def test_containers_add_up_and_a_larger_init_container_wins():
    one = {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}
    init = {"resources": {"requests": {"cpu": "3", "memory": "512Mi"}}}
    spec = {"containers": [one, one], "initContainers": [init]}
    assert pod_spec_demand(spec) == Demand(3000, 2 * GIB)


def test_a_job_without_a_pod_holds_its_templates_amounts_once():
    labels = {"gpulab.io/job-id": "j1", "gpulab.io/gpus": "0"}
    pod = held("default", "carol", "2", "4Gi", **labels)
    template = {"spec": {"containers": pod["spec"]["containers"]}}
    job_obj = {"metadata": pod["metadata"], "spec": {"template": template}, "status": {}}
    alone = count_usage([], [job_obj], user="carol", group="default")
    both = count_usage([pod], [job_obj], user="carol", group="default")
    assert alone.group_cpu_millis == both.group_cpu_millis == 2000


def test_a_finished_pod_holds_nothing():
    pod = held("default", "carol", "2", "4Gi")
    pod["status"]["phase"] = "Succeeded"
    usage = count_usage([pod], [], user="carol", group="default")
    assert (usage.group_cpu_millis, usage.group_memory_bytes) == (0, 0)
