"""How gpulab tells a user or an admin what is wrong with what they handed in: which field,
what is wrong, what is allowed.

:class:`FieldError` is the error type every boundary answers with (the job spec, admission of
servers and jobs, the gateway's API). :func:`schema_errors` is the one walk over a pydantic
``ValidationError``: the job spec turns its items into :class:`FieldError`s and the policy into
``path: value: message`` lines, so both name fields and word pydantic's messages alike.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

__all__ = ["FieldError", "SchemaError", "field_path", "model_at", "schema_errors"]


@dataclass(frozen=True)
class FieldError:
    """One problem with a submitted spec: which field, what is wrong, what is allowed.

    ``code`` is ``invalid`` (schema), ``policy`` (the spec is well-formed but not allowed for
    this user) or ``quota`` (allowed, but not now: GPUs or job slots are in use)."""

    field: str
    message: str
    allowed: str = ""
    code: Literal["invalid", "policy", "quota"] = "invalid"

    def as_dict(self) -> dict[str, str]:
        return {
            "field": self.field,
            "message": self.message,
            "allowed": self.allowed,
            "code": self.code,
        }


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")
# Pydantic starts the message of an error raised in a validator with these; the rest is ours.
_LEADS = ("Value error, ", "Assertion failed, ")


def field_path(loc: Sequence[int | str]) -> str:
    """``('groups', 'vision', 'profiles', 1) -> 'groups.vision.profiles[1]'``; a key that is
    not a plain name is quoted (``env['A B']``); ``()`` -> ``''``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out


@dataclass(frozen=True)
class SchemaError:
    """One pydantic error, in the terms gpulab words its messages in."""

    loc: tuple[int | str, ...]
    field: str  # field_path(loc), or the field a cross-field rule names in its context
    kind: str  # pydantic's error type: "extra_forbidden", "missing", "value_error", ...
    message: str  # pydantic's message without the lead it adds to a validator's message
    value: Any  # the offending input (a mapping for a rule on a whole model)


def schema_errors(exc: ValidationError) -> list[SchemaError]:
    """Every error of ``exc``, in pydantic's order."""
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err.get("loc", ()))
        named = (err.get("ctx") or {}).get("field")
        message = err.get("msg", "invalid")
        for lead in _LEADS:
            message = message.removeprefix(lead)
        out.append(
            SchemaError(
                loc=loc,
                field=str(named) if named is not None else field_path(loc),
                kind=err.get("type", ""),
                message=message,
                value=err.get("input"),
            )
        )
    return out


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` -> ``X``."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def model_at(root: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class found at ``loc`` inside ``root`` (through fields by name or alias, dict
    values and list or tuple items); ``None`` when ``loc`` leads to no model."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            found = None
            for name, info in tp.model_fields.items():
                if part in (name, info.alias):
                    found = info.annotation
                    break
            if found is None:
                return None
            tp = found
            continue
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (dict, Mapping) and len(args) == 2:
            tp = args[1]
        elif origin in (tuple, list) and args:
            tp = args[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None
