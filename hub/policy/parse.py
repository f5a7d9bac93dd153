"""The policy's parse step: a document (YAML text or a mapping) -> :class:`.document.Policy`,
or one :class:`.errors.PolicyError` listing every problem, each ``path: value: message``.

When a field is invalid, the sections that are valid on their own are still cross-checked,
so that one typo does not hide a bad reference elsewhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..field_errors import field_path, model_at, schema_errors
from ..strict_yaml import load_yaml
from .crosscheck import PolicyParts, check_parts
from .document import Policy, fill_names
from .errors import PolicyError
from .model import CatalogueConfig, GpuType, GroupPolicy, ProfilePolicy, StorageConfig

__all__ = [
    "MAX_POLICY_BYTES",
    "allowed_keys",
    "format_validation_error",
    "parse_policy",
    "read_yaml",
    "show_value",
]

MAX_POLICY_BYTES = 1 << 20


# ----------------------------------------------------------------------------- YAML


def read_yaml(text: str | bytes, source: str | None = None) -> Any:
    """Parse one YAML document (:mod:`gpulab.hub.strict_yaml`'s rules); errors become a
    :class:`PolicyError` naming line and column."""
    if isinstance(text, bytes):
        if len(text) > MAX_POLICY_BYTES:
            raise PolicyError([f"file is larger than {MAX_POLICY_BYTES} bytes"], source)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(
                [f"not UTF-8 text ({exc.reason} at byte {exc.start})"], source
            ) from None
    try:
        return load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = exc.problem or "invalid YAML"
        if exc.context:
            what = f"{what} ({exc.context}"
            if exc.context_mark and exc.context_mark is not mark:
                what += f" at line {exc.context_mark.line + 1}"
            what += ")"
        raise PolicyError([f"{where}YAML error: {what}"], source) from None
    except yaml.YAMLError as exc:
        raise PolicyError([f"YAML error: {exc}"], source) from None


# ----------------------------------------------------------------------------- field errors


def show_value(value: Any) -> str:
    """A value as an admin wrote it: strings quoted, YAML spellings for booleans and null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def allowed_keys(model: type[BaseModel]) -> list[str]:
    return sorted(info.alias or name for name, info in model.model_fields.items())


def format_validation_error(
    exc: ValidationError, root: type[BaseModel] = Policy, prefix: tuple[int | str, ...] = ()
) -> list[str]:
    """Pydantic's errors as ``path: value: message`` lines (unknown keys list the allowed
    keys)."""
    problems = []
    for err in schema_errors(exc):
        path = field_path(prefix + err.loc) or "(top level)"
        if err.kind == "extra_forbidden":
            model = model_at(root, err.loc[:-1])
            allowed = f" (allowed: {', '.join(allowed_keys(model))})" if model else ""
            problems.append(f"{path}: unknown key{allowed}")
        elif err.kind == "missing":
            problems.append(f"{path}: required key is missing")
        else:
            msg = err.message
            if msg[:1].isupper() and not msg[1:2].isupper():
                msg = msg[0].lower() + msg[1:]
            if isinstance(err.value, Mapping):  # a model-level rule: the path says enough
                problems.append(f"{path}: {msg}")
            else:
                problems.append(f"{path}: {show_value(err.value)}: {msg}")
    return problems


# ----------------------------------------------------------------------------- parsing


def _partial_parts(data: Mapping[str, Any]) -> PolicyParts:
    """The sections that validate on their own, for cross checks after a field error."""
    default = data.get("default_group")
    parts = PolicyParts(default_group=default if isinstance(default, str) else None)
    sections: list[tuple[str, type[BaseModel], dict[str, Any], list[str]]] = [
        ("groups", GroupPolicy, parts.groups, parts.group_names),
        ("profiles", ProfilePolicy, parts.profiles, parts.profile_names),
        ("gpu_types", GpuType, parts.gpu_types, parts.type_names),
    ]
    for section, model, target, names in sections:
        raw = fill_names(data.get(section))
        if not isinstance(raw, Mapping):
            continue
        for key, value in raw.items():
            names.append(str(key))
            with contextlib.suppress(ValidationError, PolicyError):
                target[str(key)] = model.model_validate(value)
    with contextlib.suppress(ValidationError, PolicyError):
        parts.storage = StorageConfig.model_validate(data.get("storage") or {})
    with contextlib.suppress(ValidationError, PolicyError):
        parts.catalogue = CatalogueConfig.model_validate(data.get("catalogue") or {})
    return parts


def _without_keys(data: Any, locs: list[tuple[int | str, ...]]) -> Any:
    """A copy of ``data`` without the (unknown) keys at ``locs``, so that a typo in one key
    does not hide the cross-field problems of its section."""
    if not locs:
        return data

    def strip(node: Any, loc: tuple[int | str, ...]) -> Any:
        if not loc:
            return node
        head, rest = loc[0], loc[1:]
        if isinstance(node, Mapping):
            out = dict(node)
            if not rest:
                out.pop(head, None)
            elif head in out:
                out[head] = strip(out[head], rest)
            return out
        if isinstance(node, list | tuple) and isinstance(head, int) and head < len(node):
            items = list(node)
            items[head] = strip(items[head], rest)
            return items
        return node

    for loc in locs:
        data = strip(data, loc)
    return data


def parse_policy(source: Mapping[str, Any] | str | bytes, name: str | None = None) -> Policy:
    """A :class:`Policy` from a mapping or YAML text. Raises :class:`PolicyError` listing every
    problem (``name`` is the file name the message starts with)."""
    data: Any = read_yaml(source, name) if isinstance(source, str | bytes) else source
    if data is None:
        raise PolicyError(["the policy is empty (expected a mapping with version: 1)"], name)
    if not isinstance(data, Mapping):
        raise PolicyError(
            [f"(top level): {type(data).__name__}: the policy must be a mapping of keys"], name
        )
    try:
        return Policy.model_validate(data)
    except PolicyError as exc:
        raise PolicyError(exc.problems, name) from None
    except ValidationError as exc:
        problems = format_validation_error(exc)
        unknown = [e.loc for e in schema_errors(exc) if e.kind == "extra_forbidden"]
        errors, _ = check_parts(_partial_parts(_without_keys(data, unknown)))
        raise PolicyError(problems + errors, name) from None
