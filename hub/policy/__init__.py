"""The admin's policy: groups, profiles, GPU types, storage, catalogue source and S3.

See docs/policy.md for the schema. In short::

    from gpulab.hub.policy import Policy, PolicyError, load_policy, parse_policy, PolicyFile
    policy = load_policy("policy.yaml")
    ent = policy.entitlement(groups=["vision"])   # None = no access
"""

from __future__ import annotations

from .entitlement import Entitlement
from .errors import PolicyError
from .images import ImageRef, parse_image_ref
from .loader import PolicyFile, format_validation_error, load_policy, parse_policy, read_yaml
from .model import (
    CatalogueConfig,
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
    MemoryRange,
    Policy,
    ProfilePolicy,
    S3Config,
    StaticImage,
    StorageConfig,
    Toleration,
)
from .quantities import (
    cpu_millicores,
    format_bytes,
    format_cpu,
    format_duration,
    parse_duration,
    parse_quantity,
    quantity_bytes,
)

__all__ = [
    "CatalogueConfig",
    "CpuRange",
    "DatasetMount",
    "Entitlement",
    "GpuLimits",
    "GpuType",
    "GroupPolicy",
    "HarborSource",
    "HomeStorage",
    "IdleRules",
    "ImageRef",
    "ImageRules",
    "JobRules",
    "KernelRules",
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
    "format_bytes",
    "format_cpu",
    "format_duration",
    "format_validation_error",
    "load_policy",
    "parse_duration",
    "parse_image_ref",
    "parse_policy",
    "parse_quantity",
    "quantity_bytes",
    "read_yaml",
]
