"""Policy checks: image, GPUs, GPU type, runtime, retries, datasets, quota (servers + jobs)."""

from __future__ import annotations

from gpulab.hub.jobs.spec import parse_job_spec
from gpulab.hub.jobs.validate import effective_gpu_type, effective_runtime, job_request
from gpulab.hub.workload.admission import GpuUsage, admit
from jobs_testlib import IMAGE

IDLE = GpuUsage()


def spec(**fields):
    return parse_job_spec(
        {"name": "train", "image": IMAGE, "command": ["python", "t.py"], **fields}
    )


def check(s, ent, policy, usage=IDLE, catalogue=None):
    return admit(job_request(s, ent, policy, catalogue_images=catalogue), usage)


def by_field(problems):
    return {p.field: p for p in problems}


def test_an_allowed_job_has_no_problems(policy, vision):
    assert (
        check(spec(gpus=4, max_runtime="24h", retries=3, datasets=["coco"]), vision, policy) == []
    )
    assert check(spec(), vision, policy, catalogue={IMAGE}) == []


def test_image_must_be_allowed_and_in_the_catalogue(policy, vision, default_ent):
    [p] = check(spec(image="harbor.example.org/nlp/bert:1"), vision, policy)
    assert p.field == "image" and p.code == "policy" and "vision" in p.allowed
    [p] = check(spec(), default_ent, policy)  # default group: shared only
    assert p.field == "image" and "shared" in p.allowed
    [p] = check(spec(), vision, policy, catalogue={"harbor.example.org/vision/other:1"})
    assert p.field == "image" and "catalogue" in p.message
    [p] = check(parse_job_spec({"name": "x", "command": ["x"]}), vision, policy)
    assert p.field == "image"


def test_gpus_within_the_per_job_limit(policy, vision, default_ent):
    [p] = check(spec(gpus=5), vision, policy)
    assert p.field == "gpus" and p.allowed == "at most 4" and p.code == "policy"
    shared = spec(image="harbor.example.org/shared/scipy:1", gpus=1)
    [p] = check(shared, default_ent, policy)
    assert p.field == "gpus" and p.allowed == "0"


def test_gpu_type_allowed_and_resolved(policy, vision, multi):
    s = spec(gpus=1)
    assert effective_gpu_type(s, vision) == "a100"  # the only type: implied
    shared = spec(image="harbor.example.org/shared/x:1", gpus=1)
    assert effective_gpu_type(shared, multi) is None
    [p] = check(shared, multi, policy)
    assert p.field == "gpu_type" and "a100, t4" in p.allowed
    [p] = check(spec(gpus=1, gpu_type="t4"), vision, policy)
    assert p.field == "gpu_type" and p.allowed == "one of: a100"
    [p] = check(spec(image="harbor.example.org/shared/x:1", gpus=2, gpu_type="t4"), multi, policy)
    assert p.field == "gpus" and "t4" in p.message and p.allowed == "at most 1"  # max_per_node


def test_runtime_retries_and_datasets(policy, vision, default_ent):
    found = by_field(
        check(spec(max_runtime="25h", retries=4, datasets=["coco", "nope"]), vision, policy)
    )
    assert found["max_runtime"].allowed == "at most 1d"
    assert found["retries"].allowed == "at most 3"
    assert found["datasets[1]"].allowed == "one of: imagenet, coco"
    assert set(found) == {"max_runtime", "retries", "datasets[1]"}
    assert effective_runtime(spec(), vision) == 86400
    assert effective_runtime(spec(max_runtime="10m"), vision) == 600
    assert effective_runtime(spec(), default_ent) == 7200


def test_quota_counts_the_users_servers_and_jobs(policy, vision):
    usage = GpuUsage(user=3, group=3, jobs=1)
    [p] = check(spec(gpus=2), vision, policy, usage)
    assert p.field == "gpus" and p.code == "quota" and p.allowed == "at most 1 now"
    assert check(spec(gpus=1), vision, policy, usage) == []
    assert (
        check(
            spec(gpus=0),
            GpuUsage(user=4, group=8) and vision,
            policy,
            GpuUsage(user=4, group=8),
        )
        == []
    )


def test_quota_of_the_group(policy, vision):
    usage = GpuUsage(user=0, group=7)
    [p] = check(spec(gpus=2), vision, policy, usage)
    assert p.code == "quota" and "group vision" in p.message and p.allowed == "at most 1 now"


def test_max_concurrent_jobs(policy, vision):
    [p] = check(spec(), vision, policy, GpuUsage(jobs=3))
    assert p.field == "jobs" and p.code == "quota" and "at most 3" in p.allowed
    assert check(spec(), vision, policy, GpuUsage(jobs=2)) == []


def test_policy_problems_do_not_also_report_quota(policy, vision):
    usage = GpuUsage(user=4, group=8)
    found = check(spec(gpus=9), vision, policy, usage)
    assert [p.code for p in found] == ["policy"]
