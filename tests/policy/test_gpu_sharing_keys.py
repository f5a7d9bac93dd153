"""GPU types that are slices (MIG, time-sliced) and the lending and borrowing keys."""

from __future__ import annotations

import pytest
from gpulab.hub.policy import PolicyError, parse_policy


def problems(data) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse_policy(data)
    return info.value.problems


@pytest.mark.parametrize(
    "resource",
    [
        "nvidia.com/gpu",
        "nvidia.com/mig-1g.10gb",
        "nvidia.com/mig-3g.40gb",
        "nvidia.com/gpu.shared",
        "amd.com/gpu",
        "gpu.example.org/A100_80GB",
    ],
)
def test_every_valid_extended_resource_name_is_accepted(base, resource):
    base["gpu_types"]["a100"]["resource"] = resource
    assert parse_policy(base).gpu_types["a100"].resource == resource


@pytest.mark.parametrize(
    "resource, says",
    [
        ("gpu", "has no domain prefix"),
        ("Nvidia.com/gpu", "is not a DNS subdomain"),
        ("nvidia..com/gpu", "is not a DNS subdomain"),
        ("nvidia.com/", "is not a resource name"),
        ("nvidia.com/-gpu", "is not a resource name"),
        ("nvidia.com/gpu.", "is not a resource name"),
        ("nvidia.com/g/pu", "is not a resource name"),
        ("nvidia.com/" + "g" * 64, "is not a resource name"),
        ("kubernetes.io/gpu", "Kubernetes' own"),
    ],
)
def test_an_invalid_resource_name_is_refused_with_its_field_path(base, resource, says):
    base["gpu_types"]["a100"]["resource"] = resource
    (problem,) = problems(base)
    assert problem.startswith("gpu_types.a100.resource: ") and says in problem


def test_a_slice_type_has_a_label_for_people(base):
    base["gpu_types"]["a100-1g"] = {
        "resource": "nvidia.com/mig-1g.10gb",
        "label": "1/7 A100, 10 GB",
        "max_per_node": 7,
    }
    assert parse_policy(base).gpu_types["a100-1g"].label == "1/7 A100, 10 GB"


def test_lending_more_than_the_group_quota_is_refused(base):
    base["groups"]["vision"]["gpu"]["lend_idle"] = 17
    assert problems(base) == [
        "groups.vision.gpu.lend_idle: 17 exceeds groups.vision.gpu.quota_group 16 "
        "(a group lends only idle GPUs of its own quota)"
    ]


def test_borrowing_while_nobody_lends_is_warned_of(base):
    base["groups"]["vision"]["gpu"]["borrow_max"] = 8
    warnings = parse_policy(base).warnings
    assert any(
        w.startswith("groups.vision.gpu.borrow_max: 8, but no group lends") for w in warnings
    )


def test_borrowing_less_than_a_job_is_warned_of(base):
    base["groups"]["vision"]["gpu"]["borrow_max"] = 2
    base["groups"]["nlp"]["gpu"]["lend_idle"] = 2
    assert (
        "groups.vision.gpu.borrow_max: 2 is less than groups.vision.gpu.per_job 8; a "
        "preemptible job larger than borrow_max can never start"
    ) in parse_policy(base).warnings
