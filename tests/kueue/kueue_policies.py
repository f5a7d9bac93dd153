"""A small policy for the Kueue tests, as a dict to vary per test (tests/kueue/)."""

from __future__ import annotations

import copy
from typing import Any

from gpulab.hub.policy import Policy, parse_policy

NAMESPACE = "gpulab"

BASE: dict[str, Any] = {
    "version": 1,
    "default_group": "default",
    "groups": {
        "vision": {
            "images": {"projects": ["vision"]},
            "profiles": ["gpu", "cpu"],
            "gpu": {
                "types": ["a100", "a100-1g"],
                "per_server": 2,
                "per_job": 4,
                "quota_user": 4,
                "quota_group": 8,
                "lend_idle": 6,
                "borrow_max": 4,
            },
            "cpu": {"quota_group": "16500m"},
            "memory": {"quota_group": "64Gi"},
        },
        "nlp": {
            "images": {"projects": ["nlp"]},
            "profiles": ["gpu", "cpu"],
            "gpu": {
                "types": ["a100"],
                "per_server": 1,
                "per_job": 2,
                "quota_user": 2,
                "quota_group": 4,
            },
        },
        "default": {"images": {"projects": ["shared"]}, "profiles": ["cpu"]},
    },
    "profiles": {
        "gpu": {"gpu_type": "a100", "gpus": [1, 2], "default": True},
        "cpu": {"display_name": "CPU only"},
    },
    "gpu_types": {
        "a100": {"node_selector": {"nvidia.com/gpu.product": "A100"}, "max_per_node": 4},
        "a100-1g": {
            "resource": "nvidia.com/mig-1g.10gb",
            "node_selector": {"nvidia.com/gpu.product": "A100"},
            "max_per_node": 7,
        },
    },
    "platform": {"contact": "admins"},
}


def policy(**changes: Any) -> Policy:
    """BASE with ``groups__vision__gpu__quota_user=2``-style changes applied."""
    data = copy.deepcopy(BASE)
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return parse_policy(data)
