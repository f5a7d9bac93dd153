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

Every choice that cannot start says why, and nothing that cannot start is preselected:

* GPU sizes above the groups' ``per_server`` cap are listed, disabled, with that reason
  (:func:`cap_reason`); sizes over the quota left, or larger than any node of the type, are
  disabled with theirs; sizes that fit on a node but not on the free GPUs now stay startable
  and say the spawn will wait, with the number of spawns waiting already
  (:func:`gpu_choice_state`);
* the default profile and size are the first that can start (:func:`_choose_default`); a
  profile none of whose sizes can start carries a ``reason``;
* the page's notices (:func:`page_notices`): a CPU-only user's groups and whom to ask (the
  policy's contact), a used-up quota and what holds it.

GPU profiles carry ``gpu_availability`` (free GPUs of their type) and ``gpu_quota`` (the quota
left, and what holds it). gpulab's form template (``templates/form.html``, found through
KubeSpawner's ``additional_profile_form_template_paths``) renders all of it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpulab.hub.catalogue.model import readiness
from gpulab.hub.policy import Entitlement, ProfilePolicy, format_bytes, quantity_bytes
from markupsafe import escape

from .picker import PLAIN_SELECT_MAX, catalogue_json, image_option
from .picker import CatalogueImage as ImageLike

__all__ = [
    "TEMPLATES",
    "GpuTypeAvailability",
    "ImageLike",
    "QuotaLeft",
    "build_profile_list",
    "cap_reason",
    "gpu_choice_state",
    "images_for_profile",
    "offered_images_by_profile",
    "page_notices",
]


TEMPLATES = str(Path(__file__).resolve().parent / "templates")


@dataclass(frozen=True)
class GpuTypeAvailability:
    """Free GPUs of one type, from the watch-backed view of nodes and pods."""

    gpu_type: str
    total: int  # allocatable on schedulable, ready nodes of the type
    free: int  # total minus what non-terminated pods request
    max_free_on_node: int  # the largest single-pod request that fits now
    nodes: int
    max_on_node: int = 0  # the most GPUs of the type one node has (0: not known)
    waiting: int = 0  # pods of the type waiting for GPUs (Pending, not scheduled)


@dataclass(frozen=True)
class QuotaLeft:
    user_used: int
    user_limit: int
    group: str
    group_used: int
    group_limit: int
    held_by: str = ""  # what holds the quota, one phrase (holdings.describe_holders)
    # Kueue admits servers: a size over the quota left waits in the group's queue instead of
    # being refused (only a size above the quota itself can never start).
    queued: bool = False

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
    """profile name -> image references a server may start with (the first is the default):
    the offered images that are ready for notebooks (a not-ready one is shown, disabled)."""
    allowed = _allowed_images(entitlement, images)
    return {
        p.name: [i.reference for i in _for_profile(p, allowed) if readiness(i).notebooks]
        for p in entitlement.profiles
    }


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


def _plural_gpus(n: int) -> str:
    return f"{n} GPU" if n == 1 else f"{n} GPUs"


def _groups_phrase(entitlement: Entitlement) -> str:
    """``group vision`` / ``groups vision, nlp``: how the page names the user's groups."""
    groups = entitlement.groups
    return f"group {groups[0]}" if len(groups) == 1 else "groups " + ", ".join(groups)


def _limit_owner(entitlement: Entitlement) -> str:
    return "your group's" if len(entitlement.groups) == 1 else "your groups'"


def cap_reason(entitlement: Entitlement) -> str:
    """Why a GPU size of a profile cannot be chosen at all: above the per-server cap (the page
    puts the size before it: "4 GPUs: above your group's limit of 2 per server")."""
    return f"above {_limit_owner(entitlement)} limit of {entitlement.gpu_per_server} per server"


def gpu_choice_state(
    n: int, gpu_type: str, avail: GpuTypeAvailability | None, quota: QuotaLeft | None
) -> tuple[str | None, str | None]:
    """(why this size cannot start, None if it can; a note when it can but would wait).

    Over the quota left, or larger than any node of the type: it cannot start. Free GPUs short
    on every node now: the spawn waits for GPUs (up to the groups' ``wait_for_gpus``), so the
    size stays startable and says how many spawns wait before it."""
    if quota is not None and quota.queued and n > quota.left:
        if n > min(quota.user_limit, quota.group_limit):
            return f"above your GPU quota of {min(quota.user_limit, quota.group_limit)}", None
        return None, (
            f"will wait in the queue of {quota.group} ({quota.left} of the quota free now)"
        )
    if quota is not None and n > quota.left:
        if quota.user_limit - quota.user_used < n:
            return f"over your GPU quota ({max(quota.user_limit - quota.user_used, 0)} left)", None
        return (
            f"over group {quota.group}'s GPU quota "
            f"({max(quota.group_limit - quota.group_used, 0)} left)"
        ), None
    if avail is None:
        return None, None
    if avail.nodes == 0:
        return f"no {gpu_type} node is in the cluster right now", None
    if avail.max_on_node and n > avail.max_on_node:
        return f"no {gpu_type} node has {n} GPUs", None
    if n > avail.max_free_on_node:
        return None, f"will wait for GPUs (about {avail.waiting} ahead)"
    return None, None


def _quota_row(quota: QuotaLeft) -> dict[str, Any]:
    return {
        "user_left": max(quota.user_limit - quota.user_used, 0),
        "user_limit": quota.user_limit,
        "group": _e(quota.group),
        "group_left": max(quota.group_limit - quota.group_used, 0),
        "group_limit": quota.group_limit,
        "held_by": _e(quota.held_by),
    }


def _gpu_option(
    profile: ProfilePolicy,
    entitlement: Entitlement,
    uncapped: ProfilePolicy | None,
    avail: GpuTypeAvailability | None,
    quota: QuotaLeft | None,
    slice_label: str = "",
) -> tuple[dict[str, Any], str | None]:
    """The ``gpus`` option of a GPU profile, every size with its state, and the first size
    that can start (None: none can). ``slice_label``: how people name one GPU of a type that
    is a slice ("1/7 A100, 10 GB"); the sizes then read "2 × 1/7 A100, 10 GB"."""
    assert profile.gpu_type is not None
    gpu_type = profile.gpu_type
    sizes = sorted(set(profile.gpus) | set(uncapped.gpus if uncapped else ()))
    choices: dict[str, Any] = {}
    first: str | None = None
    for n in sizes:
        label = f"{n} × {slice_label}" if slice_label else f"{_plural_gpus(n)} ({gpu_type})"
        if n not in profile.gpus:
            reason: str | None = cap_reason(entitlement)
            note = None
        else:
            reason, note = gpu_choice_state(n, gpu_type, avail, quota)
        choice: dict[str, Any] = {"display_name": _e(label), "size": _e(_plural_gpus(n))}
        if reason:
            choice.update(display_name=_e(f"{label} — {reason}"), disabled=True, reason=_e(reason))
        else:
            if note:
                choice.update(display_name=_e(f"{label} — {note}"), note=_e(note))
            first = first or str(n)
        choices[str(n)] = choice
    if first is not None:
        choices[first]["default"] = True
    return {"display_name": "GPUs", "choices": choices}, first


def page_notices(entitlement: Entitlement, quota: QuotaLeft | None) -> list[str]:
    """What the spawn page says above the profiles, HTML-escaped: a CPU-only user's groups and
    whom to ask; a user whose GPU quota is used up, what holds it."""
    contact = entitlement.contact or "your gpulab administrator"
    if not entitlement.may_use_gpus:
        return [
            _e(
                f"Your {_groups_phrase(entitlement)} gives you CPU notebooks only: no GPUs. "
                f"To use GPUs, ask {contact}."
            )
        ]
    if quota is None or quota.left > 0:
        return []
    held = f" ({quota.held_by})" if quota.held_by else ""
    if quota.queued:
        return [
            _e(
                f"Your GPU quota is in use now{held}: a GPU server waits in the queue of "
                f"{quota.group} until GPUs free up (the page says where it stands)."
            )
        ]
    if quota.user_limit - quota.user_used <= 0:
        why = f"you already use all {quota.user_limit} GPUs of your quota{held}"
    else:
        why = f"group {quota.group} already uses all {quota.group_limit} GPUs of its quota{held}"
    return [_e(f"No GPU server can start now: {why}. Stop a server or a job to free GPUs.")]


def build_profile_list(
    entitlement: Entitlement,
    images: Sequence[ImageLike],
    *,
    availability: Mapping[str, GpuTypeAvailability] | None = None,
    quota: QuotaLeft | None = None,
    recent: Sequence[str] = (),
    policy_profiles: Mapping[str, ProfilePolicy] | None = None,
    gpu_labels: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """KubeSpawner ``profile_list`` for one user (see the module docstring). Profiles with no
    image to offer are left out. ``recent``: the user's last images, newest first (the image
    choice lists them first: :mod:`gpulab.spawner.picker`). ``policy_profiles`` (the policy's,
    before the groups' caps) lets the GPU sizes above the per-server cap show, disabled, with
    that reason. ``gpu_labels``: GPU type -> its ``label`` (slices: MIG profiles and
    time-sliced GPUs), shown instead of the type's name; free slices show like free GPUs.

    Only what can start is preselected: the default profile if it can, else the first that
    can; a profile none of whose sizes can start carries ``reason``. The first entry carries
    ``notices`` (:func:`page_notices`)."""
    out: list[dict[str, Any]] = []
    allowed = _allowed_images(entitlement, images)
    catalogue: str | None = None
    for profile in entitlement.profiles:
        offered = _for_profile(profile, allowed)
        if not offered:
            continue
        if catalogue is None and len(offered) > PLAIN_SELECT_MAX:
            # once per page, shared by profiles; only images a server can start with
            startable = [img for img in allowed if readiness(img).notebooks]
            catalogue = catalogue_json(startable, recent)
        options: dict[str, Any] = {
            "image": image_option(
                offered, gpu_only=profile.is_gpu, recent=recent, catalogue=catalogue
            ),
        }
        description = profile.description
        res = _resources_line(profile)
        extras: dict[str, Any] = {"startable": True}
        if not any(readiness(img).notebooks for img in offered):
            extras.update(startable=False, reason="no image offered here is ready for servers")
        if profile.is_gpu:
            assert profile.gpu_type is not None
            avail = (availability or {}).get(profile.gpu_type)
            uncapped = (policy_profiles or {}).get(profile.name)
            slice_label = (gpu_labels or {}).get(profile.gpu_type, "")
            options["gpus"], first = _gpu_option(
                profile, entitlement, uncapped, avail, quota, slice_label
            )
            if first is None:
                extras.update(startable=False, reason="no GPU size of this profile can start now")
            if avail is not None:
                unit = f"× {slice_label}" if slice_label else f"{profile.gpu_type} GPUs"
                res = f"{res}; {avail.free} of {avail.total} {unit} free"
                extras["gpu_availability"] = {**asdict(avail), "gpu_type": _e(avail.gpu_type)}
            if quota is not None:
                extras["gpu_quota"] = _quota_row(quota)
        entry: dict[str, Any] = {
            "slug": profile.name,
            "display_name": _e(profile.display_name),
            "description": _e(
                f"{description} ({res})" if res and description else description or res
            ),
            "profile_options": options,
            **extras,
        }
        out.append(entry)
    _choose_default(out, [p.name for p in entitlement.profiles if p.default])
    if out:
        out[0]["notices"] = page_notices(entitlement, quota)
    return out


def _choose_default(entries: list[dict[str, Any]], defaults: list[str]) -> None:
    """Mark one entry ``default``: the policy's default profile if it can start, else the first
    that can; none when nothing can (the page says so)."""
    startable = [e for e in entries if e["startable"]]
    chosen = next((e for e in startable if e["slug"] in defaults), None)
    chosen = chosen or (startable[0] if startable else None)
    if chosen is not None:
        chosen["default"] = True
