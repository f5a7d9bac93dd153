"""The apiserver's semantic checks that the OpenAPI schema cannot express.

Names (DNS-1123 subdomain or label, per kind), label and annotation syntax, a few required
fields, and immutability on update. Each problem is a ``cause`` dict (reason, message,
field) in the apiserver's wording, so 422 bodies read like the real ones.
"""

from __future__ import annotations

import re
from typing import Any

from gpulab.kubesim.quantity import parse_quantity

Cause = dict[str, str]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# Kinds whose names must be DNS-1123 labels (the rest: subdomains), as in the apiserver.
_LABEL_NAMED = {"Namespace", "Service"}

_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
    "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
    "regex used for validation is "
    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def _invalid(field: str, value: Any, detail: str) -> Cause:
    return {
        "reason": "FieldValueInvalid",
        "message": f"Invalid value: {_go_quote(value)}: {detail}",
        "field": field,
    }


def _required(field: str, detail: str = "") -> Cause:
    return {
        "reason": "FieldValueRequired",
        "message": "Required value" + (f": {detail}" if detail else ""),
        "field": field,
    }


def _go_quote(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def check_name(kind: str, name: str, field: str = "metadata.name") -> list[Cause]:
    if kind in _LABEL_NAMED:
        if len(name) > 63:
            return [_invalid(field, name, "must be no more than 63 characters")]
        if not _DNS1123_LABEL.match(name):
            return [_invalid(field, name, _LABEL_MSG)]
    else:
        if len(name) > 253:
            return [_invalid(field, name, "must be no more than 253 characters")]
        if not _DNS1123_SUBDOMAIN.match(name):
            return [_invalid(field, name, _SUBDOMAIN_MSG)]
    return []


def _check_qualified_key(key: str, field: str) -> list[Cause]:
    prefix, _, name = key.rpartition("/")
    causes = []
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.match(prefix)):
        causes.append(_invalid(field, key, "prefix part " + _SUBDOMAIN_MSG))
    if not name or len(name) > 63 or not _QUALIFIED_NAME.match(name):
        causes.append(
            _invalid(
                field,
                key,
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
                "or '123-abc', regex used for validation is "
                "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') and must be no more than 63 "
                "characters",
            )
        )
    return causes


def check_metadata(kind: str, obj: dict[str, Any], namespaced: bool) -> list[Cause]:
    md = obj.get("metadata") or {}
    causes: list[Cause] = []
    name = md.get("name")
    if name:
        causes += check_name(kind, name)
    elif md.get("generateName"):
        # The generated name is the prefix plus 5 characters; check the prefix that way.
        causes += [
            {**c, "field": "metadata.generateName"}
            for c in check_name(kind, md["generateName"] + "a")
        ]
    else:
        causes.append(_required("metadata.name", "name or generateName is required"))
    if namespaced and md.get("namespace"):
        causes += check_name("Namespace", md["namespace"], "metadata.namespace")
    for key, value in (md.get("labels") or {}).items():
        causes += _check_qualified_key(key, "metadata.labels")
        if value is not None and (len(str(value)) > 63 or not _LABEL_VALUE.match(str(value))):
            causes.append(
                _invalid(
                    "metadata.labels",
                    value,
                    "a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an alphanumeric "
                    "character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for "
                    "validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                )
            )
    for key in md.get("annotations") or {}:
        causes += _check_qualified_key(key.lower(), "metadata.annotations")
    return causes


def _check_pod_spec(spec: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    containers = spec.get("containers") or []
    if not containers:
        causes.append(_required(f"{path}.containers"))
    seen: set[str] = set()
    for i, c in enumerate((spec.get("initContainers") or []) + containers):
        where = f"{path}.containers[{i}]"
        cname = c.get("name") or ""
        if not cname:
            causes.append(_required(f"{where}.name"))
        elif not _DNS1123_LABEL.match(cname) or len(cname) > 63:
            causes.append(_invalid(f"{where}.name", cname, _LABEL_MSG))
        elif cname in seen:
            causes.append(
                {
                    "reason": "FieldValueDuplicate",
                    "message": f"Duplicate value: {_go_quote(cname)}",
                    "field": f"{where}.name",
                }
            )
        seen.add(cname)
        if not c.get("image"):
            causes.append(_required(f"{where}.image"))
        resources = c.get("resources") or {}
        for section in ("requests", "limits"):
            for rname, qty in (resources.get(section) or {}).items():
                try:
                    if parse_quantity(qty) < 0:
                        raise ValueError("must be greater than or equal to 0")
                except ValueError as e:
                    causes.append(_invalid(f"{where}.resources.{section}[{rname}]", qty, str(e)))
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        for rname, req in requests.items():
            if rname in limits:
                try:
                    if parse_quantity(req) > parse_quantity(limits[rname]):
                        causes.append(
                            _invalid(
                                f"{where}.resources.requests",
                                req,
                                f"must be less than or equal to {rname} limit of {limits[rname]}",
                            )
                        )
                except ValueError:
                    pass
    return causes


def _check_quantities(values: dict[str, Any], path: str) -> list[Cause]:
    causes = []
    for name, qty in values.items():
        try:
            parse_quantity(qty)
        except ValueError as e:
            causes.append(_invalid(f"{path}[{name}]", qty, str(e)))
    return causes


def check_spec(kind: str, obj: dict[str, Any]) -> list[Cause]:
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return _check_pod_spec(spec, "spec")
    if kind == "ResourceQuota":
        return _check_quantities(spec.get("hard") or {}, "spec.hard")
    if kind == "LimitRange":
        causes = []
        for i, item in enumerate(spec.get("limits") or []):
            for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
                causes += _check_quantities(item.get(key) or {}, f"spec.limits[{i}].{key}")
        return causes
    if kind == "Job":
        template = spec.get("template") or {}
        causes = _check_pod_spec(template.get("spec") or {}, "spec.template.spec")
        policy = (template.get("spec") or {}).get("restartPolicy")
        if policy not in ("Never", "OnFailure"):
            causes.append(
                {
                    "reason": "FieldValueNotSupported",
                    "message": f'Unsupported value: {_go_quote(policy or "Always")}: supported values: "OnFailure", "Never"',
                    "field": "spec.template.spec.restartPolicy",
                }
            )
        return causes + _check_job_completion(spec)
    if kind == "VolumeSnapshot":
        return _check_volume_snapshot(obj)
    if kind == "VolumeSnapshotClass":
        return _check_volume_snapshot_class(obj)
    return []


def _check_job_completion(spec: dict[str, Any]) -> list[Cause]:
    """The Job strategy's checks of completion mode and per-index back-off (batch/v1)."""
    causes: list[Cause] = []
    mode = spec.get("completionMode")
    indexed = mode == "Indexed"
    if mode not in (None, "NonIndexed", "Indexed"):
        causes.append(
            {
                "reason": "FieldValueNotSupported",
                "message": f'Unsupported value: {_go_quote(mode)}: supported values: "NonIndexed", "Indexed"',
                "field": "spec.completionMode",
            }
        )
    if indexed and spec.get("completions") is None:
        causes.append(_required("spec.completions", "when completion mode is Indexed"))
    per_index, max_failed = spec.get("backoffLimitPerIndex"), spec.get("maxFailedIndexes")
    if per_index is not None and not indexed:
        causes.append(_forbidden("spec.backoffLimitPerIndex", "requires indexed completion mode"))
    if max_failed is not None:
        if per_index is None:
            causes.append(
                _required("spec.backoffLimitPerIndex", "when maxFailedIndexes is specified")
            )
        completions = spec.get("completions")
        if (
            isinstance(completions, int)
            and isinstance(max_failed, int)
            and max_failed > completions
        ):
            causes.append(
                _invalid(
                    "spec.maxFailedIndexes", max_failed, "must be less than or equal to completions"
                )
            )
    for key in ("backoffLimitPerIndex", "maxFailedIndexes", "completions", "parallelism"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or value < 0):
            causes.append(_invalid(f"spec.{key}", value, "must be greater than or equal to 0"))
    return causes


def _check_volume_snapshot(obj: dict[str, Any]) -> list[Cause]:
    """The snapshot CRD's schema and validation rules (kubesim has no CRD schemas)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [_required("spec")]
    source = spec.get("source")
    if not isinstance(source, dict):
        return [_required("spec.source")]
    given = [k for k in ("persistentVolumeClaimName", "volumeSnapshotContentName") if source.get(k)]
    causes: list[Cause] = []
    if len(given) != 1:
        causes.append(
            _invalid(
                "spec.source",
                "object",
                "Exactly one of volumeSnapshotContentName and persistentVolumeClaimName "
                "should be specified",
            )
        )
    for key in given:
        causes += check_name("VolumeSnapshot", str(source[key]), f"spec.source.{key}")
    cls = spec.get("volumeSnapshotClassName")
    if cls is not None and (not isinstance(cls, str) or not cls):
        causes.append(_invalid("spec.volumeSnapshotClassName", cls, "must not be the empty string"))
    return causes


def _check_volume_snapshot_class(obj: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    if not obj.get("driver"):
        causes.append(_required("driver"))
    policy = obj.get("deletionPolicy")
    if policy not in ("Delete", "Retain"):
        causes.append(
            {
                "reason": "FieldValueNotSupported" if policy else "FieldValueRequired",
                "message": f'Unsupported value: {_go_quote(policy)}: supported values: "Delete", "Retain"'
                if policy
                else "Required value",
                "field": "deletionPolicy",
            }
        )
    return causes


def _pod_spec_mutable_view(spec: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """The spec with the fields a pod update may change replaced by the old values."""
    view = dict(spec)
    view["containers"] = [
        {**c, "image": (old_c or {}).get("image")}
        for c, old_c in zip(
            spec.get("containers") or [], (old.get("containers") or []) + [None] * 99, strict=False
        )
    ]
    view["initContainers"] = [
        {**c, "image": (old_c or {}).get("image")}
        for c, old_c in zip(
            spec.get("initContainers") or [],
            (old.get("initContainers") or []) + [None] * 99,
            strict=False,
        )
    ]
    for mutable in ("activeDeadlineSeconds", "tolerations"):
        view[mutable] = old.get(mutable)
    if not old.get("nodeName"):
        view["nodeName"] = old.get("nodeName")  # binding sets it once
    return view


def check_update(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[Cause]:
    """Immutable fields, as the apiserver's ValidateUpdate functions enforce them."""
    causes: list[Cause] = []
    if kind == "Pod":
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        old_tol = old_spec.get("tolerations") or []
        if any(t not in (new_spec.get("tolerations") or []) for t in old_tol):
            causes.append(
                _forbidden(
                    "spec.tolerations",
                    "existing toleration can not be modified except its tolerationSeconds",
                )
            )
        if _pod_spec_mutable_view(new_spec, old_spec) != _pod_spec_mutable_view(old_spec, old_spec):
            causes.append(
                _forbidden(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,"
                    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
                    "`spec.tolerations` (only additions to existing tolerations),"
                    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                    "previously negative)",
                )
            )
    elif kind == "Job":
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        for f in ("selector", "completionMode", "podFailurePolicy"):
            if new_spec.get(f) != old_spec.get(f):
                causes.append(_invalid(f"spec.{f}", new_spec.get(f), "field is immutable"))
        if new_spec.get("template") != old_spec.get("template"):
            causes.append(_invalid("spec.template", "", "field is immutable"))
    elif kind == "PersistentVolumeClaim":
        old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
        strip = lambda s: {k: v for k, v in s.items() if k != "resources"}  # noqa: E731
        if strip(old_spec) != strip(new_spec):
            causes.append(
                _forbidden(
                    "spec",
                    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                )
            )
    elif kind == "VolumeSnapshot":
        if (new.get("spec") or {}).get("source") != (old.get("spec") or {}).get("source"):
            causes.append(_invalid("spec.source", "object", "spec.source is immutable"))
    elif kind == "VolumeSnapshotClass":
        for f in ("driver", "parameters"):
            if new.get(f) != old.get(f):
                causes.append(_invalid(f, new.get(f), "field is immutable"))
    elif kind in ("Secret", "ConfigMap") and old.get("immutable"):
        if new.get("data") != old.get("data") or new.get("immutable") != old.get("immutable"):
            causes.append(_forbidden("data", "field is immutable when `immutable` is set"))
    return causes


def _forbidden(field: str, detail: str) -> Cause:
    return {"reason": "FieldValueForbidden", "message": f"Forbidden: {detail}", "field": field}
