"""The spawn form: a KubeSpawner ``profile_list`` built per user from policy + catalogue.

Pure: :func:`build_profile_list` takes the user's :class:`Entitlement`, the catalogue's images
(anything with the :class:`ImageLike` attributes) and, optionally, the cluster's GPU
availability and the user's quota left. The result is KubeSpawner's ``profile_list`` format
(one profile per allowed policy profile, ``profile_options`` with an ``image`` choice and, on
GPU profiles, a ``gpus`` choice). The image choice is a plain select for small catalogues and a
searchable picker fed by one catalogue document per page for large ones
(:mod:`gpulab.spawner.picker`).

Every display string is HTML-escaped here: KubeSpawner renders the form with autoescape off,
and image names and descriptions come from the registry.

GPU sizes that cannot be scheduled now (no node has that many free GPUs of the type) or that
exceed the quota left carry ``disabled: True`` and a ``reason``; GPU profiles carry
``gpu_availability`` (free GPUs of their type) and ``gpu_quota`` (the quota left). gpulab's form
template (``templates/form.html``, found through KubeSpawner's
``additional_profile_form_template_paths``) renders those: a panel of free GPUs and quota left,
and the sizes that cannot run as disabled options with their reason.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from gpulab.hub.policy import Entitlement, ProfilePolicy, format_bytes, quantity_bytes
from markupsafe import escape

from .picker import PLAIN_SELECT_MAX, catalogue_json, image_option

__all__ = [
    "TEMPLATES",
    "GpuTypeAvailability",
    "ImageLike",
    "QuotaLeft",
    "build_profile_list",
    "images_for_profile",
    "offered_images_by_profile",
]


TEMPLATES = str(Path(__file__).resolve().parent / "templates")


class ImageLike(Protocol):
    reference: str
    display_name: str
    description: str
    gpu: bool
    project: str
    tag: str
    framework: str | None
    cuda: str | None
    recommended: bool


@dataclass(frozen=True)
class GpuTypeAvailability:
    """Free GPUs of one type, from the watch-backed view of nodes and pods."""

    gpu_type: str
    total: int  # allocatable on schedulable, ready nodes of the type
    free: int  # total minus what non-terminated pods request
    max_free_on_node: int  # the largest single-pod request that fits now
    nodes: int


@dataclass(frozen=True)
class QuotaLeft:
    user_used: int
    user_limit: int
    group: str
    group_used: int
    group_limit: int

    @property
    def left(self) -> int:
        return max(0, min(self.user_limit - self.user_used, self.group_limit - self.group_used))


def _e(text: str) -> str:
    return str(escape(text))


# Image decisions depend only on the entitlement's image rules and the reference; the spawn page
# asks them for every catalogue image on every view (5,000 images: ~80% of the render time), so
# they are remembered per rule set (a few rule sets: one per combination of groups).
_DECISIONS: OrderedDict[tuple[Any, ...], dict[str, bool]] = OrderedDict()
_DECISION_RULE_SETS = 32
_DECISION_MAX_REFS = 100_000


def _allowed_images(entitlement: Entitlement, images: Sequence[ImageLike]) -> list[ImageLike]:
    """The catalogue images the entitlement allows, once each, in catalogue order."""
    key = (entitlement.image_projects, entitlement.registries, entitlement.image_patterns)
    decisions = _DECISIONS.get(key)
    if decisions is None:
        decisions = _DECISIONS[key] = {}
        while len(_DECISIONS) > _DECISION_RULE_SETS:
            _DECISIONS.popitem(last=False)
    else:
        _DECISIONS.move_to_end(key)
    if len(decisions) > _DECISION_MAX_REFS:  # a catalogue that keeps changing names
        decisions.clear()
    seen: set[str] = set()
    allowed: list[ImageLike] = []
    for img in images:
        ref = img.reference
        if ref in seen:
            continue
        ok = decisions.get(ref)
        if ok is None:
            ok = decisions[ref] = entitlement.image_allowed(ref)
        if ok:
            seen.add(ref)
            allowed.append(img)
    return allowed


def _for_profile(profile: ProfilePolicy, allowed: list[ImageLike]) -> list[ImageLike]:
    if profile.is_gpu:
        return [i for i in allowed if i.gpu]
    return [i for i in allowed if not i.gpu] + [i for i in allowed if i.gpu]


def images_for_profile(
    entitlement: Entitlement, profile: ProfilePolicy, images: Sequence[ImageLike]
) -> list[ImageLike]:
    """Catalogue images offered on ``profile``: allowed for the user's groups; GPU images only
    on GPU profiles; on CPU profiles CPU images first, then GPU images (they run on CPU too).
    Duplicates (same reference) are dropped; catalogue order is kept otherwise."""
    return _for_profile(profile, _allowed_images(entitlement, images))


def offered_images_by_profile(
    entitlement: Entitlement, images: Sequence[ImageLike]
) -> dict[str, list[str]]:
    """profile name -> offered image references (the first is the default)."""
    allowed = _allowed_images(entitlement, images)
    return {p.name: [i.reference for i in _for_profile(p, allowed)] for p in entitlement.profiles}


def _resources_line(profile: ProfilePolicy) -> str:
    parts = []
    cpu = profile.cpu
    if cpu.limit is not None:
        lo = (
            f"{cpu.guarantee:g}–"
            if cpu.guarantee is not None and cpu.guarantee != cpu.limit
            else ""
        )
        parts.append(f"{lo}{cpu.limit:g} CPUs")
    mem = profile.memory
    if mem.limit is not None:
        hi = format_bytes(quantity_bytes(mem.limit))
        lo = ""
        if mem.guarantee is not None and quantity_bytes(mem.guarantee) != quantity_bytes(mem.limit):
            lo = format_bytes(quantity_bytes(mem.guarantee)) + "–"
        parts.append(f"{lo}{hi} memory")
    if profile.shm_size:
        parts.append(f"{profile.shm_size} /dev/shm")
    return ", ".join(parts)


def _gpu_reason(
    n: int, gpu_type: str, avail: GpuTypeAvailability | None, quota: QuotaLeft | None
) -> str | None:
    if quota is not None and n > quota.left:
        if quota.user_limit - quota.user_used < n:
            return f"over your GPU quota ({max(quota.user_limit - quota.user_used, 0)} left)"
        return (
            f"over group {quota.group}'s GPU quota "
            f"({max(quota.group_limit - quota.group_used, 0)} left)"
        )
    if avail is not None and n > avail.max_free_on_node:
        if avail.max_free_on_node == 0:
            return f"no {gpu_type} GPU is free right now"
        return f"at most {avail.max_free_on_node} {gpu_type} GPUs are free on one node right now"
    return None


def _quota_row(quota: QuotaLeft) -> dict[str, Any]:
    return {
        "user_left": max(quota.user_limit - quota.user_used, 0),
        "user_limit": quota.user_limit,
        "group": _e(quota.group),
        "group_left": max(quota.group_limit - quota.group_used, 0),
        "group_limit": quota.group_limit,
    }


def build_profile_list(
    entitlement: Entitlement,
    images: Sequence[ImageLike],
    *,
    availability: Mapping[str, GpuTypeAvailability] | None = None,
    quota: QuotaLeft | None = None,
    recent: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """KubeSpawner ``profile_list`` for one user (see the module docstring). Profiles with no
    image to offer are left out. ``recent``: the user's last images, newest first (the image
    choice lists them first: :mod:`gpulab.spawner.picker`)."""
    out: list[dict[str, Any]] = []
    default_seen = False
    allowed = _allowed_images(entitlement, images)
    catalogue: str | None = None
    for profile in entitlement.profiles:
        offered = _for_profile(profile, allowed)
        if not offered:
            continue
        if catalogue is None and len(offered) > PLAIN_SELECT_MAX:
            catalogue = catalogue_json(allowed, recent)  # once per page, shared by profiles
        options: dict[str, Any] = {
            "image": image_option(
                offered, gpu_only=profile.is_gpu, recent=recent, catalogue=catalogue
            ),
        }
        description = profile.description
        res = _resources_line(profile)
        gpu_extras: dict[str, Any] = {}
        if profile.is_gpu:
            assert profile.gpu_type is not None
            avail = (availability or {}).get(profile.gpu_type)
            gpu_choices: dict[str, Any] = {}
            first_enabled: str | None = None
            for n in profile.gpus:
                reason = _gpu_reason(n, profile.gpu_type, avail, quota)
                noun = "GPU" if n == 1 else "GPUs"
                label = f"{n} {noun} ({profile.gpu_type})"
                choice: dict[str, Any] = {"display_name": _e(label)}
                if reason:
                    choice["display_name"] = _e(f"{label} — unavailable: {reason}")
                    choice["disabled"] = True
                    choice["reason"] = _e(reason)
                elif first_enabled is None:
                    first_enabled = str(n)
                gpu_choices[str(n)] = choice
            default_key = first_enabled or str(profile.gpus[0])
            gpu_choices[default_key]["default"] = True
            options["gpus"] = {"display_name": "GPUs", "choices": gpu_choices}
            if avail is not None:
                res = f"{res}; {avail.free} of {avail.total} {profile.gpu_type} GPUs free"
                gpu_extras["gpu_availability"] = {**asdict(avail), "gpu_type": _e(avail.gpu_type)}
            if quota is not None:
                gpu_extras["gpu_quota"] = _quota_row(quota)
        entry: dict[str, Any] = {
            "slug": profile.name,
            "display_name": _e(profile.display_name),
            "description": _e(
                f"{description} ({res})" if res and description else description or res
            ),
            "profile_options": options,
            **gpu_extras,
        }
        if profile.default and not default_seen:
            entry["default"] = True
            default_seen = True
        out.append(entry)
    if out and not default_seen:
        out[0]["default"] = True
    return out
