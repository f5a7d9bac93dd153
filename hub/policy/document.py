"""The whole policy document, :class:`Policy`: its sections, validated field by field
(:mod:`.model`) and then against each other (:mod:`.crosscheck`), and the user's entitlement
it grants (:mod:`.entitlement`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import PrivateAttr, model_validator

from .crosscheck import PolicyParts, check_parts
from .entitlement import Entitlement, merge_groups
from .errors import PolicyError
from .model import (
    CatalogueConfig,
    GpuType,
    GroupPolicy,
    PlatformConfig,
    ProfilePolicy,
    S3Config,
    StorageConfig,
    StrictModel,
)

__all__ = ["NAMED_SECTIONS", "Policy", "entitlement_for", "fill_names"]

NAMED_SECTIONS = ("groups", "profiles", "gpu_types")
"""The sections whose entries are named by their key."""


def fill_names(section: Any) -> Any:
    """`groups: {vision: {...}}` -> each entry gets `name: vision` (kept if it says the same)."""
    if not isinstance(section, Mapping):
        return section
    out = {}
    for key, value in section.items():
        if isinstance(value, Mapping) and "name" not in value:
            value = {"name": key, **value}
        elif value is None:
            value = {"name": key}
        out[key] = value
    return out


class Policy(StrictModel):
    version: Literal[1] = 1
    default_group: str | None = None
    platform: PlatformConfig = PlatformConfig()
    groups: dict[str, GroupPolicy] = {}
    profiles: dict[str, ProfilePolicy] = {}
    gpu_types: dict[str, GpuType] = {}
    storage: StorageConfig = StorageConfig()
    catalogue: CatalogueConfig = CatalogueConfig()
    s3: S3Config = S3Config()

    _warnings: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="before")
    @classmethod
    def _names(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            data = dict(data)
            for section in NAMED_SECTIONS:
                if section in data:
                    data[section] = fill_names(data[section])
        return data

    @model_validator(mode="after")
    def _cross_checks(self) -> Policy:
        # PolicyError is not a ValueError: pydantic lets it through unchanged.
        errors, warnings = check_parts(
            PolicyParts(
                default_group=self.default_group,
                groups=dict(self.groups),
                profiles=dict(self.profiles),
                gpu_types=dict(self.gpu_types),
                storage=self.storage,
                catalogue=self.catalogue,
                group_names=list(self.groups),
                profile_names=list(self.profiles),
                type_names=list(self.gpu_types),
            )
        )
        if errors:
            raise PolicyError(errors)
        if not self.platform.contact and any(not g.contact for g in self.groups.values()):
            warnings.append(
                "platform.contact is not set: the spawn page tells researchers without GPUs to "
                "ask 'your gpulab administrator'; name a person, a team or an address"
            )
        self._warnings = tuple(warnings)
        return self

    @property
    def warnings(self) -> tuple[str, ...]:
        """Things that are allowed but probably not meant (``check-policy`` prints them)."""
        return self._warnings

    def entitlement(self, groups: Iterable[str]) -> Entitlement | None:
        """What a user in these (JupyterHub) groups may do; ``None`` = no access."""
        return entitlement_for(self, groups)

    def group_order(self, groups: Iterable[str]) -> list[str]:
        """The configured groups among ``groups``, in policy order."""
        wanted = set(groups)
        return [name for name in self.groups if name in wanted]


def entitlement_for(policy: Policy, user_groups: Iterable[str]) -> Entitlement | None:
    """The merged entitlement of a user in ``user_groups``: the configured ones in policy
    order, else the default group; ``None`` when neither gives the user a group."""
    names = policy.group_order(user_groups)
    if not names:
        if policy.default_group is None or policy.default_group not in policy.groups:
            return None
        names = [policy.default_group]
    return merge_groups(
        [policy.groups[n] for n in names],
        policy.profiles,
        policy.catalogue.registries(),
        contact=policy.platform.contact,
    )
