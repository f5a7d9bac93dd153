"""The ``kueue.x-k8s.io/v1beta2`` schemas, as the apiserver validates custom resources.

``schemas/<plural>.json`` hold the ``v1beta2`` ``openAPIV3Schema`` of each upstream Kueue
v0.19.2 CRD (Apache-2.0, kubernetes-sigs/kueue ``config/components/crd``), with the
schema nodes' ``description`` annotations left out (a field named ``description``, such as
WorkloadPriorityClass's, stays), plus the CRD's names and subresources. The apiserver checks a custom
resource against its structural schema; kubesim does the same with jsonschema, and with
``fieldValidation=Strict`` (kubectl's default) rejects unknown fields where the schema does
not preserve them. Not evaluated: the CEL rules (``x-kubernetes-validations``) and
``format``s.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

import jsonschema

GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"
VISIBILITY_GROUP = "visibility.kueue.x-k8s.io"
# The API groups kubesim serves only with --kueue.
KUEUE_GROUPS = frozenset({GROUP, VISIBILITY_GROUP})
PLURALS = {
    "ResourceFlavor": "resourceflavors",
    "ClusterQueue": "clusterqueues",
    "Cohort": "cohorts",
    "LocalQueue": "localqueues",
    "WorkloadPriorityClass": "workloadpriorityclasses",
    "Workload": "workloads",
}


@functools.cache
def crd(kind: str) -> dict[str, Any]:
    """The stored schema document of a Kueue kind (names, subresources, openAPIV3Schema)."""
    path = resources.files("gpulab.kubesim.kueue").joinpath(f"schemas/{PLURALS[kind]}.json")
    return json.loads(path.read_text())


def _closed(node: Any) -> Any:
    """The schema with unknown fields refused wherever the CRD does not keep them."""
    if isinstance(node, list):
        return [_closed(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _closed(v) for k, v in node.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def validator(kind: str, strict: bool = True) -> jsonschema.Validator:
    root = dict(crd(kind)["openAPIV3Schema"])
    props = dict(root.get("properties") or {})
    # metadata is checked by kubesim's own name and label rules, as for every kind.
    props["metadata"] = {"type": "object"}
    root["properties"] = props
    schema = _closed(root) if strict else root
    return jsonschema.Draft202012Validator(schema)


__all__ = ["GROUP", "KUEUE_GROUPS", "PLURALS", "VERSION", "VISIBILITY_GROUP", "crd", "validator"]
