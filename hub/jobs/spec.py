"""The job spec a researcher submits (YAML or JSON), strictly validated (pure, no I/O).

Input is hostile. :func:`parse_job_spec` bounds the document before the schema sees it
(64 KiB in all, strings of 4 KiB, 256 items per list or mapping, depth 8, no YAML aliases,
JSON types only), then validates :class:`JobSpec` (``extra='forbid'``). Paths are relative to
the home, normalised, with no ``..`` and no control characters, so that ``home / path``
never leaves the home. Every failure is a :class:`SpecError` carrying a list of
:class:`FieldError` (``{field, message, allowed}``); nothing else escapes.

See docs/jobs.md for the fields and an example.
"""

from __future__ import annotations

import json
import keyword
import math
import posixpath
import re
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..field_errors import FieldError, schema_errors
from ..names import is_dns_label
from ..policy.images import parse_image_ref
from ..policy.quantities import cpu_millicores, parse_duration, quantity_bytes
from ..strict_yaml import load_yaml
from .sweep import MAX_SWEEP_RUNS, run_count, sweep_runs

__all__ = [
    "ALLOWED",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_SPEC_BYTES",
    "MAX_STRING_BYTES",
    "RESERVED_ENV_PREFIXES",
    "FieldError",
    "JobSpec",
    "SpecError",
    "errors_from_pydantic",
    "load_document",
    "normalise_relpath",
    "parse_job_spec",
]

MAX_SPEC_BYTES = 64 * 1024
MAX_STRING_BYTES = 4 * 1024
MAX_ITEMS = 256
MAX_DEPTH = 8
MAX_JOB_NODES = 64  # pods of one multi-node job; the policy's max_nodes caps it per group
MAX_NODES = 8192
MAX_PATH_BYTES = 1024
MAX_INT = 2**63 - 1
NAME_MAX = 40
RESERVED_ENV_PREFIXES = ("GPULAB_", "KUBERNETES_")
RESERVED_DIR = ".gpulab"  # the runner keeps logs and results under ~/.gpulab/jobs/<id>/

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMAGE_CHARS = re.compile(r"[A-Za-z0-9._:/@+-]+")

# What each field accepts, for people (the "allowed" of a FieldError).
ALLOWED: dict[str, str] = {
    "name": "a DNS label: lowercase letters, digits and '-', at most 40 characters, "
    "starting with a letter or digit and ending with one",
    "image": "an image reference such as harbor.example.org/project/repo:tag from the "
    "catalogue (default: your server's image)",
    "command": "a list of strings in exec form, e.g. [python, train.py, --epochs, '10'] "
    "(no shell: write [bash, -c, '...'] if you need one)",
    "notebook": "a path to a .ipynb file relative to your home, e.g. work/train.ipynb",
    "parameters": "a mapping from Python identifiers to JSON scalars or lists (notebook jobs, "
    "and the values every run of a sweep shares)",
    "args": "a list of strings appended to command",
    "env": "a mapping NAME: value; names are letters, digits and _, not starting with a "
    "digit, and not starting with GPULAB_ or KUBERNETES_; values are strings",
    "gpus": "an integer from 0 to 64 (one node; with nodes, give gpus_per_node)",
    "nodes": f"an integer from 1 to {MAX_JOB_NODES}: how many pods (one per node) train together",
    "gpus_per_node": "an integer from 0 to 64: the GPUs of each of the job's nodes",
    "outputs_from": "rank0 (default: only rank 0 uploads outputs) or all (every rank uploads "
    "its own, under rank-<K>/)",
    "gpu_type": "a GPU type name from the policy, e.g. a100 (only with GPUs)",
    "cpu": "a Kubernetes CPU quantity greater than 0, e.g. 2, 0.5 or 500m",
    "memory": "a Kubernetes memory quantity greater than 0, e.g. 8Gi or 512Mi",
    "working_dir": "a directory relative to your home, e.g. work/project",
    "max_runtime": "a duration such as 90s, 30m, 24h, 7d, or seconds as an integer, at least 1",
    "retries": "an integer from 0 to 100",
    "output_dir": "a directory relative to your home, not the home itself "
    "(default outputs/<name>/<job-id>)",
    "datasets": "a list of dataset names from the policy (default: all of them)",
    "shm_size": "a Kubernetes memory quantity greater than 0, e.g. 1Gi",
    "preemptible": "true or false (default false): true lets the job run on other groups' "
    "idle GPUs when your group's are in use, and be preempted (and requeued) when they "
    "want them back",
    "sweep": "a grid, a mapping from parameter names to lists of values "
    "({lr: [0.001, 0.0001], batch: [32, 64]}: every combination runs), or a list of "
    f"parameter sets ([{{lr: 0.001, batch: 32}}, ...]); at most {MAX_SWEEP_RUNS} runs",
    "max_parallel": f"an integer from 1 to {MAX_SWEEP_RUNS}: how many runs of the sweep may run "
    "at once (default: all of them; only with sweep)",
    "": "a mapping (YAML or JSON) with the fields of docs/jobs.md",
}

_FIELD_ORDER = list(ALLOWED)


# ----------------------------------------------------------------------------- errors


class SpecError(ValueError):
    """The spec is not acceptable; ``problems`` says why, field by field."""

    def __init__(self, problems: list[FieldError]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field or 'spec'}: {p.message}" for p in problems))


def _allowed_for(field: str) -> str:
    top = re.split(r"[.\[]", field, maxsplit=1)[0]
    return ALLOWED.get(top, ALLOWED[""])


def _show(value: Any, limit: int = 60) -> str:
    """A short, safe rendering of a hostile value for an error message."""
    try:
        text = json.dumps(value, ensure_ascii=True)
    except (TypeError, ValueError):
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def errors_from_pydantic(exc: ValidationError) -> list[FieldError]:
    """Turn a pydantic ``ValidationError`` (of :class:`JobSpec`) into :class:`FieldError`s,
    one per problem, in field order; values are not echoed beyond a short excerpt."""
    problems: list[FieldError] = []
    for err in schema_errors(exc):
        if err.kind == "extra_forbidden":
            message = f"unknown field {err.loc[-1]!r}" if err.loc else "unknown field"
            allowed = "one of: " + ", ".join(f for f in _FIELD_ORDER if f)
        else:
            message, allowed = err.message, _allowed_for(err.field)
        problems.append(FieldError(err.field, message, allowed))

    def order(p: FieldError) -> int:
        top = re.split(r"[.\[]", p.field, maxsplit=1)[0]
        return _FIELD_ORDER.index(top) if top in _FIELD_ORDER else len(_FIELD_ORDER)

    return sorted(problems, key=order)


# ----------------------------------------------------------------------------- document


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# A JSON spec up to this size parses (and validates) in well under a millisecond.
INLINE_PARSE_BYTES = 4096


def _says_json(head: str, content_type: str | None) -> bool:
    """JSON when the Content-Type says JSON or the text starts with ``{``; YAML otherwise."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    return ctype.endswith("json") or (not ctype.endswith("yaml") and head.lstrip().startswith("{"))


def parses_quickly(raw: bytes | str | Mapping[str, Any], content_type: str | None) -> bool:
    """Whether :func:`parse_job_spec` of ``raw`` is cheap enough for an event loop: a small
    JSON document or data already parsed. YAML (a pure-Python parser, tens of milliseconds
    for a few kilobytes) and large documents belong in a worker thread."""
    if not isinstance(raw, bytes | bytearray | memoryview | str):
        return True
    if len(raw) > INLINE_PARSE_BYTES:
        return False
    head = raw[:64] if isinstance(raw, str) else bytes(raw[:64]).decode("utf-8", "replace")
    return _says_json(head, content_type)


def load_document(raw: bytes | str, content_type: str | None = None) -> Any:
    """Parse a submitted spec. JSON when ``content_type`` says JSON or the text starts with
    ``{``; YAML otherwise (JSON is YAML too). At most 64 KiB, UTF-8. Raises :class:`SpecError`.
    """
    if isinstance(raw, str):
        try:
            data = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise SpecError(
                [FieldError("", "the spec is not valid UTF-8 text", ALLOWED[""])]
            ) from None
    else:
        data = bytes(raw)
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(
            [FieldError("", f"the spec is {len(data)} bytes", f"at most {MAX_SPEC_BYTES} bytes")]
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError([FieldError("", "the spec is not valid UTF-8 text", ALLOWED[""])]) from None
    as_json = _says_json(text, content_type)
    try:
        if as_json:
            return json.loads(text, parse_constant=_reject_constant)
        return load_yaml(text)
    except RecursionError:
        raise SpecError(
            [FieldError("", "the spec is nested too deeply", f"at most {MAX_DEPTH} levels")]
        ) from None
    except (ValueError, yaml.YAMLError) as exc:
        what = "JSON" if as_json else "YAML"
        detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise SpecError([FieldError("", f"not valid {what}: {detail}", ALLOWED[""])]) from None


def _check_string(value: str, field: str, problems: list[FieldError]) -> None:
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        problems.append(FieldError(field, "contains invalid unicode (a lone surrogate)", "text"))
        return
    if size > MAX_STRING_BYTES:
        problems.append(
            FieldError(field, f"is {size} bytes long", f"at most {MAX_STRING_BYTES} bytes")
        )
    elif "\x00" in value:
        problems.append(FieldError(field, "contains a NUL character", "text without NUL"))


def check_document(doc: Any) -> list[FieldError]:
    """Structural bounds on a parsed spec (before the schema): JSON types only, depth, items,
    string sizes, node count and total size. Returns the problems (empty = fine)."""
    problems: list[FieldError] = []
    budget = [MAX_NODES]

    def walk(value: Any, field: str, depth: int) -> None:
        if problems and len(problems) >= 20:
            return
        budget[0] -= 1
        if budget[0] < 0:
            if budget[0] == -1:
                problems.append(
                    FieldError("", "the spec has too many values", f"at most {MAX_NODES}")
                )
            return
        if depth > MAX_DEPTH:
            problems.append(
                FieldError(field, "is nested too deeply", f"at most {MAX_DEPTH} levels")
            )
            return
        if value is None or isinstance(value, bool):
            return
        if isinstance(value, int):
            if abs(value) > MAX_INT:
                problems.append(FieldError(field, "is too large a number", "a 64-bit integer"))
            return
        if isinstance(value, float):
            if not math.isfinite(value):
                problems.append(FieldError(field, "is not a finite number", "a finite number"))
            return
        if isinstance(value, str):
            _check_string(value, field, problems)
            return
        if isinstance(value, list):
            if len(value) > MAX_ITEMS:
                problems.append(
                    FieldError(field, f"has {len(value)} items", f"at most {MAX_ITEMS} items")
                )
                return
            for i, item in enumerate(value):
                walk(item, f"{field}[{i}]", depth + 1)
            return
        if isinstance(value, dict):
            if len(value) > MAX_ITEMS:
                problems.append(
                    FieldError(field, f"has {len(value)} entries", f"at most {MAX_ITEMS} entries")
                )
                return
            for key, item in value.items():
                if not isinstance(key, str):
                    problems.append(
                        FieldError(
                            field, f"has a key that is not a string: {_show(key)}", "string keys"
                        )
                    )
                    continue
                sub = f"{field}.{key}" if field else key
                if len(sub) > 200:
                    sub = sub[:197] + "..."
                _check_string(key, sub, problems)
                walk(item, sub, depth + 1)
            return
        problems.append(
            FieldError(field, f"has a value of type {type(value).__name__}", "JSON values only")
        )

    if not isinstance(doc, dict):
        return [FieldError("", f"the spec must be a mapping, not {_show(doc, 30)}", ALLOWED[""])]
    walk(doc, "", 0)
    if not problems:
        size = len(json.dumps(doc, ensure_ascii=False).encode("utf-8"))
        if size > MAX_SPEC_BYTES:
            problems.append(
                FieldError(
                    "", f"the spec is {size} bytes as JSON", f"at most {MAX_SPEC_BYTES} bytes"
                )
            )
    return problems


# ----------------------------------------------------------------------------- field types


def normalise_relpath(value: Any, *, allow_root: bool = False) -> str:
    """A path relative to the home, normalised (``a//b/./c/`` -> ``a/b/c``), or ValueError.

    Refused: non-strings, empty, absolute (``/x``), ``~``, ``..`` components, backslashes,
    control characters, components over 255 bytes, paths over 1024 bytes. ``.`` (the home
    itself) only when ``allow_root``. The result never starts with ``/`` or contains ``..``,
    so ``posixpath.join(home, result)`` stays inside ``home``.
    """
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {type(value).__name__}")
    if not value:
        raise ValueError("must not be empty")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError("must not contain control characters")
    if value.startswith("/"):
        raise ValueError(f"{_show(value)} is absolute; write it relative to your home")
    if value.startswith("~"):
        raise ValueError(f"{_show(value)}: write the path relative to your home, without ~")
    if "\\" in value:
        raise ValueError("must use / as the separator (no backslashes)")
    if ".." in value.split("/"):
        raise ValueError(f"{_show(value)} contains '..'; paths must stay inside your home")
    if len(value.encode("utf-8")) > MAX_PATH_BYTES:
        raise ValueError(f"is longer than {MAX_PATH_BYTES} bytes")
    norm = posixpath.normpath(value)
    if norm.startswith("/") or ".." in norm.split("/"):  # defensive: cannot happen
        raise ValueError("must stay inside your home")
    for part in norm.split("/"):
        if len(part.encode("utf-8")) > 255:
            raise ValueError("has a path component longer than 255 bytes")
    if norm == "." and not allow_root:
        raise ValueError("must name something inside your home, not the home itself")
    return norm


def _strict_text(value: Any) -> Any:
    if isinstance(value, str) and any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


def _duration(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a duration such as 30m, 24h or 7d, or seconds as an integer")
    seconds = parse_duration(value)
    if not 1 <= seconds <= 366 * 86400:
        raise ValueError("must be between 1 second and 366 days")
    return seconds


def _quantity_text(value: Any, kind: Literal["cpu", "memory"]) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be a Kubernetes {kind} quantity")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("must be a finite number")
    text = value.strip() if isinstance(value, str) else format(value, "g")
    if len(text) > 32:
        raise ValueError("is too long for a quantity")
    if kind == "cpu":
        milli = cpu_millicores(text)
        if not 0 < milli <= 1024 * 1000:
            raise ValueError("must be more than 0 and at most 1024 CPUs")
    else:
        size = quantity_bytes(text)
        if not 0 < size <= 2**46:
            raise ValueError("must be more than 0 and at most 64Ti")
    return text


# json_schema_input_type: what a researcher may write (the OpenAPI document is generated
# from this model), not what the validator turns it into.
Duration = Annotated[int, BeforeValidator(_duration, json_schema_input_type=str | int)]
CpuQuantity = Annotated[
    str, BeforeValidator(lambda v: _quantity_text(v, "cpu"), json_schema_input_type=str | float)
]
MemoryQuantity = Annotated[
    str, BeforeValidator(lambda v: _quantity_text(v, "memory"), json_schema_input_type=str | float)
]

JSONScalar = None | bool | int | float | str


def _check_parameter(value: Any, depth: int = 0) -> None:
    if value is None or isinstance(value, bool | int | float | str):
        return
    if isinstance(value, list):
        if depth >= 3:
            raise ValueError("lists may be nested at most 3 deep")
        for item in value:
            _check_parameter(item, depth + 1)
        return
    raise ValueError(f"a {type(value).__name__} is not a JSON scalar or a list")


def _cross(field: str, message: str) -> PydanticCustomError:
    return PydanticCustomError("spec", "{message}", {"field": field, "message": message})


def _check_parameter_name(key: Any, field: str) -> None:
    if not isinstance(key, str) or not _IDENTIFIER.fullmatch(key) or keyword.iskeyword(key):
        raise _cross(
            f"{field}.{str(key)[:60]}",
            f"{_show(key)} is not a parameter name (an ASCII Python identifier, not a keyword)",
        )


def _sweep(value: Any) -> Any:
    """A grid (name -> non-empty list of values) or a list of non-empty parameter sets, of at
    most MAX_SWEEP_RUNS runs; each value a parameter value (:func:`_check_parameter`)."""
    if value is None:
        return None
    if isinstance(value, dict):
        if not value:
            raise ValueError("the grid names no parameter")
        for key, values in value.items():
            _check_parameter_name(key, "sweep")
            if not isinstance(values, list) or not values:
                raise _cross(f"sweep.{key}", "must be a non-empty list of values to try")
            for i, item in enumerate(values):
                try:
                    _check_parameter(item, 1)
                except ValueError as exc:
                    raise _cross(f"sweep.{key}[{i}]", str(exc)) from None
    elif isinstance(value, list):
        if not value:
            raise ValueError("the list of parameter sets is empty")
        for i, one in enumerate(value):
            if not isinstance(one, dict) or not one:
                raise _cross(f"sweep[{i}]", "must be a non-empty mapping of parameters")
            for key, item in one.items():
                _check_parameter_name(key, f"sweep[{i}]")
                try:
                    _check_parameter(item)
                except ValueError as exc:
                    raise _cross(f"sweep[{i}].{key}", str(exc)) from None
    else:
        raise ValueError(
            f"must be a mapping (a grid) or a list of parameter sets, not {_show(value, 30)}"
        )
    runs = run_count(value)
    if runs > MAX_SWEEP_RUNS:
        raise ValueError(f"makes {runs} runs; at most {MAX_SWEEP_RUNS}")
    return value


Sweep = Annotated[
    dict[str, list[Any]] | list[dict[str, Any]] | None,
    BeforeValidator(_sweep, json_schema_input_type=dict[str, list[Any]] | list[dict[str, Any]]),
]


# ----------------------------------------------------------------------------- the spec


class JobSpec(BaseModel):
    """A batch job as a researcher writes it. Immutable; unknown keys are errors."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)

    name: StrictStr
    image: StrictStr | None = None
    command: list[StrictStr] | None = Field(None, min_length=1, max_length=MAX_ITEMS)
    args: list[StrictStr] = Field(default_factory=list, max_length=MAX_ITEMS)
    notebook: StrictStr | None = None
    parameters: dict[StrictStr, Any] = Field(default_factory=dict, max_length=MAX_ITEMS)
    env: dict[StrictStr, StrictStr] = Field(default_factory=dict, max_length=MAX_ITEMS)
    gpus: StrictInt = Field(0, ge=0, le=64)
    # Multi-node: ``nodes`` pods of ``gpus_per_node`` GPUs each (an Indexed Job).
    nodes: StrictInt = Field(1, ge=1, le=MAX_JOB_NODES)
    gpus_per_node: StrictInt | None = Field(None, ge=0, le=64)
    outputs_from: Literal["rank0", "all"] = "rank0"
    gpu_type: StrictStr | None = None
    cpu: CpuQuantity | None = None
    memory: MemoryQuantity | None = None
    working_dir: StrictStr | None = None
    max_runtime: Duration | None = None
    retries: StrictInt = Field(0, ge=0, le=100)
    output_dir: StrictStr | None = None
    datasets: list[StrictStr] | None = Field(None, max_length=64)
    shm_size: MemoryQuantity | None = None
    # May borrow idle GPUs of other groups, and be preempted for them (only where Kueue runs).
    preemptible: StrictBool = False
    # One Indexed Job, one index per parameter set (:mod:`.sweep`); at most max_parallel at once.
    sweep: Sweep = None
    max_parallel: StrictInt | None = Field(None, ge=1, le=MAX_SWEEP_RUNS)

    # ------------------------------------------------------------ fields
    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not is_dns_label(value) or len(value) > NAME_MAX:
            raise ValueError(f"{_show(value)} is not a DNS label of at most {NAME_MAX} characters")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if len(value) > 512 or not _IMAGE_CHARS.fullmatch(value):
            raise ValueError(f"{_show(value)} is not an image reference")
        try:
            parse_image_ref(value)
        except ValueError as exc:
            raise ValueError(f"{_show(value)} is not an image reference: {exc}") from None
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value[0].strip():
            raise ValueError("the program (first item) must not be empty")
        return value

    @field_validator("notebook")
    @classmethod
    def _notebook(cls, value: str | None) -> str | None:
        if value is None:
            return None
        path = normalise_relpath(value)
        if not path.endswith(".ipynb") or path == ".ipynb":
            raise ValueError(f"{_show(value)} is not a .ipynb file")
        return path

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if not _IDENTIFIER.fullmatch(key) or keyword.iskeyword(key):
                raise _cross(
                    f"parameters.{key[:60]}",
                    f"{_show(key)} is not a parameter name (an ASCII Python identifier, "
                    "not a keyword)",
                )
            try:
                _check_parameter(item)
            except ValueError as exc:
                raise _cross(f"parameters.{key}", str(exc)) from None
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_NAME.fullmatch(key):
                raise _cross(f"env.{key[:60]}", f"{_show(key)} is not an environment variable name")
            if key.upper().startswith(RESERVED_ENV_PREFIXES):
                raise _cross(
                    f"env.{key}", f"{key} is reserved (GPULAB_ and KUBERNETES_ are gpulab's)"
                )
        return value

    @field_validator("gpu_type")
    @classmethod
    def _gpu_type(cls, value: str | None) -> str | None:
        if value is not None and not is_dns_label(value):
            raise ValueError(f"{_show(value)} is not a GPU type name")
        return value

    @field_validator("working_dir", mode="before")
    @classmethod
    def _working_dir(cls, value: Any) -> Any:
        if value is None:
            return None
        path = normalise_relpath(value, allow_root=True)
        return None if path == "." else path

    @field_validator("output_dir", mode="before")
    @classmethod
    def _output_dir(cls, value: Any) -> Any:
        if value is None:
            return None
        path = normalise_relpath(value)
        if path.split("/")[0] == RESERVED_DIR:
            raise ValueError(f"{RESERVED_DIR}/ is reserved for gpulab's job logs")
        return path

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for name in value:
            if not is_dns_label(name):
                raise ValueError(f"{_show(name)} is not a dataset name")
        if len(set(value)) != len(value):
            raise ValueError("each dataset may be listed once")
        return value

    # ------------------------------------------------------------ cross-field
    @model_validator(mode="after")
    def _shape(self) -> JobSpec:
        if (self.command is None) == (self.notebook is None):
            raise _cross(
                "command",
                "give exactly one of command (a program and its arguments) or notebook "
                "(a .ipynb path)",
            )
        if self.command is not None and self.parameters and self.sweep is None:
            # a command sweep's runs read theirs from $GPULAB_PARAMETERS
            raise _cross(
                "parameters",
                "parameters are for notebook jobs and sweeps; use args with command",
            )
        if self.notebook is not None and self.args:
            raise _cross("args", "args are for command jobs; use parameters with a notebook")
        if self.gpus_per_node is not None and self.gpus:
            raise _cross(
                "gpus_per_node", "give gpus (one node) or gpus_per_node (each node), not both"
            )
        if self.nodes > 1 and self.gpus:
            raise _cross("gpus", "a job on several nodes gives gpus_per_node, not gpus")
        if self.nodes > 1 and self.notebook is not None:
            raise _cross("nodes", "a notebook job runs on one node; use command for several")
        if self.nodes > 1 and self.retries:
            raise _cross(
                "retries",
                "a job on several nodes is not retried: one rank failing fails the whole job",
            )
        if self.nodes > 1 and self.sweep is not None:
            # one Indexed Job's indexes are either ranks or runs, never both
            raise _cross("sweep", "a sweep runs on one node per run; leave out nodes")
        if self.gpu_type is not None and self.node_gpus == 0:
            raise _cross("gpu_type", "gpu_type is set but the job asks for no GPUs")
        if self.max_parallel is not None and self.sweep is None:
            raise _cross("max_parallel", "max_parallel is for sweeps; this spec has no sweep")
        return self

    # ------------------------------------------------------------ helpers
    @property
    def node_gpus(self) -> int:
        """The GPUs of each of the job's pods."""
        return self.gpus_per_node if self.gpus_per_node is not None else self.gpus

    @property
    def total_gpus(self) -> int:
        """The GPUs of the whole job (every rank): what quota and ``per_job`` count."""
        return self.nodes * self.node_gpus

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1

    @property
    def kind(self) -> Literal["command", "notebook"]:
        return "notebook" if self.notebook is not None else "command"

    def output_dir_for(self, job_id: str) -> str:
        """Where this job's outputs go, relative to the home: ``output_dir``, else a folder of
        its own, ``outputs/<name>/<job-id>`` (the runs of one name side by side). Not the name
        alone: two jobs named alike, or a re-run, would share it and upload each other's files.
        Not ``outputs/<job-id>`` either: the panel downloads a job's uploads there."""
        return self.output_dir or f"outputs/{self.name}/{job_id}"

    @property
    def runs(self) -> list[dict[str, Any]]:
        """A sweep's runs: each index's parameters, merged over ``parameters`` (``[]``: no
        sweep)."""
        return sweep_runs(self.sweep, self.parameters)

    @property
    def parallelism(self) -> int:
        """How many pods of this job may run at once (a sweep's cap; 1 otherwise): what quota
        counts."""
        if self.sweep is None:
            return 1
        return min(self.max_parallel or MAX_SWEEP_RUNS, run_count(self.sweep))

    def with_image(self, image: str) -> JobSpec:
        """This spec with ``image`` filled in (the gateway's default), re-validated."""
        return JobSpec.model_validate({**self.to_json(), "image": image})

    def to_json(self) -> dict[str, Any]:
        """The normalised spec as JSON data (defaults filled in, unset optionals left out);
        ``JobSpec.model_validate(spec.to_json()) == spec``."""
        data = self.model_dump(mode="json", exclude_none=True)
        # A one-node job reads as it always has: the multi-node defaults are left out.
        if data.get("nodes") == 1:
            del data["nodes"]
        if data.get("outputs_from") == "rank0":
            del data["outputs_from"]
        return data


def parse_job_spec(
    raw: bytes | str | Mapping[str, Any], content_type: str | None = None
) -> JobSpec:
    """Parse and validate a submitted spec: bytes/str (JSON or YAML, see :func:`load_document`)
    or already-parsed JSON data. Raises :class:`SpecError` (and nothing else) when it is not
    acceptable."""
    try:
        if isinstance(raw, bytes | bytearray | memoryview | str):
            doc: Any = load_document(bytes(raw) if not isinstance(raw, str) else raw, content_type)
        else:
            doc = raw
        if isinstance(doc, Mapping) and not isinstance(doc, dict):
            doc = dict(doc)
        problems = check_document(doc)
        if problems:
            raise SpecError(problems)
        try:
            return JobSpec.model_validate(doc)
        except ValidationError as exc:
            raise SpecError(errors_from_pydantic(exc)) from None
    except SpecError:
        raise
    except RecursionError:
        raise SpecError(
            [FieldError("", "the spec is nested too deeply", f"at most {MAX_DEPTH} levels")]
        ) from None
    except (ValueError, TypeError, UnicodeError) as exc:  # defensive: report, never crash
        raise SpecError(
            [FieldError("", f"invalid spec: {type(exc).__name__}", ALLOWED[""])]
        ) from None
