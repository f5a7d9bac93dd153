"""Validate a gpulab policy file offline, as the hub would load it.

Exit status: 0 when the policy is valid (a short summary of its groups, profiles and GPU
types is printed, then any warnings), 1 when it is not (every problem is printed, one per
line, as `path: value: what is allowed`), 2 on a usage error.

With --json the result is one JSON object on stdout:
  {"ok": true, "file": ..., "groups": [...], "profiles": [...], "gpu_types": [...],
   "warnings": [...]}
  {"ok": false, "file": ..., "problems": [...]}

The schema is documented in docs/policy.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpulab.hub.policy import Policy


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the policy YAML file to check")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _amount(value: int | None, show: Callable[[int], str]) -> str | None:
    return None if value is None else show(value)


def _summary(policy: Policy) -> dict[str, Any]:
    from gpulab.hub.policy import format_bytes, format_cpu, group_caps

    groups = []
    for name, g in policy.groups.items():
        caps = group_caps(g, policy.profiles)
        groups.append(
            {
                "name": name,
                "profiles": list(g.profiles),
                "gpu_types": list(g.gpu.types),
                "per_server": g.gpu.per_server,
                "per_job": g.gpu.per_job,
                "quota_user": g.gpu.quota_user,
                "quota_group": g.gpu.quota_group,
                "lend_idle": g.gpu.lend_idle,  # with Kueue: GPUs lent while idle
                "borrow_max": g.gpu.borrow_max,  # with Kueue: GPUs its preemptible jobs borrow
                "contact": g.contact or policy.platform.contact,  # whom its members ask
                # CPU and memory, after the defaults (None: not capped)
                "job_max_cpu": _amount(caps.job_cpu_millis, format_cpu),
                "job_max_memory": _amount(caps.job_memory_bytes, format_bytes),
                "cpu_quota_group": _amount(caps.group_cpu_millis, format_cpu),
                "memory_quota_group": _amount(caps.group_memory_bytes, format_bytes),
            }
        )
    return {
        "default_group": policy.default_group,
        "contact": policy.platform.contact,
        "groups": groups,
        "profiles": [
            {"name": n, "gpu_type": p.gpu_type, "gpus": list(p.gpus), "default": p.default}
            for n, p in policy.profiles.items()
        ],
        "gpu_types": [
            {"name": n, "resource": t.resource, "label": t.label, "max_per_node": t.max_per_node}
            for n, t in policy.gpu_types.items()
        ],
        "catalogue": policy.catalogue.source,
        "datasets": [d.name for d in policy.storage.datasets],
    }


def _sizes(group: dict[str, Any]) -> str:
    job = f"jobs up to {group['job_max_cpu'] or 'any'} CPUs, {group['job_max_memory'] or 'any'}"
    if group["cpu_quota_group"] is None and group["memory_quota_group"] is None:
        return job
    cpu, memory = group["cpu_quota_group"] or "any", group["memory_quota_group"] or "any"
    return f"{job}; group {cpu} CPUs, {memory}"


def _sharing(group: dict[str, Any]) -> str:
    """``, lends 4 idle, borrows up to 4`` (with Kueue), empty when the group does neither."""
    parts = []
    if group["lend_idle"]:
        parts.append(f"lends {group['lend_idle']} idle")
    if group["borrow_max"]:
        parts.append(f"borrows up to {group['borrow_max']}")
    return "".join(f", {p}" for p in parts)


def run(args: argparse.Namespace) -> int:
    # Imported here: the admin CLI imports every command module to build its parser.
    from gpulab.hub.policy import PolicyError, load_policy

    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        if args.json:
            print(json.dumps({"ok": False, "file": args.file, "problems": exc.problems}, indent=2))
        else:
            n = len(exc.problems)
            print(
                f"{args.file}: invalid policy ({n} problem{'s' if n != 1 else ''})", file=sys.stderr
            )
            for problem in exc.problems:
                print(problem)
        return 1
    summary = _summary(policy)
    if args.json:
        out = {"ok": True, "file": args.file, **summary, "warnings": list(policy.warnings)}
        print(json.dumps(out, indent=2))
        return 0
    print(f"{args.file}: valid policy (version {policy.version})")
    default = summary["default_group"]
    print(f"groups ({len(policy.groups)}), default: {default if default else 'none (no access)'}")
    print(
        f"contact: {summary['contact'] or 'none (researchers are told: your gpulab administrator)'}"
    )
    for g in summary["groups"]:
        gpus = (
            f"GPUs {', '.join(g['gpu_types'])}: {g['per_server']}/server {g['per_job']}/job, "
            f"quota {g['quota_user']}/user {g['quota_group']}/group{_sharing(g)}"
            if g["per_server"] or g["per_job"]
            else "CPU only"
        )
        print(f"  {g['name']}: profiles {', '.join(g['profiles']) or '-'}; {gpus}; {_sizes(g)}")
    print(f"profiles ({len(policy.profiles)})")
    for p in summary["profiles"]:
        kind = f"{p['gpu_type']} x {p['gpus']}" if p["gpu_type"] else "CPU"
        print(f"  {p['name']}: {kind}{' (default)' if p['default'] else ''}")
    print(f"GPU types ({len(policy.gpu_types)})")
    for t in summary["gpu_types"]:
        label = f" ({t['label']})" if t["label"] else ""
        print(f"  {t['name']}{label}: {t['resource']}, at most {t['max_per_node']} per node")
    for warning in policy.warnings:
        print(f"warning: {warning}")
    return 0
