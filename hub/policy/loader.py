"""Read and validate a policy: YAML with line/column errors, every problem in one
:class:`PolicyError`, and :class:`PolicyFile`, which reloads a mounted file and keeps the last
good policy when an edit is broken."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .checks import PolicyParts, check_parts
from .errors import PolicyError
from .model import (
    CatalogueConfig,
    GpuType,
    GroupPolicy,
    Policy,
    ProfilePolicy,
    StorageConfig,
    _fill_names,
)

__all__ = ["PolicyFile", "format_validation_error", "load_policy", "parse_policy", "read_yaml"]

MAX_POLICY_BYTES = 1 << 20


# ----------------------------------------------------------------------------- YAML


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (a common, silent editing mistake)."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, yaml.Node] = {}
    loader.flatten_mapping(node)
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
        except TypeError:
            duplicate = False
        if duplicate:
            first = seen[key].start_mark
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {first.line + 1})",
                key_node.start_mark,
            )
        with contextlib.suppress(TypeError):
            seen[key] = key_node
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(text: str | bytes, source: str | None = None) -> Any:
    """Parse one YAML document; errors become a :class:`PolicyError` naming line and column."""
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
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
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


# ----------------------------------------------------------------------------- errors


_KEY = re.compile(r"[A-Za-z0-9_-]+")


def format_path(loc: tuple[int | str, ...]) -> str:
    """``('groups', 'vision', 'profiles', 1) -> 'groups.vision.profiles[1]'``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _KEY.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += f"[{part!r}]"
    return out or "(top level)"


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


def _unwrap(tp: Any) -> Any:
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


def _model_at(root: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
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


def allowed_keys(model: type[BaseModel]) -> list[str]:
    return sorted(info.alias or name for name, info in model.model_fields.items())


def format_validation_error(
    exc: ValidationError, root: type[BaseModel] = Policy, prefix: tuple[int | str, ...] = ()
) -> list[str]:
    """Pydantic's errors as ``path: value: message`` lines (unknown keys list the allowed
    keys)."""
    problems = []
    for err in exc.errors(include_url=False):
        loc = prefix + tuple(err["loc"])
        path = format_path(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            model = _model_at(root, tuple(err["loc"])[:-1])
            allowed = f" (allowed: {', '.join(allowed_keys(model))})" if model else ""
            problems.append(f"{path}: unknown key{allowed}")
            continue
        if kind == "missing":
            problems.append(f"{path}: required key is missing")
            continue
        msg = err["msg"]
        for lead in ("Value error, ", "Assertion failed, "):
            if msg.startswith(lead):
                msg = msg[len(lead) :]
        if msg[:1].isupper() and not msg[1:2].isupper():
            msg = msg[0].lower() + msg[1:]
        value = err.get("input")
        if isinstance(value, Mapping):  # a model-level rule: the path says enough
            problems.append(f"{path}: {msg}")
        else:
            problems.append(f"{path}: {show_value(value)}: {msg}")
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
        raw = _fill_names(data.get(section))
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
        unknown = [tuple(e["loc"]) for e in exc.errors() if e["type"] == "extra_forbidden"]
        errors, _ = check_parts(_partial_parts(_without_keys(data, unknown)))
        raise PolicyError(problems + errors, name) from None


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; raises :class:`PolicyError` (also when the file cannot
    be read, with the reason)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise PolicyError([f"cannot read the file: {exc.strerror or exc}"], str(p)) from None
    return parse_policy(data, str(p))


# ----------------------------------------------------------------------------- live file


Listener = Callable[["Policy"], object]


class PolicyFile:
    """A policy file that is reloaded when it changes, keeping the last good policy.

    The first load happens in the constructor and raises :class:`PolicyError` if it fails.
    After that, a broken edit is logged (once per distinct content, with every problem),
    recorded in :attr:`last_error`, and the previous policy stays in force.
    ConfigMap mounts replace the file by swapping a ``..data`` symlink: :meth:`watch`
    compares the content's SHA-256, so the swap is seen whatever the timestamps say.
    """

    def __init__(
        self,
        path: str | Path,
        log: logging.Logger | logging.LoggerAdapter[Any] | None = None,
        on_change: Listener | None = None,
    ) -> None:
        self.path = Path(path)
        self.log = log or logging.getLogger("gpulab.policy")
        self._listeners: list[Listener] = [on_change] if on_change else []
        self.last_error: PolicyError | None = None
        self._task: asyncio.Task[None] | None = None
        data = self._read()
        self._policy = parse_policy(data, str(self.path))
        self._good_hash = self._seen_hash = hashlib.sha256(data).hexdigest()
        self.version = 1
        self.loaded_at = time.time()
        for warning in self._policy.warnings:
            self.log.warning("policy %s: %s", self.path, warning)

    @property
    def policy(self) -> Policy:
        """The policy in force (the last one that validated)."""
        return self._policy

    @property
    def content_hash(self) -> str:
        return self._good_hash

    def add_listener(self, callback: Listener) -> None:
        """``callback(policy)`` runs after each successful reload (errors are logged)."""
        self._listeners.append(callback)

    def _read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except OSError as exc:
            raise PolicyError(
                [f"cannot read the file: {exc.strerror or exc}"], str(self.path)
            ) from None

    def reload(self) -> bool:
        """Read the file again. True if the policy in force is the file's content (changed or
        not); False if the file is unreadable or invalid (the last good policy is kept)."""
        try:
            data = self._read()
        except PolicyError as exc:
            return self._reject(exc, None)
        return self._apply(data)

    def _reject(self, exc: PolicyError, digest: str | None) -> bool:
        if digest is None or digest != self._seen_hash:
            self.log.error(
                "policy %s: change rejected, keeping version %d (%d problem%s):\n  %s",
                self.path,
                self.version,
                len(exc.problems),
                "" if len(exc.problems) == 1 else "s",
                "\n  ".join(exc.problems),
            )
        if digest is not None:
            self._seen_hash = digest
        self.last_error = exc
        return False

    def _apply(self, data: bytes) -> bool:
        digest = hashlib.sha256(data).hexdigest()
        if digest == self._good_hash:
            self._seen_hash = digest
            self.last_error = None
            return True
        try:
            policy = parse_policy(data, str(self.path))
        except PolicyError as exc:
            return self._reject(exc, digest)
        self._policy = policy
        self._good_hash = self._seen_hash = digest
        self.version += 1
        self.loaded_at = time.time()
        self.last_error = None
        self.log.info("policy %s: loaded version %d", self.path, self.version)
        for warning in policy.warnings:
            self.log.warning("policy %s: %s", self.path, warning)
        for callback in list(self._listeners):
            try:
                callback(policy)
            except Exception:
                self.log.exception("policy %s: a reload listener failed", self.path)
        return True

    async def check(self) -> bool:
        """One non-blocking look at the file (read in a thread); reload if the content
        changed. Returns whether the policy changed."""
        try:
            data = await asyncio.to_thread(self._read)
        except PolicyError as exc:
            if self._seen_hash != "unreadable":
                self._reject(exc, None)
                self._seen_hash = "unreadable"
            return False
        if hashlib.sha256(data).hexdigest() == self._seen_hash:
            return False
        before = self.version
        self._apply(data)
        return self.version != before

    async def watch(self, interval: float = 2.0) -> None:
        """Poll the file every ``interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the watcher die
                self.log.exception("policy %s: watch failed", self.path)

    def start(self, interval: float = 2.0) -> asyncio.Task[None]:
        """Start :meth:`watch` as a task on the running loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.watch(interval))
        return self._task

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
