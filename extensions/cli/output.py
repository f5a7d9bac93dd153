"""What the CLI prints: tables for people, JSON or YAML for programs, and errors in kind.

Tables are plain text like kubectl's (no colour, no box), fitted to the terminal's width
(``$COLUMNS``, else 80 when not a terminal). A column marked ``whole`` (a job id, a server
name: what people copy into the next command) is never shortened; the others are shortened
with ``…`` until the table fits.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import yaml

from .globals import GlobalOptions

__all__ = ["Column", "emit", "emit_error", "hint", "render_table", "terminal_width"]

GAP = "  "
MIN_WIDTH = 5  # a shortened column keeps at least this many characters ("Runn…")
ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    header: str
    whole: bool = False  # never shortened
    right: bool = False  # numbers


def terminal_width() -> int:
    return shutil.get_terminal_size((80, 24)).columns


def render_table(columns: Sequence[Column], rows: Sequence[Sequence[str]], width: int) -> str:
    """``rows`` under ``columns``' headers in at most ``width`` characters a line, unless the
    whole columns alone are wider (they are never cut)."""
    widths = [max([len(c.header)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    floors = [w if c.whole else min(w, MIN_WIDTH) for c, w in zip(columns, widths, strict=True)]
    excess = sum(widths) + len(GAP) * (len(columns) - 1) - width
    while excess > 0:
        # Shorten the widest column that may still give up a character.
        candidates = [i for i, w in enumerate(widths) if w > floors[i]]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    lines = [_line([c.header for c in columns], columns, widths)]
    lines += [_line(list(r), columns, widths) for r in rows]
    return "\n".join(lines)


def _line(cells: list[str], columns: Sequence[Column], widths: list[int]) -> str:
    out = []
    for cell, column, width in zip(cells, columns, widths, strict=True):
        text = cell if len(cell) <= width else cell[: max(width - 1, 0)] + ELLIPSIS
        out.append(text.rjust(width) if column.right else text.ljust(width))
    return GAP.join(out).rstrip()


def emit(options: GlobalOptions, value: Any, human: str | None = None) -> None:
    """``value`` as JSON or YAML under ``-o json|yaml``; else the ``human`` text."""
    if options.output == "json":
        print(json.dumps(value, indent=2, sort_keys=True))
    elif options.output == "yaml":
        print(yaml.safe_dump(value, sort_keys=True, allow_unicode=True).rstrip())
    elif human is not None:
        print(human)


def emit_error(
    options: GlobalOptions,
    message: str,
    *,
    status: int | None = None,
    problems: list[dict] | None = None,
    stream: TextIO | None = None,
) -> None:
    """An error on stderr: a JSON document under ``-o json`` (``{"error", "status",
    "problems"}``), else ``error: ...`` with one line per problem."""
    out = stream or sys.stderr
    if options.output == "json":
        body: dict[str, Any] = {"error": message}
        if status is not None:
            body["status"] = status
        if problems:
            body["problems"] = problems
        print(json.dumps(body, sort_keys=True), file=out)
        return
    suffix = f" (HTTP {status})" if status else ""
    print(f"error: {message}{suffix}", file=out)
    for p in problems or []:
        allowed = f" (allowed: {p['allowed']})" if p.get("allowed") else ""
        print(f"  {p.get('field') or '(spec)'}: {p.get('message')}{allowed}", file=out)


def hint(options: GlobalOptions, text: str) -> None:
    """A next step for people, on stderr; never under ``-o json|yaml``."""
    if not options.machine:
        print(text, file=sys.stderr)
