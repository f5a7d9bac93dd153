"""Discovery documents: /version, /api, /apis, per group-version resource lists, OpenAPI.

kubesim reports Kubernetes 1.31: the kubectl on these machines picks its own version from
``/version``, and kubectl 1.32+ sends protobuf bodies that kubesim does not decode.

``/openapi/v3`` is minimal on purpose: for each served kind it lists only the POST
and PATCH operations with their ``x-kubernetes-group-version-kind`` and the
``fieldValidation`` parameter. That is
what kubectl checks to leave validation to the server (so ``create -f`` does not need the
full schema); kubectl's client-side apply then falls back to its compiled-in patch metadata.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from gpulab.kubesim.kueue import visibility
from gpulab.kubesim.reviews import REVIEWS
from gpulab.kubesim.store import RESOURCES, ResourceType

VERSION = {
    "major": "1",
    "minor": "31",
    "gitVersion": "v1.31.0",
    "gitCommit": "kubesim",
    "gitTreeState": "clean",
    "buildDate": "2024-08-13T00:00:00Z",
    "goVersion": "go1.22.5",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
_SUB_VERBS = {"status": ["get", "patch", "update"], "log": ["get"], "pendingworkloads": ["get"]}


def _served(hidden: frozenset[str] = frozenset()) -> list[ResourceType]:
    """Stored kinds, then the create-only review kinds (answered, never stored); without the
    API groups in ``hidden`` (optional ones switched off)."""
    every = (*RESOURCES.values(), *REVIEWS.values(), *visibility.TYPES)
    return [rt for rt in every if rt.group not in hidden]


def _verbs(rt: ResourceType) -> list[str]:
    if (rt.group, rt.plural) in REVIEWS:
        return ["create"]
    if rt in visibility.TYPES:
        return ["get"]
    return _VERBS if rt.kind != "Node" else [v for v in _VERBS if v != "deletecollection"]


def group_versions(hidden: frozenset[str] = frozenset()) -> dict[str, list[ResourceType]]:
    """``api/v1`` or ``apis/<group>/<version>`` -> the types served there."""
    out: dict[str, list[ResourceType]] = {}
    for rt in _served(hidden):
        prefix = "api/v1" if not rt.group else f"apis/{rt.group}/{rt.version}"
        out.setdefault(prefix, []).append(rt)
    return out


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
    }


def _group(group: str, version: str) -> dict[str, Any]:
    gv = {"groupVersion": f"{group}/{version}", "version": version}
    return {"name": group, "versions": [gv], "preferredVersion": gv}


def api_group_list(hidden: frozenset[str] = frozenset()) -> dict[str, Any]:
    groups = sorted({(rt.group, rt.version) for rt in _served(hidden) if rt.group})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(g, v) for g, v in groups]}


def api_group(group: str, hidden: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    for rt in _served(hidden):
        if rt.group == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group(group, rt.version)}
    return None


def resource_list(prefix: str, hidden: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    types = group_versions(hidden).get(prefix)
    if types is None:
        return None
    resources: list[dict[str, Any]] = []
    for rt in sorted(types, key=lambda t: t.plural):
        entry: dict[str, Any] = {
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": _verbs(rt),
            "storageVersionHash": hashlib.sha256(str(rt).encode()).hexdigest()[:12],
        }
        if rt.short_names:
            entry["shortNames"] = list(rt.short_names)
        if rt.categories:
            entry["categories"] = list(rt.categories)
        resources.append(entry)
        for sub in sorted(rt.subresources):
            resources.append(
                {
                    "name": f"{rt.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rt.namespaced,
                    "kind": {"status": rt.kind, "log": "Pod"}.get(sub, "PendingWorkloadsSummary"),
                    "verbs": _SUB_VERBS[sub],
                }
            )
    gv = "v1" if prefix == "api/v1" else prefix.removeprefix("apis/")
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }


def _hash(prefix: str, hidden: frozenset[str]) -> str:
    return (
        hashlib.sha512(json.dumps(openapi_v3_doc(prefix, hidden), sort_keys=True).encode())
        .hexdigest()[:32]
        .upper()
    )


def openapi_v3_root(hidden: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        "paths": {
            prefix: {"serverRelativeURL": f"/openapi/v3/{prefix}?hash={_hash(prefix, hidden)}"}
            for prefix in group_versions(hidden)
        }
    }


def openapi_v3_doc(prefix: str, hidden: frozenset[str] = frozenset()) -> dict[str, Any] | None:
    types = group_versions(hidden).get(prefix)
    if types is None:
        return None
    paths: dict[str, Any] = {}
    params = [
        {"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        for p in ("dryRun", "fieldManager", "fieldValidation")
    ]
    for rt in types:
        gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
        base = f"/{prefix}/" + (
            f"namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else rt.plural
        )
        # kubectl looks for fieldValidation on the PATCH operation of the kind's GVK.
        if rt in visibility.TYPES:
            continue
        ops = [(base, "post")]
        if (rt.group, rt.plural) not in REVIEWS:
            ops.append((base + "/{name}", "patch"))
        for path, verb in ops:
            paths[path] = {
                verb: {
                    "operationId": f"{verb}{rt.kind}",
                    "parameters": params,
                    "responses": {"200": {"description": "OK"}},
                    "x-kubernetes-action": verb,
                    "x-kubernetes-group-version-kind": gvk,
                }
            }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (kubesim)", "version": VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }


def openapi_v2() -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes (kubesim)", "version": VERSION["gitVersion"]},
        "paths": {},
        "definitions": {},
    }
