"""A GPU type that is a slice (MIG, time-sliced) shows on the spawn page under its label,
and its free slices show like free GPUs."""

from __future__ import annotations

from gpulab.spawner.form import GpuTypeAvailability, build_profile_list
from spawner_testlib import demo_images, demo_policy

POLICY = demo_policy()
SLICES = {"a100": "1/7 A100, 10 GB"}
FREE = {
    "a100": GpuTypeAvailability(
        "a100", total=14, free=9, max_free_on_node=7, nodes=2, max_on_node=7
    )
}


def _gpu_profile() -> dict:
    return build_profile_list(
        POLICY.entitlement(["vision"]),
        demo_images(POLICY),
        availability=FREE,
        gpu_labels=SLICES,
    )[0]


def test_slice_sizes_are_named_by_the_types_label() -> None:
    choices = _gpu_profile()["profile_options"]["gpus"]["choices"]
    assert choices["1"]["display_name"] == "1 × 1/7 A100, 10 GB"


def test_free_slices_show_like_free_gpus() -> None:
    assert "; 9 of 14 × 1/7 A100, 10 GB free" in _gpu_profile()["description"]
