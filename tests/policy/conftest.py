"""Policy fixtures: the demo policy, and a small valid policy as a dict to break per test."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_POLICY = ROOT / "hub" / "demo" / "policy.yaml"

BASE: dict[str, Any] = {
    "version": 1,
    "default_group": "default",
    "groups": {
        "vision": {
            "images": {"projects": ["vision", "shared"], "patterns": ["harbor.local/extra/*"]},
            "profiles": ["gpu", "cpu"],
            "gpu": {
                "types": ["a100"],
                "per_server": 4,
                "per_job": 8,
                "quota_user": 8,
                "quota_group": 16,
            },
            "jobs": {"max_runtime": "24h"},
            "idle": {"timeout": "1h", "gpu_threshold": 10},
        },
        "nlp": {
            "images": {"projects": ["nlp", "shared"]},
            "profiles": ["cpu", "gpu-small"],
            "gpu": {
                "types": ["t4"],
                "per_server": 1,
                "per_job": 2,
                "quota_user": 2,
                "quota_group": 4,
            },
            "jobs": {"max_runtime": "48h"},
            "idle": {"timeout": "30m", "gpu_threshold": 5},
            "kernels": {"action": "warn"},
        },
        "default": {"images": {"projects": ["shared"]}, "profiles": ["cpu"]},
    },
    "profiles": {
        "gpu": {"gpu_type": "a100", "gpus": [1, 2, 4, 8], "default": True},
        "gpu-small": {"gpu_type": "t4", "gpus": [1, 2]},
        "cpu": {"display_name": "CPU only"},
    },
    "gpu_types": {
        "a100": {"max_per_node": 8},
        "t4": {"max_per_node": 4},
    },
    "catalogue": {
        "source": "static",
        "static": [
            {"image": "harbor.local/vision/pytorch:2.4"},
            {"image": "harbor.local/nlp/pytorch:2.4"},
            {"image": "harbor.local/shared/base:1"},
        ],
    },
}


@pytest.fixture
def base() -> dict[str, Any]:
    """A fresh deep copy of a small valid policy, to edit in one test."""
    return copy.deepcopy(BASE)


@pytest.fixture
def demo_path() -> Path:
    return DEMO_POLICY
