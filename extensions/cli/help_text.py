"""The "examples" section every command's ``--help`` ends with."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["examples"]


def examples(items: Sequence[tuple[str, str]]) -> str:
    if not items:
        return ""
    lines = ["examples:"]
    for what, command in items:
        lines += [f"  # {what}", f"  {command}", ""]
    return "\n".join(lines).rstrip()
