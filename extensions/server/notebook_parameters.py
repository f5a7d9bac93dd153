"""The ``parameters`` cell of a notebook, read the way papermill reads it.

The JupyterLab "Run as job" dialog pre-fills its parameter rows from this: each top-level
``name = value`` assignment of the cell tagged ``parameters`` becomes one row. A value that is
a Python literal is given as its JSON value; anything else (an expression) as its source text,
which the dialog shows and the researcher may replace.
"""

from __future__ import annotations

import ast
import json
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["NotebookParameter", "parameters_of"]


@dataclass(frozen=True)
class NotebookParameter:
    name: str
    value: Any  # JSON-able: the literal's value, or None when ``literal`` is False
    source: str  # the right-hand side as written
    literal: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cell_source(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


def _parameters_cell(notebook: dict[str, Any]) -> str | None:
    for cell in notebook.get("cells") or []:
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        tags = (cell.get("metadata") or {}).get("tags") or []
        if "parameters" in tags:
            return _cell_source(cell)
    return None


def _json_literal(node: ast.expr) -> tuple[Any, bool]:
    try:
        value = ast.literal_eval(node)
        json.dumps(value)  # tuples become lists; sets and bytes are not JSON
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None, False
    return (list(value) if isinstance(value, tuple) else value), True


def parameters_of(notebook: dict[str, Any]) -> list[NotebookParameter]:
    """The parameters cell's assignments, in order; [] when there is none or it does not parse
    (papermill then injects the given parameters after the first cell)."""
    source = _parameters_cell(notebook)
    if source is None:
        return []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found: list[NotebookParameter] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
            target, value = stmt.targets[0], stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            target, value = stmt.target, stmt.value
        else:
            continue
        if not isinstance(target, ast.Name):
            continue
        parsed, literal = _json_literal(value)
        text = ast.get_source_segment(source, value) or ""
        found.append(NotebookParameter(target.id, parsed, text, literal))
    return found
