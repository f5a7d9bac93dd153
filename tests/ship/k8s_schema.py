"""Validate Kubernetes objects against the official OpenAPI schemas of the versions gpulab
supports, plus the semantic rules the schemas do not express.

For everyone who generates objects (pods, PVCs, Jobs, Secrets)::

    from tests.ship.k8s_schema import validate_object, object_problems

    validate_object(pod)                     # raises K8sObjectError listing every problem
    problems = object_problems(job, versions=("1.31",))   # [] when fine

Core kinds are checked with kubernetes-validate's *strict* JSON schemas (unknown fields are
errors) for each of SUPPORTED_VERSIONS. Validators are built once per (version, kind) and
cached: ``kubernetes_validate.validate()`` re-reads the 1.2 MB definitions file per call.

CRD kinds are not in the core schema. Kueue's (ResourceFlavor, ClusterQueue, Cohort,
LocalQueue, WorkloadPriorityClass, Workload) are checked against the openAPIV3Schema of every
version the upstream Kueue v0.19.2 CRDs serve (:data:`KUEUE_CRDS`; without that folder, the
same v1beta2 schemas kubesim serves), closed to unknown fields as strict field validation is,
plus the CEL rules of the fields gpulab writes (:func:`_crd_semantics`). VolumeSnapshotClass
and VolumeSnapshot are checked against the minimal structural schemas in CRD_SCHEMAS below:
the fields gpulab writes, their types and the required ones.

Semantic checks on every object (what the API server does and the JSON schema does not):
metadata.name is a DNS-1123 subdomain (a DNS-1123 label for kinds whose names become DNS
labels or are limited to 63 characters), label keys and values and annotation keys are
valid, generateName is allowed instead of a name.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import referencing

SUPPORTED_VERSIONS: tuple[str, ...] = ("1.29", "1.30", "1.31", "1.32", "1.33")

_DEFS_URI = "https://kubernetes.io/api/_definitions.json"


class K8sObjectError(AssertionError):
    """An object is not valid; ``problems`` lists every reason (one string each)."""

    def __init__(self, obj: Mapping[str, Any], problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"{describe(obj)} is not valid:\n  " + "\n  ".join(problems))


def describe(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    name = meta.get("name") or meta.get("generateName") or "?"
    ns = meta.get("namespace")
    return f"{obj.get('kind', '?')} {ns + '/' if ns else ''}{name}"


# --------------------------------------------------------------------------- core schemas


def _schema_dir(version: str, strict: bool) -> Any:
    root = resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    return root.joinpath(f"v{version}.0-local" + ("-strict" if strict else ""))


@functools.cache
def _registry(version: str, strict: bool) -> referencing.Registry:
    defs = json.loads(_schema_dir(version, strict).joinpath("_definitions.json").read_text())
    return referencing.Registry().with_resource(_DEFS_URI, referencing.Resource.from_contents(defs))


def _file_stem(kind: str, api_version: str) -> str:
    # kubernetes-validate's file naming: rbac.authorization.k8s.io/v1 -> rbac-v1
    short = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{short}"


@functools.cache
def _core_validator(version: str, kind: str, api_version: str, strict: bool) -> Any:
    """The validator for one kind, or None when the version's schema has no such kind."""
    path = _schema_dir(version, strict).joinpath(_file_stem(kind, api_version) + ".json")
    if not path.is_file():
        return None
    schema = json.loads(path.read_text())
    # Relative "$ref": "/api/_definitions.json#..." resolves against this base URI.
    schema.setdefault("$id", f"https://kubernetes.io/api/{_file_stem(kind, api_version)}.json")
    return jsonschema.Draft202012Validator(schema, registry=_registry(version, strict))


def _error_text(error: jsonschema.ValidationError) -> str:
    path = ".".join(str(p) for p in error.absolute_path) or "(top)"
    return f"{path}: {error.message}"


# --------------------------------------------------------------------------- CRD schemas

_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}


def _crd(api_versions: list[str], kind: str, namespaced: bool, **props: Any) -> dict[str, Any]:
    required = ["apiVersion", "kind", "metadata", *props.pop("_required", [])]
    meta = dict(_META)
    if namespaced:
        meta = {**_META, "required": ["name", "namespace"]}
    return {
        "type": "object",
        "required": required,
        "properties": {
            "apiVersion": {"enum": api_versions},
            "kind": {"const": kind},
            "metadata": meta,
            **props,
        },
        "additionalProperties": False,
    }


# (apiVersion, kind) -> minimal structural schema; the source of truth are the CRDs of
# kubernetes-csi/external-snapshotter v8.
CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshotClass"): _crd(
        ["snapshot.storage.k8s.io/v1"],
        "VolumeSnapshotClass",
        False,
        _required=["driver", "deletionPolicy"],
        driver={"type": "string", "minLength": 1},
        deletionPolicy={"enum": ["Delete", "Retain"]},
        parameters=_STR_MAP,
    ),
    ("snapshot.storage.k8s.io/v1", "VolumeSnapshot"): _crd(
        ["snapshot.storage.k8s.io/v1"],
        "VolumeSnapshot",
        True,
        _required=["spec"],
        spec={
            "type": "object",
            "required": ["source"],
            "properties": {
                "volumeSnapshotClassName": {"type": "string"},
                "source": {
                    "type": "object",
                    "oneOf": [
                        {"required": ["persistentVolumeClaimName"]},
                        {"required": ["volumeSnapshotContentName"]},
                    ],
                    "properties": {
                        "persistentVolumeClaimName": {"type": "string"},
                        "volumeSnapshotContentName": {"type": "string"},
                    },
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        },
        status={"type": "object"},
    ),
}


# -------------------------------------------------------------------- Kueue's upstream CRDs

#: The upstream CRDs of Kueue v0.19.2 (kubernetes-sigs/kueue, Apache-2.0): every served
#: version's openAPIV3Schema is what Kueue objects are checked against.
KUEUE_CRDS = Path(os.environ.get("GPULAB_KUEUE_CRDS", "/work/shared/refs/kueue-v0.19.2/crds"))


def _kueue_document(kind: str, schema: dict[str, Any], namespaced: bool) -> dict[str, Any]:
    """A CRD version's schema with metadata checked as everywhere here (names and labels by
    :func:`semantic_problems`)."""
    # Unknown fields refused wherever the CRD does not keep them, as strict field validation
    # (kubectl's default) does: kubesim's rule, so both check alike.
    from gpulab.kubesim.kueue.crds import _closed

    root = _closed(schema)
    props = dict(root.get("properties") or {})
    props["metadata"] = {**_META, "required": ["name", "namespace"]} if namespaced else _META
    props["kind"] = {"const": kind}
    return {**root, "properties": props, "required": ["apiVersion", "kind", "metadata"]}


@functools.cache
def kueue_crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> schema of every Kueue kind and version the upstream CRDs serve;
    without the upstream folder, the v1beta2 schemas kubesim serves (the same CRDs' schemas,
    descriptions left out: ``kubesim/kueue/schemas``)."""
    import yaml

    out: dict[tuple[str, str], dict[str, Any]] = {}
    if KUEUE_CRDS.is_dir():
        for path in sorted(KUEUE_CRDS.glob("*.yaml")):
            crd = yaml.safe_load(path.read_text())
            spec = crd["spec"]
            kind = spec["names"]["kind"]
            for version in spec["versions"]:
                if version.get("served"):
                    out[f"{spec['group']}/{version['name']}", kind] = _kueue_document(
                        kind, version["schema"]["openAPIV3Schema"], spec["scope"] == "Namespaced"
                    )
        return out
    from gpulab.kubesim.kueue.crds import GROUP, PLURALS, VERSION, crd

    for kind in PLURALS:
        doc = crd(kind)
        out[f"{GROUP}/{VERSION}", kind] = _kueue_document(
            kind, doc["openAPIV3Schema"], doc["scope"] == "Namespaced"
        )
    return out


@functools.cache
def _crd_validator(api_version: str, kind: str) -> Any:
    schema = CRD_SCHEMAS.get((api_version, kind)) or kueue_crd_schemas().get((api_version, kind))
    return None if schema is None else jsonschema.Draft202012Validator(schema)


def is_crd_kind(obj: Mapping[str, Any]) -> bool:
    key = (obj.get("apiVersion"), obj.get("kind"))
    return key in CRD_SCHEMAS or key in kueue_crd_schemas()


def _crd_semantics(obj: Mapping[str, Any]) -> list[str]:
    """Cross-field rules of the CRDs (their CEL ``x-kubernetes-validations``) that a JSON
    schema cannot say, for the fields gpulab writes."""
    problems: list[str] = []
    spec = obj.get("spec") or {}
    if obj.get("kind") == "ClusterQueue" and not spec.get("cohortName"):
        for group in spec.get("resourceGroups") or []:
            for flavor in group.get("flavors") or []:
                if any("borrowingLimit" in r for r in flavor.get("resources") or []):
                    problems.append(
                        "spec: borrowingLimit must be nil when cohort is empty "
                        f"(flavor {flavor.get('name')})"
                    )
    if obj.get("kind") == "ClusterQueue" and (preemption := spec.get("preemption")):
        borrow = (preemption.get("borrowWithinCohort") or {}).get("policy", "Never")
        if preemption.get("reclaimWithinCohort", "Never") == "Never" and borrow != "Never":
            problems.append(
                "spec.preemption: reclaimWithinCohort=Never and borrowWithinCohort.Policy!=Never"
            )
    if obj.get("kind") in ("ClusterQueue", "Cohort"):
        seen_resources: set[str] = set()
        seen_flavors: set[str] = set()
        for i, group in enumerate(spec.get("resourceGroups") or []):
            covered = group.get("coveredResources", [])
            # Each resource and each flavor in one resource group only.
            for name in covered:
                if name in seen_resources:
                    problems.append(f"spec.resourceGroups.{i}: resource {name} is in two groups")
                seen_resources.add(name)
            for flavor in group.get("flavors") or []:
                if flavor.get("name") in seen_flavors:
                    problems.append(
                        f"spec.resourceGroups.{i}: flavor {flavor.get('name')} is in two groups"
                    )
                seen_flavors.add(flavor.get("name"))
            covered = group.get("coveredResources", [])
            for j, flavor in enumerate(group.get("flavors", [])):
                names = [r.get("name") for r in flavor.get("resources", [])]
                if names != covered:
                    problems.append(
                        f"spec.resourceGroups.{i}.flavors.{j}.resources: names {names} must "
                        f"equal coveredResources {covered}, in the same order"
                    )
    return problems


# --------------------------------------------------------------------------- semantics

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# Kinds whose names are stricter than a DNS-1123 subdomain: the name becomes a DNS label
# (Namespace; Service, which is even a DNS-1035 label: it starts with a letter), or a label
# value (a Job's name is put in its pods' job-name label, so at most 63), or gets a suffix
# (a CronJob's Jobs are named <cronjob>-<11 characters>, so at most 52).
NAME_MAX_LENGTH = {"Namespace": 63, "Service": 63, "Job": 63, "CronJob": 52}
LABEL_NAMED_KINDS = frozenset(NAME_MAX_LENGTH)
# Cluster-scoped kinds gpulab ships or generates (everything else must have a namespace
# when `require_namespace` is asked for).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "PersistentVolume",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "VolumeSnapshotClass",
        "ResourceFlavor",
        "ClusterQueue",
        "Cohort",
        "WorkloadPriorityClass",
        "PriorityClass",
    }
)


def is_dns1123_label(value: str) -> bool:
    return len(value) <= 63 and bool(_DNS_LABEL.match(value))


def is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= 253 and bool(_DNS_SUBDOMAIN.match(value))


def qualified_name_problem(key: str) -> str | None:
    """Why `key` is not a valid label/annotation key (``[prefix/]name``), or None."""
    prefix, slash, name = key.rpartition("/")
    if slash and not is_dns1123_subdomain(prefix):
        return f"prefix {prefix!r} is not a DNS-1123 subdomain"
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        return (
            f"name part {name!r} must be 1-63 characters of [A-Za-z0-9-_.], "
            "starting and ending alphanumeric"
        )
    return None


def label_value_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"value {value!r} must be a string"
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return (
            f"value {value!r} must be empty or 1-63 characters of [A-Za-z0-9-_.], "
            "starting and ending alphanumeric"
        )
    return None


def semantic_problems(obj: Mapping[str, Any], *, require_namespace: bool = False) -> list[str]:
    problems: list[str] = []
    kind = obj.get("kind", "")
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if name is None:
        generate = meta.get("generateName")
        if not generate:
            problems.append("metadata.name: missing (and no generateName)")
        elif not is_dns1123_subdomain(generate.rstrip("-") or "x"):
            problems.append(f"metadata.generateName: {generate!r} is not a DNS-1123 prefix")
    elif kind in LABEL_NAMED_KINDS:
        limit = NAME_MAX_LENGTH[kind]
        first_ok = kind != "Service" or name[:1].isalpha()
        if not (is_dns1123_label(name) and len(name) <= limit and first_ok):
            problems.append(
                f"metadata.name: {name!r} must be a DNS-1123 label for a {kind} "
                f"(lower-case alphanumerics and '-', at most {limit}"
                + (", starting with a letter)" if kind == "Service" else ")")
            )
    elif not is_dns1123_subdomain(name):
        problems.append(
            f"metadata.name: {name!r} must be a DNS-1123 subdomain "
            "(lower-case alphanumerics, '-' and '.', at most 253)"
        )
    ns = meta.get("namespace")
    if ns is not None and not is_dns1123_label(ns):
        problems.append(f"metadata.namespace: {ns!r} is not a DNS-1123 label")
    if kind in CLUSTER_SCOPED_KINDS and ns is not None:
        problems.append(f"metadata.namespace: a {kind} is cluster-scoped, remove the namespace")
    if require_namespace and kind not in CLUSTER_SCOPED_KINDS and not ns:
        problems.append(f"metadata.namespace: a {kind} is namespaced and must name it")
    problems += _label_problems("metadata.labels", meta.get("labels"))
    for key in (meta.get("annotations") or {}).keys():
        if (why := qualified_name_problem(key)) is not None:
            problems.append(f"metadata.annotations: key {key!r}: {why}")
    # Pod templates (Job, CronJob, Deployment, ...) carry labels of their own.
    for path, template in _pod_templates(obj):
        tmeta = template.get("metadata") or {}
        problems += _label_problems(f"{path}.metadata.labels", tmeta.get("labels"))
    return problems


def _label_problems(path: str, labels: Any) -> list[str]:
    problems: list[str] = []
    for key, value in (labels or {}).items():
        if (why := qualified_name_problem(key)) is not None:
            problems.append(f"{path}: key {key!r}: {why}")
        if (why := label_value_problem(value)) is not None:
            problems.append(f"{path}[{key!r}]: {why}")
    return problems


def _pod_templates(obj: Mapping[str, Any]) -> Iterable[tuple[str, Mapping[str, Any]]]:
    spec = obj.get("spec") or {}
    if isinstance(spec.get("template"), Mapping):
        yield "spec.template", spec["template"]
    job = spec.get("jobTemplate")
    if isinstance(job, Mapping):
        jmeta = job.get("metadata") or {}
        if jmeta.get("labels"):
            yield "spec.jobTemplate", job
        tpl = (job.get("spec") or {}).get("template")
        if isinstance(tpl, Mapping):
            yield "spec.jobTemplate.spec.template", tpl


# --------------------------------------------------------------------------- entry points


def object_problems(
    obj: Mapping[str, Any],
    versions: Iterable[str] = SUPPORTED_VERSIONS,
    *,
    strict: bool = True,
    semantic: bool = True,
    require_namespace: bool = False,
) -> list[str]:
    """Every problem of `obj`, each prefixed with the Kubernetes version it fails on
    (schema problems) or ``semantic`` (name/label rules). Empty when valid."""
    if not isinstance(obj, Mapping):
        return [f"not an object: {type(obj).__name__}"]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return ["apiVersion and kind are required strings"]
    data = json.loads(json.dumps(obj))  # plain JSON types (tuples, ints as keys, ...)
    problems: list[str] = []
    crd = _crd_validator(api_version, kind)
    if crd is not None:
        problems += [f"crd: {_error_text(e)}" for e in crd.iter_errors(data)]
        problems += [f"crd: {p}" for p in _crd_semantics(data)]
    else:
        seen: dict[str, str] = {}
        for version in versions:
            validator = _core_validator(version, kind, api_version, strict)
            if validator is None:
                problems.append(f"{version}: no schema for {kind} {api_version}")
                continue
            for error in validator.iter_errors(data):
                text = _error_text(error)
                # The same error on every version is reported once, with the versions.
                if text in seen:
                    seen[text] += f",{version}"
                else:
                    seen[text] = version
        problems += [f"{vs}: {text}" for text, vs in seen.items()]
    if semantic:
        problems += [
            f"semantic: {p}" for p in semantic_problems(data, require_namespace=require_namespace)
        ]
    return problems


def validate_object(
    obj: Mapping[str, Any],
    versions: Iterable[str] = SUPPORTED_VERSIONS,
    *,
    strict: bool = True,
    semantic: bool = True,
    require_namespace: bool = False,
) -> None:
    """Raise :class:`K8sObjectError` (an AssertionError) listing every problem of `obj`."""
    problems = object_problems(
        obj, versions, strict=strict, semantic=semantic, require_namespace=require_namespace
    )
    if problems:
        raise K8sObjectError(obj, problems)
