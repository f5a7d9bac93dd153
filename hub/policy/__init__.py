"""The admin's policy: groups, profiles, GPU types, storage, catalogue source and S3.

See docs/policy.md for the schema. In short::

    from gpulab.hub.policy import Policy, PolicyError, load_policy, parse_policy, PolicyFile
    policy = load_policy("policy.yaml")
    ent = policy.entitlement(groups=["vision"])   # None = no access

The modules, each a step that imports only the ones before it: ``quantities``, ``images`` and
``errors`` (leaves); ``model`` (each section's fields); ``caps`` (a group's CPU and memory
caps, written or derived from its profiles); ``crosscheck`` (references between sections); ``entitlement`` (merging a user's groups); ``document`` (the whole ``Policy``);
``parse`` (document -> Policy); ``load`` (file -> Policy); ``watch`` (reload on change).
"""

from __future__ import annotations

from .caps import GroupCaps, group_caps, profile_cpu_millis, profile_memory_bytes
from .document import Policy, entitlement_for
from .entitlement import Entitlement
from .errors import PolicyError
from .images import ImageRef, parse_image_ref
from .load import load_policy
from .model import (
    CatalogueConfig,
    CpuQuota,
    CpuRange,
    DatasetMount,
    GpuLimits,
    GpuType,
    GroupPolicy,
    HarborSource,
    HomeStorage,
    IdleRules,
    ImageRules,
    JobRules,
    KernelRules,
    MemoryQuota,
    MemoryRange,
    PlatformConfig,
    ProfilePolicy,
    S3Config,
    StaticImage,
    StorageConfig,
    Toleration,
)
from .parse import format_validation_error, parse_policy, read_yaml
from .quantities import (
    cpu_millicores,
    format_bytes,
    format_cpu,
    format_duration,
    parse_duration,
    parse_quantity,
    quantity_bytes,
)
from .watch import PolicyFile

__all__ = [
    "CatalogueConfig",
    "CpuQuota",
    "CpuRange",
    "DatasetMount",
    "Entitlement",
    "GpuLimits",
    "GpuType",
    "GroupCaps",
    "GroupPolicy",
    "PlatformConfig",
    "HarborSource",
    "HomeStorage",
    "IdleRules",
    "ImageRef",
    "ImageRules",
    "JobRules",
    "KernelRules",
    "MemoryQuota",
    "MemoryRange",
    "Policy",
    "PolicyError",
    "PolicyFile",
    "ProfilePolicy",
    "S3Config",
    "StaticImage",
    "StorageConfig",
    "Toleration",
    "cpu_millicores",
    "entitlement_for",
    "format_bytes",
    "format_cpu",
    "format_duration",
    "format_validation_error",
    "group_caps",
    "load_policy",
    "parse_duration",
    "parse_image_ref",
    "parse_policy",
    "parse_quantity",
    "profile_cpu_millis",
    "profile_memory_bytes",
    "quantity_bytes",
    "read_yaml",
]
