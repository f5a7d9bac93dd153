"""``gpulab images`` and ``gpulab quota``: what you may run, and how much of it is left.

Both read the jobs gateway (``/api/v1/images``: the catalogue filtered by your groups;
``/api/v1/me``: your quota and limits), the same answers the spawn page and a submit use.
"""

from __future__ import annotations

import argparse
from typing import Any

from .globals import GlobalOptions
from .help_text import examples
from .output import Column, emit, render_table, terminal_width
from .runner import run_with_transport
from .transport import Transport

__all__ = ["add_images_arguments", "add_quota_arguments", "run_images", "run_quota"]


def add_images_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "The images your groups may use for servers and jobs, recommended first."
    parser.epilog = examples(
        [
            ("PyTorch images with GPU support", "gpulab images --search pytorch --gpu"),
            ("just the references, for a script", "gpulab images -o json | jq -r '.[].image'"),
        ]
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--search", help="only images whose name or description contains this")
    parser.add_argument("--gpu", action="store_true", help="only images built for GPUs")
    parser.add_argument("--limit", type=int, help="at most this many images")


def add_quota_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = "Your GPU quota (yours and your group's), job slots and per-job limits."


def run_images(args: argparse.Namespace) -> int:
    return run_with_transport(args, _images)


def run_quota(args: argparse.Namespace) -> int:
    return run_with_transport(args, _quota)


def filter_images(
    items: list[dict[str, Any]], search: str | None, gpu: bool, limit: int | None
) -> list[dict[str, Any]]:
    needle = (search or "").lower()
    chosen = [
        i
        for i in items
        if (not gpu or i.get("gpu"))
        and (
            not needle
            or needle
            in " ".join(
                str(i.get(k) or "") for k in ("image", "display_name", "description", "framework")
            ).lower()
        )
    ]
    return chosen[:limit] if limit is not None and limit >= 0 else chosen


def _images(args: argparse.Namespace, options: GlobalOptions, transport: Transport) -> int:
    page = transport.gateway.images()
    items = filter_images(page.get("items", []), args.search, args.gpu, args.limit)
    wide = options.output == "wide"
    columns = [Column("IMAGE", whole=True), Column("GPU"), Column("NAME")]
    if wide:
        columns += [Column("FRAMEWORK"), Column("CUDA"), Column("DESCRIPTION")]
    rows = []
    for i in items:
        row = [
            i["image"] + (" *" if i.get("recommended") else ""),
            "yes" if i.get("gpu") else "no",
            str(i.get("display_name") or ""),
        ]
        if wide:
            row += [
                str(i.get("framework") or ""),
                str(i.get("cuda") or ""),
                str(i.get("description") or ""),
            ]
        rows.append(row)
    human = render_table(columns, rows, terminal_width()) if rows else "no images match"
    if rows and any(i.get("recommended") for i in items):
        human += "\n* recommended"
    emit(options, items, human)
    return 0


def _quota(args: argparse.Namespace, options: GlobalOptions, transport: Transport) -> int:
    me = transport.gateway.me()
    emit(options, me, quota_text(me))
    return 0


def quota_text(me: dict[str, Any]) -> str:
    groups = ", ".join(me.get("groups") or []) or "none"
    lines = [f"user    {me.get('name')} (groups: {groups})"]
    quota, policy = me.get("quota"), me.get("policy")
    if not quota:
        lines.append("no access to GPUs or jobs: ask an admin to add you to a group")
        return "\n".join(lines)
    lines += [
        f"GPUs    {quota['gpus_user_used']} of {quota['gpus_user_limit']} in use by you; "
        f"group {quota['group']}: {quota['gpus_group_used']} of {quota['gpus_group_limit']}",
        f"jobs    {quota['jobs_unfinished']} of {quota['jobs_limit']} unfinished",
    ]
    if policy:
        types = ", ".join(policy.get("gpu_types") or []) or "none"
        lines.append(
            f"per job {policy['per_job']} GPUs ({types}), at most {_duration(policy['max_runtime'])}, "
            f"{policy['max_retries']} retries"
        )
    return "\n".join(lines)


def _duration(seconds: Any) -> str:
    try:
        s = int(seconds)
    except (TypeError, ValueError):
        return str(seconds)
    if s % 86400 == 0:
        return f"{s // 86400}d"
    if s % 3600 == 0:
        return f"{s // 3600}h"
    return f"{s // 60}m" if s % 60 == 0 else f"{s}s"
