"""One admission check: a server and a job asking for the same thing get the same verdicts
for the rules they share, and each kind's own rules apply to that kind only."""

from __future__ import annotations

from typing import Any

import pytest
from gpulab.hub.policy import ProfilePolicy, parse_policy
from gpulab.hub.workload.admission import GpuUsage, WorkloadRequest, admit
from gpulab.hub.workload.holdings import Holder, count_usage

from tests.jobs.jobs_testlib import IMAGE, POLICY_YAML

POLICY = parse_policy(POLICY_YAML)
VISION = POLICY.entitlement(["vision"])  # a100 only; 2 per server, 4 per job; quota 4 / 8
GPU = VISION.profile("gpu")  # a100, 1 or 2 GPUs
T4 = ProfilePolicy(name="t4", gpu_type="t4", gpus=(1,))  # a type vision may not use
CATALOGUE = frozenset({IMAGE, "harbor.example.org/vision/old:1"})
IDLE = GpuUsage()


def request(kind: str, profile: ProfilePolicy | None = GPU, **fields: Any) -> WorkloadRequest:
    """The same ask as a server (with its profile) or as a job (GPU type and node size from
    the policy, as the gateway resolves them)."""
    gpu_type = fields.pop("gpu_type", profile.gpu_type if profile else None)
    base: dict[str, Any] = {
        "entitlement": VISION,
        "image": IMAGE,
        "gpus": 1,
        "gpu_type": gpu_type,
        "catalogue": CATALOGUE,
    }
    if kind == "server":
        base["profile"] = profile
    elif gpu_type in POLICY.gpu_types:
        base["node_gpus"] = POLICY.gpu_types[gpu_type].max_per_node
    return WorkloadRequest(kind=kind, **{**base, **fields})  # type: ignore[arg-type]


def verdicts(problems):
    return [(p.field, p.code) for p in problems]


SHARED = {
    "allowed": ({}, IDLE, []),
    "image not allowed": (
        {"image": "harbor.example.org/nlp/bert:1"},
        IDLE,
        [("image", "policy")],
    ),
    "image not in the catalogue": (
        {"image": "harbor.example.org/vision/evil:1"},
        IDLE,
        [("image", "policy")],
    ),
    "GPU type not allowed": ({"profile": T4}, IDLE, [("gpu_type", "policy")]),
    "over the per-item cap": ({"gpus": 5}, IDLE, [("gpus", "policy")]),
    "over the user quota": ({"gpus": 2}, GpuUsage(user=3, group=3), [("gpus", "quota")]),
    "over the group quota": ({"gpus": 2}, GpuUsage(user=0, group=7), [("gpus", "quota")]),
    "a policy problem hides the quota": (
        {"gpus": 5},
        GpuUsage(user=4, group=8),
        [("gpus", "policy")],
    ),
}


@pytest.mark.parametrize(("fields", "usage", "expected"), SHARED.values(), ids=SHARED.keys())
def test_a_server_and_a_job_get_the_same_verdicts_for_the_shared_rules(fields, usage, expected):
    server = admit(request("server", **fields), usage)
    job = admit(request("job", **fields), usage)
    assert verdicts(server) == verdicts(job) == expected


def test_the_spawn_page_quotes_values_and_the_api_shows_them_bare():
    [server] = admit(request("server", gpus=2), GpuUsage(group=7))
    [job] = admit(request("job", gpus=2), GpuUsage(group=7))
    assert "group 'vision' already uses 7 of its 8 GPUs" in server.message
    assert "group vision already uses 7 of its 8 GPUs" in job.message
    assert server.allowed == job.allowed == "at most 1 now"


def test_named_servers_are_a_server_rule():
    named = {"server_name": "second", "named_servers": 0}  # this policy allows none
    assert verdicts(admit(request("server", **named), IDLE)) == [("server_name", "policy")]
    assert admit(request("job", **named), IDLE) == []


def test_a_server_takes_one_of_its_profiles_gpu_counts():
    assert verdicts(admit(request("server", gpus=0), IDLE)) == [("gpus", "policy")]
    cpu = VISION.profile("cpu")
    assert verdicts(admit(request("server", profile=cpu, gpus=1), IDLE)) == [("gpus", "policy")]
    assert admit(request("job", gpus=0), IDLE) == []
    assert admit(request("job", profile=None, gpus=0), IDLE) == []


def test_job_limits_are_job_rules():
    limits = {"max_runtime": 90000, "retries": 9, "datasets": ("coco", "nope")}
    job = request("job", known_datasets=("imagenet", "coco"), **limits)
    assert {p.field for p in admit(job, IDLE)} == {"max_runtime", "retries", "datasets[1]"}
    assert admit(request("server", known_datasets=("imagenet", "coco"), **limits), IDLE) == []


def test_concurrent_jobs_are_a_job_quota():
    busy = GpuUsage(jobs=3)  # vision: at most 3 at a time
    assert verdicts(admit(request("job"), busy)) == [("jobs", "quota")]
    assert admit(request("server"), busy) == []


def test_a_job_must_name_its_gpu_type_when_several_are_possible():
    multi = POLICY.entitlement(["multi"])
    shared = "harbor.example.org/shared/x:1"
    job = request(
        "job", profile=None, entitlement=multi, image=shared, gpu_type=None, catalogue=None
    )
    assert verdicts(admit(job, IDLE)) == [("gpu_type", "policy")]
    job = request(
        "job", profile=None, entitlement=multi, image=shared, gpus=2, gpu_type="t4", catalogue=None
    )
    [p] = admit(job, IDLE)  # a t4 node has one GPU
    assert (p.field, p.allowed) == ("gpus", "at most 1")


def job_object(job_id: str, **status: Any) -> dict[str, Any]:
    labels = {
        "app.kubernetes.io/managed-by": "gpulab",
        "gpulab.io/job-id": job_id,
        "gpulab.io/user": "alice",
        "gpulab.io/group": "vision",
        "gpulab.io/gpus": "1",
    }
    return {"metadata": {"name": job_id, "labels": labels}, "status": status}


def test_usage_counts_the_users_unfinished_jobs():
    done = {"conditions": [{"type": "Complete", "status": "True"}]}
    jobs = [job_object("a"), job_object("b", **done), job_object("c")]
    jobs[2]["metadata"]["annotations"] = {"gpulab.io/cancelled-at": "2026-01-01T00:00:00Z"}
    jobs[2]["spec"] = {"suspend": True}
    usage = count_usage([], jobs, user="alice", group="vision")
    assert (usage.user, usage.group, usage.jobs) == (1, 1, 1)
    bob = count_usage([], jobs, user="bob", group="nlp")
    assert (bob.user, bob.group, bob.jobs, bob.holders) == (0, 0, 0, ())


HELD = GpuUsage(
    user=4,
    group=7,
    holders=(
        Holder("server", "alice/", "alice", "alice", 1, "vision"),
        Holder("job", "long-train", "alice", "alice", 3, "vision"),
        Holder("job", "sweep", "bob", "bob", 3, "vision"),
    ),
    counted_for="alice",
)


@pytest.mark.parametrize("kind", ["server", "job"])
def test_a_user_quota_refusal_names_what_holds_the_quota(kind):
    user_problem = admit(request(kind, gpus=1), HELD)[0]
    assert user_problem.message == (
        "you already use 4 of your 4 GPUs (your job long-train holds 3, your server alice/ "
        "holds 1); 1 more requested. Stop a server or a job first"
    )


def test_a_group_quota_refusal_names_every_holder_in_the_group():
    group_problem = admit(request("job", gpus=2), HELD)[1]
    assert group_problem.message == (
        "group vision already uses 7 of its 8 GPUs (your job long-train holds 3, your server "
        "alice/ holds 1, bob's job sweep holds 3); 2 more requested. Stop a server or a job, "
        "or ask for 1 or fewer"
    )


def test_no_quota_message_asks_for_zero_or_fewer():
    problems = admit(request("server", gpus=1), GpuUsage(user=4, group=4))
    assert problems and all("0 or fewer" not in p.message for p in problems)
