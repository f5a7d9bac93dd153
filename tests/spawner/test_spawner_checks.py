"""Never trust the form: each refusal names the field, the value and what is allowed."""

from __future__ import annotations

from gpulab.spawner.checks import (
    GpuUsage,
    SpawnRequest,
    check_named_server,
    check_spawn_request,
    parse_user_options,
)
from gpulab.spawner.form import offered_images_by_profile
from spawner_testlib import demo_images, demo_policy

POLICY = demo_policy()
VISION = POLICY.entitlement(["vision"])
NLP = POLICY.entitlement(["nlp"])
CATALOGUE = {i.reference for i in demo_images(POLICY)}
VISION_IMG = "harbor.local/vision/pytorch:2.4-cuda12.4"


def check(ent=VISION, usage=None, **opts):
    return check_spawn_request(
        parse_user_options(opts),
        ent,
        offered_images=offered_images_by_profile(ent, demo_images(POLICY)),
        catalogue=CATALOGUE,
        usage=usage,
    )


def test_a_valid_request_has_no_problem():
    assert check(profile="gpu", image=VISION_IMG, gpus="2") == []


def test_an_empty_request_takes_the_default_profile_image_and_gpus():
    assert check() == []


def test_a_profile_of_another_group_is_refused():
    problems = check(ent=POLICY.entitlement([]), profile="gpu", image=VISION_IMG, gpus="1")
    assert problems == ["profile 'gpu' is not available to you; allowed: cpu"]


def test_an_image_of_another_group_is_refused_with_what_is_allowed():
    problems = check(profile="gpu", image="harbor.local/nlp/pytorch:2.4-cuda12.4", gpus="1")
    assert len(problems) == 1
    assert "image 'harbor.local/nlp/pytorch:2.4-cuda12.4' is not allowed" in problems[0]
    assert "allowed projects: shared, vision" in problems[0]


def test_an_image_outside_the_catalogue_is_refused():
    problems = check(profile="gpu", image="harbor.local/vision/evil:latest", gpus="1")
    assert problems == ["image 'harbor.local/vision/evil:latest' is not in the image catalogue"]


def test_sixteen_gpus_exceed_the_per_server_limit():
    problems = check(profile="gpu", image=VISION_IMG, gpus="16")
    assert problems == ["gpus: 16 exceeds your groups' limit of 2 GPUs per server (allowed: 1, 2)"]


def test_a_gpu_count_that_is_not_offered_is_refused():
    problems = check(ent=POLICY.entitlement(["vision"]), profile="gpu", image=VISION_IMG, gpus="0")
    assert problems == ["gpus: 0 is not offered for profile 'gpu' (allowed: 1, 2)"]


def test_gpus_must_be_a_number():
    assert check(profile="gpu", image=VISION_IMG, gpus="two") == [
        "gpus: 'two' is not a whole number"
    ]


def test_a_cpu_profile_takes_no_gpus():
    problems = check(profile="cpu", image="harbor.local/shared/scipy:2024.10", gpus="1")
    assert problems == ["gpus: profile 'cpu' is CPU-only, 1 GPUs requested (allowed: 0)"]


def test_user_quota_counts_servers_and_jobs_in_use():
    problems = check(usage=GpuUsage(user=3, group=3), profile="gpu", image=VISION_IMG, gpus="2")
    assert len(problems) == 1 and problems[0].startswith(
        "GPU quota: you already use 3 of your 4 GPUs (servers and jobs); 2 more requested."
    )


def test_group_quota_is_checked_too():
    problems = check(usage=GpuUsage(user=0, group=7), profile="gpu", image=VISION_IMG, gpus="2")
    assert problems == [
        "GPU quota: group 'vision' already uses 7 of its 8 GPUs (servers and jobs); 2 more "
        "requested. Stop a server or a job, or ask for 1 or fewer."
    ]


def test_cpu_spawns_need_no_gpu_quota():
    problems = check(
        usage=GpuUsage(user=4, group=8),
        profile="cpu",
        image="harbor.local/shared/scipy:2024.10",
    )
    assert problems == []


def test_no_entitlement_is_refused():
    req = SpawnRequest(profile=None, image=None, gpus=None)
    assert check_spawn_request(req, None) == [
        "your groups give no access to notebook servers (no group of the policy)"
    ]


def test_raw_form_lists_and_oversized_values_are_parsed_safely():
    req = parse_user_options({"profile": ["gpu"], "gpus": 2, "image": "x" * 10_000})
    assert req.profile == "gpu" and req.gpus == "2" and len(req.image) == 512


def test_named_servers_are_refused_when_the_policy_allows_none():
    assert check_named_server(NLP, "second", 0) == [
        "named servers are not enabled for your groups (only the default server)"
    ]


def test_named_servers_are_limited_to_the_policy_count():
    assert check_named_server(VISION, "third", 2) == [
        "you already have 2 named servers (your limit is 2)"
    ]
    assert check_named_server(VISION, "second", 1) == []
    assert check_named_server(NLP, "", 0) == []
