"""The Kubernetes 1.31 OpenAPI schema (from kubernetes-validate, offline).

One place that loads the schema files: admission validates objects with it, and strategic
merge patch reads its ``x-kubernetes-patch-merge-key`` / ``x-kubernetes-patch-strategy``
annotations. Validators are built once per kind and reused — building one (parsing the
1.3 MB definitions file) is what makes ``kubernetes_validate.validate()`` slow per call.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

import jsonschema
import referencing
import referencing.jsonschema

SCHEMA_VERSION = "1.31.0"
_DEFS_URI = "https://kubernetes.io/api/_definitions.json"


def _schema_dir(strict: bool) -> Any:
    root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    return root.joinpath(f"v{SCHEMA_VERSION}-local" + ("-strict" if strict else ""))


@functools.cache
def _definitions(strict: bool) -> dict[str, Any]:
    return json.loads(_schema_dir(strict).joinpath("_definitions.json").read_text())


@functools.cache
def _registry(strict: bool) -> referencing.Registry:
    defs = referencing.Resource.from_contents(_definitions(strict))
    return referencing.Registry().with_resource(_DEFS_URI, defs)


def _file_stem(kind: str, api_version: str) -> str:
    # kubernetes-validate's naming: rbac.authorization.k8s.io/v1 -> rbac-v1
    short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{short}"


@functools.cache
def validator(kind: str, api_version: str, strict: bool = True) -> jsonschema.Validator:
    path = _schema_dir(strict).joinpath(_file_stem(kind, api_version) + ".json")
    schema = json.loads(path.read_text())
    schema.setdefault("$id", f"https://kubernetes.io/api/{_file_stem(kind, api_version)}.json")
    return jsonschema.Draft202012Validator(schema, registry=_registry(strict))


def definition(name: str) -> dict[str, Any] | None:
    return _definitions(False)["$defs"].get(name)


def _ref_name(node: dict[str, Any]) -> str | None:
    ref = node.get("$ref") or next(
        (s.get("$ref") for s in node.get("allOf", []) if isinstance(s, dict) and "$ref" in s),
        None,
    )
    return ref.rsplit("/", 1)[-1] if ref else None


@functools.cache
def root_definition(kind: str, api_version: str) -> str | None:
    """The ``$defs`` name of a kind's top-level schema (e.g. io.k8s.api.core.v1.Pod)."""
    group, _, version = api_version.rpartition("/")
    for name, node in _definitions(False)["$defs"].items():
        for gvk in node.get("x-kubernetes-group-version-kind", []):
            if (
                gvk.get("kind") == kind
                and gvk.get("version") == version
                and (gvk.get("group", "") == group)
            ):
                return name
    return None


def resolve(node: dict[str, Any] | None) -> dict[str, Any] | None:
    """Follow a ``$ref`` to the definition it names (or return the node itself)."""
    if node is None:
        return None
    name = _ref_name(node)
    return definition(name) if name else node


def field_schema(parent: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    """The schema of ``parent.key`` (an object property or a map's values)."""
    parent = resolve(parent)
    if not parent:
        return None
    props = parent.get("properties") or {}
    if key in props:
        return props[key]
    extra = parent.get("additionalProperties")
    return extra if isinstance(extra, dict) else None
