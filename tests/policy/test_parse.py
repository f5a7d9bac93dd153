from __future__ import annotations

import pytest
from gpulab.hub.policy import Policy, PolicyError, load_policy, parse_policy


def test_demo_policy_parses(demo_path):
    policy = load_policy(demo_path)
    assert list(policy.groups) == ["vision", "nlp", "default"]
    assert policy.default_group == "default"
    assert policy.warnings == ()


def test_demo_policy_vision_limits(demo_path):
    gpu = load_policy(demo_path).groups["vision"].gpu
    assert (gpu.types, gpu.per_server, gpu.per_job, gpu.quota_user, gpu.quota_group) == (
        ("a100",),
        2,
        4,
        4,
        8,
    )


def test_demo_policy_catalogue_and_dataset(demo_path):
    policy = load_policy(demo_path)
    projects = {i.image.split("/")[1] for i in policy.catalogue.static}
    assert projects == {"vision", "nlp", "shared"}
    assert [d.name for d in policy.storage.datasets] == ["imagenet-mini"]
    assert policy.s3.credentials({"GPULAB_S3_ACCESS_KEY": "a", "GPULAB_S3_SECRET_KEY": "s"}) == (
        "a",
        "s",
    )


def test_parse_accepts_yaml_text_and_dict(base):
    import yaml

    assert parse_policy(yaml.safe_dump(base)) == parse_policy(base)


def test_durations_are_stored_in_seconds(base):
    base["groups"]["vision"]["idle"]["timeout"] = "1h30m"
    base["groups"]["vision"]["jobs"]["max_runtime"] = 7200
    group = parse_policy(base).groups["vision"]
    assert group.idle.timeout_seconds == 5400
    assert group.jobs.max_runtime_seconds == 7200


def test_profile_defaults_fill_name_display_name_and_shm(base):
    policy = parse_policy(base)
    gpu, cpu = policy.profiles["gpu"], policy.profiles["cpu"]
    assert (gpu.name, gpu.display_name, gpu.shm_size) == ("gpu", "gpu", "1Gi")
    assert (cpu.display_name, cpu.shm_size) == ("CPU only", "64Mi")


def test_cpu_accepts_millicores(base):
    base["profiles"]["cpu"]["cpu"] = {"guarantee": "500m", "limit": 2}
    cpu = parse_policy(base).profiles["cpu"].cpu
    assert (cpu.guarantee, cpu.limit) == (0.5, 2.0)


def test_models_are_frozen(base):
    policy = parse_policy(base)
    with pytest.raises(ValueError):
        policy.default_group = "nlp"  # type: ignore[misc]


def test_policy_model_validate_runs_cross_checks(base):
    base["default_group"] = "guests"
    with pytest.raises(PolicyError):
        Policy.model_validate(base)


def test_toleration_renders_camel_case_for_the_pod(base):
    base["gpu_types"]["a100"]["tolerations"] = [
        {
            "key": "nvidia.com/gpu",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 60,
        }
    ]
    gpu_type = parse_policy(base).gpu_types["a100"]
    assert gpu_type.k8s_tolerations() == [
        {
            "key": "nvidia.com/gpu",
            "operator": "Exists",
            "effect": "NoExecute",
            "tolerationSeconds": 60,
        }
    ]


def test_home_claim_name_uses_the_template(base):
    base["storage"] = {"home": {"claim_name_template": "home-{username}"}}
    assert parse_policy(base).storage.home.claim_name("alice") == "home-alice"


@pytest.mark.parametrize("contact", ["line one\nline two", "x" * 201])
def test_a_contact_is_one_short_line(base, contact):
    base["platform"] = {"contact": contact}
    with pytest.raises(PolicyError, match="platform.contact"):
        parse_policy(base)


def test_a_groups_contact_is_checked_like_the_platforms(base):
    base["groups"]["vision"]["contact"] = "tab\there"
    with pytest.raises(PolicyError, match="groups.vision.contact"):
        parse_policy(base)
