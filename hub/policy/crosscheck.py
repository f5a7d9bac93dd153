"""The policy's cross-check step: references between sections (groups -> profiles -> GPU
types, the default group, catalogue projects) and limits against each other.

Each rule yields one line ``path: value ... what is allowed``. :func:`check_parts` works on
whatever parts of a policy validated, so that a typo in one group does not hide a bad
reference in another: :func:`.parse.parse_policy` reports both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ..names import is_dns_label, is_label_value
from .caps import group_caps
from .images import parse_image_ref
from .model import (
    CatalogueConfig,
    GpuLimits,
    GpuType,
    GroupPolicy,
    ProfilePolicy,
    StorageConfig,
)
from .quantities import (
    cpu_millicores,
    format_bytes,
    format_cpu,
    format_duration,
    quantity_bytes,
)

__all__ = ["PolicyParts", "check_parts"]


@dataclass
class PolicyParts:
    """The parts of a policy that validated on their own, and every name that was declared
    (so that a reference to a declared-but-broken entry is not reported twice)."""

    default_group: str | None = None
    groups: dict[str, GroupPolicy] = field(default_factory=dict)
    profiles: dict[str, ProfilePolicy] = field(default_factory=dict)
    gpu_types: dict[str, GpuType] = field(default_factory=dict)
    storage: StorageConfig | None = None
    catalogue: CatalogueConfig | None = None
    group_names: list[str] = field(default_factory=list)
    profile_names: list[str] = field(default_factory=list)
    type_names: list[str] = field(default_factory=list)


def _names(names: Iterable[str]) -> str:
    listed = sorted(names)
    return ", ".join(listed) if listed else "none"


def check_parts(parts: PolicyParts) -> tuple[list[str], list[str]]:
    """(errors, warnings) for the cross-field rules; see docs/policy.md for each rule."""
    errors: list[str] = []
    warnings: list[str] = []
    _check_names(parts, errors)
    if parts.default_group is not None and parts.default_group not in parts.group_names:
        errors.append(
            f"default_group: {parts.default_group!r} is not a group "
            f"(groups: {_names(parts.group_names)})"
        )
    _check_profiles(parts, errors, warnings)
    for name, group in parts.groups.items():
        _check_group(name, group, parts, errors, warnings)
    _check_uncapped(parts, warnings)
    if parts.storage is not None:
        _check_storage(parts.storage, errors)
    if parts.catalogue is not None:
        _check_catalogue(parts, errors, warnings)
    return errors, warnings


def _check_names(parts: PolicyParts, errors: list[str]) -> None:
    for name in parts.group_names:
        if not is_label_value(name) or not name:
            errors.append(
                f"groups: {name!r} cannot be a group name (it is used as a Kubernetes label "
                "value: at most 63 letters, digits, '-', '_' or '.', starting and ending with "
                "a letter or digit)"
            )
    for name in parts.profile_names:
        if not is_dns_label(name):
            errors.append(
                f"profiles: {name!r} cannot be a profile name (a DNS label: lowercase letters, "
                "digits and '-', at most 63 characters)"
            )
    for name in parts.type_names:
        if not is_label_value(name) or not name:
            errors.append(
                f"gpu_types: {name!r} cannot be a GPU type name (it is used as a Kubernetes "
                "label value: at most 63 letters, digits, '-', '_' or '.')"
            )
    for section, items in (
        ("groups", parts.groups),
        ("profiles", parts.profiles),
        ("gpu_types", parts.gpu_types),
    ):
        for key, item in items.items():
            if item.name != key:
                errors.append(
                    f"{section}.{key}.name: {item.name!r} differs from its key {key!r} "
                    "(leave name out; the key is the name)"
                )


def _check_profiles(parts: PolicyParts, errors: list[str], warnings: list[str]) -> None:
    defaults = []
    for name, profile in parts.profiles.items():
        path = f"profiles.{name}"
        if profile.default:
            defaults.append(name)
        if profile.gpu_type is not None:
            gpu_type = parts.gpu_types.get(profile.gpu_type)
            if profile.gpu_type not in parts.type_names:
                errors.append(
                    f"{path}.gpu_type: {profile.gpu_type!r} is not defined in gpu_types "
                    f"(defined: {_names(parts.type_names)})"
                )
            elif gpu_type is not None:
                for i, n in enumerate(profile.gpus):
                    if n > gpu_type.max_per_node:
                        errors.append(
                            f"{path}.gpus[{i}]: {n} exceeds gpu_types.{profile.gpu_type}"
                            f".max_per_node {gpu_type.max_per_node}"
                        )
        limit = profile.memory.limit
        if profile.shm_size and limit and quantity_bytes(profile.shm_size) > quantity_bytes(limit):
            warnings.append(
                f"{path}.shm_size: {profile.shm_size!r} is larger than {path}.memory.limit "
                f"{limit!r}; /dev/shm counts against the memory limit"
            )
        if parts.groups and not any(name in g.profiles for g in parts.groups.values()):
            warnings.append(f"{path}: no group lists this profile; nobody can use it")
    if len(defaults) > 1:
        errors.append(
            f"profiles.{defaults[1]}.default: true, but profiles.{defaults[0]} is already the "
            "default; only one profile may be the default"
        )


def _check_group(
    name: str, group: GroupPolicy, parts: PolicyParts, errors: list[str], warnings: list[str]
) -> None:
    path = f"groups.{name}"
    gpu = group.gpu
    # Profiles: declared, listed once, usable by this group.
    seen: set[str] = set()
    for i, pname in enumerate(group.profiles):
        ppath = f"{path}.profiles[{i}]"
        if pname in seen:
            errors.append(f"{ppath}: {pname!r} is listed twice")
            continue
        seen.add(pname)
        if pname not in parts.profile_names:
            errors.append(
                f"{ppath}: {pname!r} is not a profile (profiles: {_names(parts.profile_names)})"
            )
            continue
        profile = parts.profiles.get(pname)
        if profile is None or profile.gpu_type is None:
            continue
        if profile.gpu_type not in parts.type_names:
            continue  # reported once, at profiles.<name>.gpu_type
        if gpu.per_server == 0:
            errors.append(
                f"{ppath}: {pname!r} is a GPU profile but {path}.gpu.per_server is 0 "
                "(list only CPU profiles, or allow GPUs)"
            )
        elif profile.gpu_type not in gpu.types:
            errors.append(
                f"{ppath}: {pname!r} uses GPU type {profile.gpu_type!r}, which {path}.gpu.types "
                f"does not allow (allowed: {_names(gpu.types)})"
            )
        elif not any(n <= gpu.per_server for n in profile.gpus):
            errors.append(
                f"{ppath}: {pname!r} offers gpus {list(profile.gpus)}, all above "
                f"{path}.gpu.per_server {gpu.per_server}; the group could never use it"
            )
    if not group.profiles:
        warnings.append(f"{path}.profiles: empty; members of this group cannot start a server")
    # GPU types and limits.
    for i, tname in enumerate(gpu.types):
        if tname not in parts.type_names:
            errors.append(
                f"{path}.gpu.types[{i}]: {tname!r} is not defined in gpu_types "
                f"(defined: {_names(parts.type_names)})"
            )
    known = [parts.gpu_types[t] for t in gpu.types if t in parts.gpu_types]
    largest = max(known, key=lambda t: t.max_per_node, default=None)
    if (gpu.per_server or gpu.per_job) and not gpu.types:
        errors.append(
            f"{path}.gpu.types: empty, but {path}.gpu.per_server is {gpu.per_server} and "
            f"per_job is {gpu.per_job}; list the GPU types allowed "
            f"(defined: {_names(parts.type_names)})"
        )
    if largest is not None:
        for key in ("per_server", "per_job"):
            value = getattr(gpu, key)
            if value > largest.max_per_node:
                errors.append(
                    f"{path}.gpu.{key}: {value} exceeds gpu_types.{largest.name}.max_per_node "
                    f"{largest.max_per_node}"
                )
    for key in ("per_server", "per_job"):
        value = getattr(gpu, key)
        for quota in ("quota_user", "quota_group"):
            if getattr(gpu, quota) < value:
                errors.append(
                    f"{path}.gpu.{quota}: {getattr(gpu, quota)} is less than {path}.gpu.{key} "
                    f"{value} ({quota} must be at least per_server and per_job, or that "
                    "limit can never be used)"
                )
    _check_sharing(name, gpu, parts, errors, warnings)
    if gpu.quota_group < gpu.quota_user:
        warnings.append(
            f"{path}.gpu.quota_group: {gpu.quota_group} is less than {path}.gpu.quota_user "
            f"{gpu.quota_user}; one user can never reach their own quota"
        )
    _check_caps(name, group, parts, errors, warnings)
    # Idle rules.
    idle = group.idle
    if idle.timeout_seconds and idle.warn_before_seconds >= idle.timeout_seconds:
        errors.append(
            f"{path}.idle.warn_before: {format_duration(idle.warn_before_seconds)} must be shorter than "
            f"{path}.idle.timeout {format_duration(idle.timeout_seconds)}"
        )
    if (
        idle.max_age_seconds
        and idle.timeout_seconds
        and idle.max_age_seconds < idle.timeout_seconds
    ):
        warnings.append(
            f"{path}.idle.max_age: {format_duration(idle.max_age_seconds)} is shorter than "
            f"{path}.idle.timeout {format_duration(idle.timeout_seconds)}"
        )
    if not group.images.projects and not group.images.patterns:
        warnings.append(f"{path}.images: no projects or patterns; no image is allowed")


def _check_sharing(
    name: str, gpu: GpuLimits, parts: PolicyParts, errors: list[str], warnings: list[str]
) -> None:
    """Lending and borrowing between groups (Kueue's cohorts): a group lends only its own
    quota, and a borrowing limit below a job's size, or with nobody lending, is never used."""
    path = f"groups.{name}.gpu"
    if gpu.lend_idle > gpu.quota_group:
        errors.append(
            f"{path}.lend_idle: {gpu.lend_idle} exceeds {path}.quota_group {gpu.quota_group} "
            "(a group lends only idle GPUs of its own quota)"
        )
    if not gpu.borrow_max:
        return
    if not gpu.types:
        warnings.append(
            f"{path}.borrow_max: {gpu.borrow_max}, but the group has no GPU types to borrow"
        )
    elif gpu.borrow_max < gpu.per_job:
        warnings.append(
            f"{path}.borrow_max: {gpu.borrow_max} is less than {path}.per_job {gpu.per_job}; "
            "a preemptible job larger than borrow_max can never start"
        )
    if not any(g.gpu.lend_idle for g in parts.groups.values()):
        warnings.append(
            f"{path}.borrow_max: {gpu.borrow_max}, but no group lends GPUs (gpu.lend_idle); "
            "preemptible jobs would wait for ever"
        )


def _check_uncapped(parts: PolicyParts, warnings: list[str]) -> None:
    """One warning per amount naming every group whose jobs it does not cap (sorted, so the
    warnings do not depend on the order of the groups)."""
    caps = {name: group_caps(g, parts.profiles) for name, g in parts.groups.items()}
    uncapped = {
        "cpu": [n for n, c in caps.items() if c.job_cpu_millis is None],
        "memory": [n for n, c in caps.items() if c.job_memory_bytes is None],
    }
    for what, names in uncapped.items():
        if names:
            warnings.append(
                f"jobs.max_{what}: not set in groups {_names(names)}, and none of their "
                f"profiles names a {what} amount; their jobs may ask for any {what}"
            )


def _check_caps(
    name: str, group: GroupPolicy, parts: PolicyParts, errors: list[str], warnings: list[str]
) -> None:
    """A group's CPU and memory quota must hold its largest job and each of its servers, or
    that job or server could never start; a group whose jobs are not capped is warned of."""
    path = f"groups.{name}"
    caps = group_caps(group, parts.profiles)
    kinds = (
        # (what, job cap, derived?, group quota, how to read a profile amount, how to show)
        ("cpu", caps.job_cpu_millis, caps.job_cpu_derived, caps.group_cpu_millis,
         cpu_millicores, format_cpu),
        ("memory", caps.job_memory_bytes, caps.job_memory_derived, caps.group_memory_bytes,
         quantity_bytes, format_bytes),
    )  # fmt: skip
    for what, job_cap, derived, quota, read, show in kinds:
        job_key, quota_key = f"jobs.max_{what}", f"{what}.quota_group"
        if quota is None:
            continue
        if job_cap is not None and job_cap > quota:
            default = " (its default: the group's largest profile)" if derived else ""
            errors.append(
                f"{path}.{quota_key}: {show(quota)} is less than {path}.{job_key} "
                f"{show(job_cap)}{default} ({quota_key} must be at least the largest job, or "
                "that job can never run)"
            )
        for i, pname in enumerate(group.profiles):
            profile = parts.profiles.get(pname)
            if profile is None:
                continue
            amounts = getattr(profile, what)
            key = "guarantee" if amounts.guarantee is not None else "limit"
            request = getattr(amounts, key)
            if request is not None and read(request) > quota:
                errors.append(
                    f"{path}.{quota_key}: {show(quota)} is less than profiles.{pname}.{what}."
                    f"{key} {show(read(request))} (listed at {path}.profiles[{i}]); such a "
                    "server could never start"
                )


def _nested(a: str, b: str) -> bool:
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def _check_storage(storage: StorageConfig, errors: list[str]) -> None:
    home = storage.home.mount_path
    names: dict[str, int] = {}
    paths: dict[str, str] = {"storage.home.mount_path": home}
    for i, ds in enumerate(storage.datasets):
        path = f"storage.datasets[{i}]"
        if ds.name in names:
            errors.append(
                f"{path}.name: {ds.name!r} is already used by storage.datasets[{names[ds.name]}]"
            )
        names.setdefault(ds.name, i)
        for other, other_mount in paths.items():
            if _nested(ds.mount_path, other_mount):
                how = "is" if ds.mount_path == other_mount else "overlaps"
                errors.append(
                    f"{path}.mount_path: {ds.mount_path!r} {how} {other} {other_mount!r}; "
                    "each mount needs its own directory"
                )
                break
        paths[f"{path}.mount_path"] = ds.mount_path
    if storage.on_user_delete == "snapshot" and not storage.snapshot_class:
        errors.append(
            "storage.snapshot_class: missing; storage.on_user_delete 'snapshot' needs a "
            "VolumeSnapshotClass name"
        )


def _check_catalogue(parts: PolicyParts, errors: list[str], warnings: list[str]) -> None:
    cat = parts.catalogue
    assert cat is not None
    known_projects: set[str] | None = None
    if cat.source == "harbor":
        if cat.harbor is None:
            errors.append(
                "catalogue.harbor: missing; catalogue.source 'harbor' needs it "
                "(url, projects, username_env, password_env)"
            )
        elif not cat.harbor.url:
            errors.append("catalogue.harbor.url: missing; catalogue.source 'harbor' needs it")
        if cat.harbor is not None and cat.harbor.projects:
            known_projects = set(cat.harbor.projects)
    else:
        seen: dict[str, int] = {}
        for i, img in enumerate(cat.static):
            if img.image in seen:
                errors.append(
                    f"catalogue.static[{i}].image: {img.image!r} is already listed at "
                    f"catalogue.static[{seen[img.image]}]"
                )
            seen.setdefault(img.image, i)
        if not cat.static:
            warnings.append("catalogue.static: empty; there is no image to offer")
        known_projects = {parse_image_ref(i.image).project for i in cat.static}
    if known_projects is not None:
        for name, group in parts.groups.items():
            for i, project in enumerate(group.images.projects):
                if project not in known_projects:
                    warnings.append(
                        f"groups.{name}.images.projects[{i}]: {project!r} has no image in the "
                        f"catalogue (projects: {_names(known_projects)})"
                    )
