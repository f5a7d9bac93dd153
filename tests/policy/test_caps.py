"""CPU and memory caps in the policy: per job (``jobs.max_cpu``, ``jobs.max_memory``, by
default the group's largest profile) and per group (``cpu.quota_group``,
``memory.quota_group``), their checks, and how a user's groups merge them."""

from __future__ import annotations

import json

import pytest
import yaml
from gpulab.hub.policy import PolicyError, group_caps, parse_policy

from tests.policy.test_cli import gpulab

GIB = 1 << 30


def sized(base, cpu=("500m", 2), memory=("1Gi", "4Gi"), gpu=(1, 8), gpu_memory=("2Gi", "32Gi")):
    """``base`` with amounts on its profiles (``cpu`` and ``gpu``; ``gpu-small`` has none)."""
    base["profiles"]["cpu"]["cpu"] = {"guarantee": cpu[0], "limit": cpu[1]}
    base["profiles"]["cpu"]["memory"] = {"guarantee": memory[0], "limit": memory[1]}
    base["profiles"]["gpu"]["cpu"] = {"guarantee": gpu[0], "limit": gpu[1]}
    base["profiles"]["gpu"]["memory"] = {"guarantee": gpu_memory[0], "limit": gpu_memory[1]}
    return base


def problems(data) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(data)
    return info.value.problems


def test_per_job_caps_default_to_the_groups_largest_profile(base):
    policy = parse_policy(sized(base))
    vision = group_caps(policy.groups["vision"], policy.profiles)  # gpu and cpu
    default = group_caps(policy.groups["default"], policy.profiles)  # cpu only
    assert (vision.job_cpu_millis, vision.job_memory_bytes) == (8000, 32 * GIB)
    assert (default.job_cpu_millis, default.job_memory_bytes) == (2000, 4 * GIB)
    assert vision.job_cpu_derived and vision.job_memory_derived


def test_a_profile_with_only_a_guarantee_gives_its_guarantee(base):
    base["profiles"]["cpu"]["cpu"] = {"guarantee": 3}
    policy = parse_policy(base)
    assert group_caps(policy.groups["default"], policy.profiles).job_cpu_millis == 3000


def test_written_caps_win_over_the_profiles(base):
    base["groups"]["vision"]["jobs"].update(max_cpu="500m", max_memory="2Gi")
    policy = parse_policy(sized(base))
    caps = group_caps(policy.groups["vision"], policy.profiles)
    assert (caps.job_cpu_millis, caps.job_memory_bytes) == (500, 2 * GIB)
    assert not caps.job_cpu_derived


def test_group_quotas_have_no_default(base):
    policy = parse_policy(sized(base))
    caps = group_caps(policy.groups["vision"], policy.profiles)
    assert caps.group_cpu_millis is None and caps.group_memory_bytes is None


def test_uncapped_groups_are_one_warning_per_amount(base):
    warnings = parse_policy(base).warnings  # no profile names an amount
    assert (
        "jobs.max_cpu: not set in groups default, nlp, vision, and none of their profiles names "
        "a cpu amount; their jobs may ask for any cpu"
    ) in warnings
    assert not [w for w in parse_policy(sized(base)).warnings if "jobs.max_" in w]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("max_cpu", 0, "groups.vision.jobs.max_cpu: 0: must be more than 0 CPUs"),
        ("max_cpu", "lots", "groups.vision.jobs.max_cpu: 'lots': not a Kubernetes quantity"),
        ("max_memory", "8GB", "groups.vision.jobs.max_memory: '8GB': not a Kubernetes quantity"),
        ("max_memory", "0", "groups.vision.jobs.max_memory: '0': must be more than 0 bytes"),
    ],
)
def test_a_bad_per_job_cap_names_its_field(base, key, value, expected):
    base["groups"]["vision"]["jobs"][key] = value
    [problem] = problems(sized(base))
    assert problem.startswith(expected), problem


def test_a_bad_group_quota_names_its_field(base):
    base["groups"]["nlp"]["memory"] = {"quota_group": "lots"}
    base["groups"]["nlp"]["cpu"] = {"quota_gruop": 4}
    found = problems(sized(base))
    assert found[0].startswith("groups.nlp.cpu.quota_gruop: unknown key (allowed: quota_group)")
    assert found[1].startswith("groups.nlp.memory.quota_group: 'lots': not a Kubernetes quantity")


def test_a_cpu_quota_below_the_largest_job_is_an_error(base):
    base["groups"]["default"]["cpu"] = {"quota_group": 1}
    assert problems(sized(base)) == [
        "groups.default.cpu.quota_group: 1 is less than groups.default.jobs.max_cpu 2 (its "
        "default: the group's largest profile) (cpu.quota_group must be at least the largest "
        "job, or that job can never run)"
    ]


def test_a_memory_quota_below_a_servers_guarantee_is_an_error(base):
    base["groups"]["vision"]["jobs"]["max_memory"] = "1Gi"
    base["groups"]["vision"]["memory"] = {"quota_group": "1Gi"}
    assert problems(sized(base)) == [
        "groups.vision.memory.quota_group: 1Gi is less than profiles.gpu.memory.guarantee 2Gi "
        "(listed at groups.vision.profiles[0]); such a server could never start"
    ]


def test_merged_caps_are_the_most_generous_and_the_quota_is_the_first_groups(base):
    base["groups"]["vision"]["jobs"]["max_cpu"] = 16
    base["groups"]["vision"]["cpu"] = {"quota_group": 32}
    base["groups"]["nlp"]["cpu"] = {"quota_group": 8}
    base["profiles"]["gpu-small"]["cpu"] = {"limit": 4}
    base["profiles"]["gpu-small"]["memory"] = {"limit": "8Gi"}
    policy = parse_policy(sized(base))
    both = policy.entitlement(["nlp", "vision"])  # vision first in policy order
    assert (both.job_max_cpu_millis, both.job_max_memory_bytes) == (16000, 32 * GIB)
    assert (both.quota_group, both.cpu_quota_limit, both.memory_quota_limit) == (
        "vision",
        32000,
        None,
    )
    assert policy.entitlement(["nlp"]).cpu_quota_limit == 8000


def test_an_uncapped_group_makes_the_merge_uncapped(base):
    sized(base)
    del base["profiles"]["gpu"]["cpu"]  # vision's profiles name no CPU amount
    base["profiles"]["cpu"]["cpu"] = {}
    base["profiles"]["gpu-small"]["cpu"] = {"limit": 4}  # nlp's jobs: at most 4 CPUs
    policy = parse_policy(base)
    assert policy.entitlement(["nlp"]).job_max_cpu_millis == 4000
    assert policy.entitlement(["vision", "nlp"]).job_max_cpu_millis is None


def test_check_policy_names_the_field_of_a_bad_cap(tmp_path, base):
    base["groups"]["nlp"]["jobs"]["max_cpu"] = "-2"
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(sized(base), sort_keys=False))
    result = gpulab("admin", "check-policy", "--json", str(path))
    assert result.returncode == 1
    [problem] = json.loads(result.stdout)["problems"]
    assert problem.startswith("groups.nlp.jobs.max_cpu: '-2': a CPU amount cannot be negative")


def test_check_policy_shows_each_groups_caps_after_their_defaults(demo_path):
    result = gpulab("admin", "check-policy", "--json", str(demo_path))
    groups = {g["name"]: g for g in json.loads(result.stdout)["groups"]}
    sizes = ("job_max_cpu", "job_max_memory", "cpu_quota_group", "memory_quota_group")
    assert [groups["default"][k] for k in sizes] == ["2", "4Gi", "4", "16Gi"]
    assert [groups["vision"][k] for k in sizes] == ["8", "32Gi", "16", "64Gi"]
