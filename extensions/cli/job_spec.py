"""A job spec from the command line: ``--notebook train.ipynb --gpus 1 -p epochs=3``.

Pure: the flags become the same document a YAML spec holds (docs/jobs.md); the gateway checks
it as it checks any spec. Flags given with a spec file override the file's keys.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

import yaml

__all__ = ["SpecError", "default_name", "inline_spec", "parse_assignments"]

NAME_MAX = 40


class SpecError(ValueError):
    """A flag that makes no spec (exit code 2, naming the flag)."""


def parse_assignments(flag: str, items: Sequence[str], typed: bool) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; ``typed``: values read as YAML scalars (``3`` is a number,
    ``true`` a boolean, ``"3"`` a string), as papermill's ``-p`` reads them."""
    out: dict[str, Any] = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise SpecError(f"{flag} {item!r}: write KEY=VALUE, e.g. {flag} epochs=3")
        out[key.strip()] = _scalar(value) if typed else value
    return out


def _scalar(text: str) -> Any:
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, str | int | float | bool | list | dict) else text


def default_name(spec: dict[str, Any]) -> str:
    """A job name from what it runs: ``train.ipynb`` -> ``train``; else ``job``."""
    source = spec.get("notebook") or next(
        (a for a in spec.get("command") or [] if a.endswith((".py", ".ipynb", ".sh"))), ""
    )
    stem = PurePosixPath(source).stem if source else ""
    name = re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-")[:NAME_MAX].strip("-")
    return name if name and name[0].isalpha() else f"job-{name}".rstrip("-")


def inline_spec(
    *,
    base: dict[str, Any] | None = None,
    name: str | None = None,
    notebook: str | None = None,
    command: str | None = None,
    image: str | None = None,
    gpus: int | None = None,
    gpu_type: str | None = None,
    cpu: str | None = None,
    memory: str | None = None,
    max_runtime: str | None = None,
    retries: int | None = None,
    working_dir: str | None = None,
    datasets: Sequence[str] = (),
    parameters: Sequence[str] = (),
    env: Sequence[str] = (),
) -> dict[str, Any]:
    """The spec the flags describe, over ``base`` (a spec file's document) when given."""
    spec: dict[str, Any] = dict(base or {})
    flags: dict[str, Any] = {
        "notebook": notebook,
        "image": image,
        "gpus": gpus,
        "gpu_type": gpu_type,
        "cpu": cpu,
        "memory": memory,
        "max_runtime": max_runtime,
        "retries": retries,
        "working_dir": working_dir,
    }
    spec.update({k: v for k, v in flags.items() if v is not None})
    if command is not None:
        try:
            spec["command"] = shlex.split(command)
        except ValueError as exc:
            raise SpecError(f"--command: {exc}") from None
    if datasets:
        spec["datasets"] = list(datasets)
    if parameters:
        spec["parameters"] = {
            **spec.get("parameters", {}),
            **parse_assignments("-p", parameters, True),
        }
    if env:
        spec["env"] = {**spec.get("env", {}), **parse_assignments("--env", env, False)}
    if not spec.get("notebook") and not spec.get("command"):
        raise SpecError(
            "say what to run: --notebook PATH (in your home), --command, or a spec file"
        )
    spec["name"] = name or spec.get("name") or default_name(spec)
    return spec
