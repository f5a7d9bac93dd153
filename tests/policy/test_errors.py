"""Every validation rule gives one exact, human line: path, value, what is allowed."""

from __future__ import annotations

import pytest
from gpulab.hub.policy import PolicyError, parse_policy


def problems(data) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(data)
    return info.value.problems


def test_per_server_above_max_per_node(base):
    base["groups"]["vision"]["gpu"]["per_server"] = 9
    base["groups"]["vision"]["gpu"]["quota_user"] = 16
    assert problems(base) == [
        "groups.vision.gpu.per_server: 9 exceeds gpu_types.a100.max_per_node 8"
    ]


def test_group_profile_that_does_not_exist(base):
    base["groups"]["vision"]["profiles"] = ["cpu", "gpu-xl"]
    assert problems(base) == [
        "groups.vision.profiles[1]: 'gpu-xl' is not a profile (profiles: cpu, gpu, gpu-small)"
    ]


def test_profile_gpu_type_not_defined(base):
    base["profiles"]["gpu"]["gpu_type"] = "h100"
    assert "profiles.gpu.gpu_type: 'h100' is not defined in gpu_types (defined: a100, t4)" in (
        problems(base)
    )


def test_default_group_not_a_group(base):
    base["default_group"] = "guests"
    assert problems(base) == [
        "default_group: 'guests' is not a group (groups: default, nlp, vision)"
    ]


def test_quota_user_below_per_server(base):
    base["groups"]["vision"]["gpu"]["quota_user"] = 2
    assert problems(base) == [
        "groups.vision.gpu.quota_user: 2 is less than groups.vision.gpu.per_server 4 "
        "(quota_user must be at least per_server and per_job, or that limit can never be used)",
        "groups.vision.gpu.quota_user: 2 is less than groups.vision.gpu.per_job 8 "
        "(quota_user must be at least per_server and per_job, or that limit can never be used)",
    ]


def test_quota_group_below_quota_user_is_only_a_warning(base):
    base["groups"]["vision"]["gpu"]["quota_group"] = 8
    base["groups"]["vision"]["gpu"]["quota_user"] = 12
    policy = parse_policy(base)
    assert (
        "groups.vision.gpu.quota_group: 8 is less than groups.vision.gpu.quota_user 12; "
        "one user can never reach their own quota"
    ) in policy.warnings


def test_group_gpu_type_not_defined(base):
    base["groups"]["nlp"]["gpu"]["types"] = ["t4", "v100"]
    assert problems(base) == [
        "groups.nlp.gpu.types[1]: 'v100' is not defined in gpu_types (defined: a100, t4)"
    ]


def test_group_profile_with_a_gpu_type_the_group_may_not_use(base):
    base["groups"]["nlp"]["profiles"] = ["cpu", "gpu"]
    assert problems(base) == [
        "groups.nlp.profiles[1]: 'gpu' uses GPU type 'a100', which groups.nlp.gpu.types "
        "does not allow (allowed: t4)"
    ]


def test_gpu_profile_in_a_cpu_only_group(base):
    base["groups"]["default"]["profiles"] = ["gpu"]
    assert problems(base) == [
        "groups.default.profiles[0]: 'gpu' is a GPU profile but groups.default.gpu.per_server "
        "is 0 (list only CPU profiles, or allow GPUs)"
    ]


def test_profile_gpu_choice_above_max_per_node(base):
    base["profiles"]["gpu-small"]["gpus"] = [1, 8]
    assert problems(base) == ["profiles.gpu-small.gpus[1]: 8 exceeds gpu_types.t4.max_per_node 4"]


def test_gpu_profile_without_gpu_choices(base):
    base["profiles"]["gpu"]["gpus"] = []
    assert problems(base) == [
        "profiles.gpu: gpu_type is 'a100' but gpus is empty; list the GPU counts offered, "
        "e.g. gpus: [1, 2]"
    ]


def test_two_default_profiles(base):
    base["profiles"]["cpu"]["default"] = True
    assert problems(base) == [
        "profiles.cpu.default: true, but profiles.gpu is already the default; only one profile "
        "may be the default"
    ]


def test_dataset_mount_path_collides_with_home(base):
    base["storage"] = {
        "home": {"mount_path": "/home/jovyan"},
        "datasets": [{"name": "imagenet", "claim": "ds", "mount_path": "/home/jovyan/data"}],
    }
    assert problems(base) == [
        "storage.datasets[0].mount_path: '/home/jovyan/data' overlaps storage.home.mount_path "
        "'/home/jovyan'; each mount needs its own directory"
    ]


def test_dataset_mount_path_dev_shm_is_reserved(base):
    base["storage"] = {"datasets": [{"name": "shm", "claim": "ds", "mount_path": "/dev/shm"}]}
    assert problems(base) == [
        "storage.datasets[0].mount_path: '/dev/shm': /dev/shm is reserved (gpulab mounts "
        "memory-backed shared memory there)"
    ]


def test_dataset_name_must_be_a_dns_label(base):
    base["storage"] = {"datasets": [{"name": "ImageNet", "claim": "ds", "mount_path": "/ds"}]}
    assert problems(base) == [
        "storage.datasets[0].name: 'ImageNet': not a DNS label (lowercase letters, digits and "
        "'-', at most 63 characters, starting and ending with a letter or digit)"
    ]


def test_dataset_claim_must_be_a_dns_label(base):
    base["storage"] = {"datasets": [{"name": "ds", "claim": "my_claim", "mount_path": "/ds"}]}
    assert problems(base)[0].startswith("storage.datasets[0].claim: 'my_claim': not a DNS label")


def test_two_datasets_on_one_mount_path(base):
    base["storage"] = {
        "datasets": [
            {"name": "a", "claim": "a", "mount_path": "/datasets/x"},
            {"name": "b", "claim": "b", "mount_path": "/datasets/x"},
        ]
    }
    assert problems(base) == [
        "storage.datasets[1].mount_path: '/datasets/x' is storage.datasets[0].mount_path "
        "'/datasets/x'; each mount needs its own directory"
    ]


def test_snapshot_on_user_delete_needs_a_snapshot_class(base):
    base["storage"] = {"on_user_delete": "snapshot"}
    assert problems(base) == [
        "storage.snapshot_class: missing; storage.on_user_delete 'snapshot' needs a "
        "VolumeSnapshotClass name"
    ]


def test_harbor_source_requires_harbor_url(base):
    base["catalogue"] = {"source": "harbor", "harbor": {"projects": ["vision"]}}
    assert problems(base) == ["catalogue.harbor.url: missing; catalogue.source 'harbor' needs it"]


def test_harbor_source_requires_harbor_section(base):
    base["catalogue"] = {"source": "harbor"}
    assert problems(base) == [
        "catalogue.harbor: missing; catalogue.source 'harbor' needs it "
        "(url, projects, username_env, password_env)"
    ]


def test_warn_before_must_be_shorter_than_timeout(base):
    base["groups"]["vision"]["idle"]["warn_before"] = "2h"
    assert problems(base) == [
        "groups.vision.idle.warn_before: 2h must be shorter than groups.vision.idle.timeout 1h"
    ]


def test_bad_duration(base):
    base["groups"]["vision"]["idle"]["timeout"] = "an hour"
    assert problems(base) == [
        "groups.vision.idle.timeout: 'an hour': not a duration (use seconds as an integer, or a "
        "string like 90s, 30m, 24h, 7d, 1h30m)"
    ]


def test_bad_quantity(base):
    base["profiles"]["cpu"]["memory"] = {"limit": "8GB"}
    assert problems(base) == [
        "profiles.cpu.memory.limit: '8GB': not a Kubernetes quantity such as 512Mi, 8Gi, 1.5, "
        "500m or 1e9"
    ]


def test_unsupported_version(base):
    base["version"] = 2
    assert problems(base) == ["version: 2: input should be 1"]


def test_unknown_key_names_the_key_and_lists_allowed_keys(base):
    base["groups"]["vision"]["gpu"]["per_sever"] = 3
    assert problems(base) == [
        "groups.vision.gpu.per_sever: unknown key "
        "(allowed: borrow_max, lend_idle, per_job, per_server, quota_group, quota_user, types)"
    ]


def test_unknown_top_level_key(base):
    base["group"] = {}
    assert problems(base) == [
        "group: unknown key (allowed: catalogue, default_group, gpu_types, groups, platform, profiles, "
        "s3, storage, version)"
    ]


def test_unknown_key_does_not_hide_cross_field_problems(base):
    base["groups"]["vision"]["gpu"]["per_sever"] = 3
    base["groups"]["vision"]["profiles"] = ["gpu", "gpu-xl"]
    found = problems(base)
    assert len(found) == 2
    assert found[1].startswith("groups.vision.profiles[1]: 'gpu-xl' is not a profile")


def test_all_problems_are_collected(base):
    base["default_group"] = "guests"
    base["profiles"]["gpu"]["gpu_type"] = "h100"
    base["groups"]["nlp"]["gpu"]["per_server"] = "two"
    base["storage"] = {"home": {"mount_path": "home"}}
    found = problems(base)
    assert [p.split(":")[0] for p in found] == [
        "groups.nlp.gpu.per_server",
        "storage.home.mount_path",
        "default_group",
        "profiles.gpu.gpu_type",
    ]


def test_yaml_syntax_error_reports_line_and_column():
    text = "version: 1\ngroups:\n  vision: [a, b\n  nlp: {}\n"
    with pytest.raises(PolicyError) as info:
        parse_policy(text)
    assert info.value.problems == [
        "line 4, column 6: YAML error: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence at line 3)"
    ]


def test_yaml_duplicate_key_is_an_error():
    with pytest.raises(PolicyError) as info:
        parse_policy("version: 1\ngroups: {}\ngroups: {}\n")
    assert info.value.problems == [
        "line 3, column 1: YAML error: duplicate key 'groups' (first at line 2)"
    ]


def test_policy_that_is_not_a_mapping():
    with pytest.raises(PolicyError) as info:
        parse_policy("- a\n- b\n")
    assert info.value.problems == ["(top level): list: the policy must be a mapping of keys"]


def test_error_message_starts_with_the_file_name(tmp_path):
    from gpulab.hub.policy import load_policy

    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\ndefault_group: guests\n")
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"{path}: invalid policy (1 problem)\n  default_group:")


def test_group_gpu_profile_with_every_choice_above_per_server(base):
    base["profiles"]["gpu-small"]["gpus"] = [2, 4]
    assert problems(base) == [
        "groups.nlp.profiles[1]: 'gpu-small' offers gpus [2, 4], all above "
        "groups.nlp.gpu.per_server 1; the group could never use it"
    ]


def test_gpus_without_gpu_types(base):
    base["groups"]["default"]["gpu"] = {
        "per_server": 1,
        "per_job": 1,
        "quota_user": 1,
        "quota_group": 1,
    }
    assert problems(base) == [
        "groups.default.gpu.types: empty, but groups.default.gpu.per_server is 1 and per_job "
        "is 1; list the GPU types allowed (defined: a100, t4)"
    ]


def test_static_image_listed_twice(base):
    base["catalogue"]["static"].append({"image": "harbor.local/vision/pytorch:2.4"})
    assert problems(base) == [
        "catalogue.static[3].image: 'harbor.local/vision/pytorch:2.4' is already listed at "
        "catalogue.static[0]"
    ]
