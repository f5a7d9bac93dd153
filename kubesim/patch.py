"""PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch.

Strategic merge patch is driven by the OpenAPI schema's ``x-kubernetes-patch-merge-key`` and
``x-kubernetes-patch-strategy`` (containers, env, volumes, volumeMounts, ports,
imagePullSecrets, … merge by key; lists without a strategy are replaced), plus the
``$patch: delete|replace|merge`` directives, ``$deleteFromPrimitiveList/<field>``,
``$setElementOrder/<field>`` (accepted, order ignored) and ``$retainKeys``. That covers
kubectl's client-side apply, which sends a strategic merge patch computed from the
last-applied annotation.
"""

from __future__ import annotations

import copy
from typing import Any

from gpulab.kubesim import schema
from gpulab.kubesim.errors import ApiError, bad_request

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


def apply_patch(
    content_type: str, target: dict[str, Any], patch: Any, kind: str, api_version: str
) -> dict[str, Any]:
    if content_type == JSON_PATCH:
        return json_patch(target, patch)
    if not isinstance(patch, dict):
        raise bad_request("the patch body must be a JSON object")
    if content_type == MERGE_PATCH:
        return merge_patch(target, patch)
    if content_type == STRATEGIC_MERGE_PATCH:
        root = schema.root_definition(kind, api_version)
        node = {"$ref": f"#/$defs/{root}"} if root else None
        return strategic_merge(target, patch, node)
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the server does not support patch type {content_type!r} (server-side apply is not "
        "implemented by kubesim; use client-side apply)",
    )


# -- RFC 7386 ---------------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- RFC 6902 ---------------------------------------------------------------------------
def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _split(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [_unescape(t) for t in path[1:].split("/")]


def _walk(doc: Any, tokens: list[str], path: str) -> Any:
    for t in tokens:
        if isinstance(doc, dict) and t in doc:
            doc = doc[t]
        elif isinstance(doc, list) and t.isdigit() and int(t) < len(doc):
            doc = doc[int(t)]
        else:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: jsonpatch: path {path!r} not found",
            )
    return doc


def json_patch(target: dict[str, Any], ops: Any) -> dict[str, Any]:
    if not isinstance(ops, list):
        raise bad_request("json patch must be a list of operations")
    doc: Any = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request(f"invalid json patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        tokens = _split(path)
        if kind == "test":
            if _walk(doc, tokens, path) != op.get("value"):
                raise ApiError(
                    422,
                    "Invalid",
                    f"the server rejected our request due to an error in our request: testing value {path} failed",
                )
            continue
        if kind in ("move", "copy"):
            from_tokens = _split(op.get("from", ""))
            value = copy.deepcopy(_walk(doc, from_tokens, op.get("from", "")))
            if kind == "move":
                doc = _remove(doc, from_tokens, op["from"])
            doc = _add(doc, tokens, value, path)
        elif kind == "add":
            doc = _add(doc, tokens, copy.deepcopy(op.get("value")), path)
        elif kind == "remove":
            doc = _remove(doc, tokens, path)
        elif kind == "replace":
            doc = _remove(doc, tokens, path)
            doc = _add(doc, tokens, copy.deepcopy(op.get("value")), path)
        else:
            raise bad_request(f"unexpected json patch operation {kind!r}")
    if not isinstance(doc, dict):
        raise bad_request("json patch must leave an object")
    return doc


def _add(doc: Any, tokens: list[str], value: Any, path: str) -> Any:
    if not tokens:
        return value
    parent = _walk(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise ApiError(422, "Invalid", f"jsonpatch: index out of bounds at {path!r}")
    else:
        raise ApiError(422, "Invalid", f"jsonpatch: path {path!r} not found")
    return doc


def _remove(doc: Any, tokens: list[str], path: str) -> Any:
    if not tokens:
        raise bad_request("jsonpatch: cannot remove the root")
    parent = _walk(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        del parent[last]
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        del parent[int(last)]
    else:
        raise ApiError(
            422,
            "Invalid",
            f"the server rejected our request due to an error in our request: jsonpatch remove operation does not apply: doc is missing path: {path!r}",
        )
    return doc


# -- strategic merge patch ----------------------------------------------------------------
def strategic_merge(target: Any, patch: Any, node: dict[str, Any] | None) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
            continue
        child = schema.field_schema(node, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, child)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, child)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain or k in patch}
    return result


def _merge_list(current: Any, patch: list[Any], node: dict[str, Any] | None) -> list[Any]:
    node = node or {}
    strategy = node.get("x-kubernetes-patch-strategy", "")
    merge_key = node.get("x-kubernetes-patch-merge-key")
    items_node = node.get("items") if isinstance(node.get("items"), dict) else None
    if "merge" not in strategy.split(",") or not isinstance(current, list):
        return [_strip_directives(v) for v in patch if not _is_delete(v)]
    if not merge_key:
        # A merged list of primitives (e.g. finalizers): union, keeping order.
        out = list(current)
        for v in patch:
            if v not in out:
                out.append(v)
        return out
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [_strip_directives(v) for v in patch if not (isinstance(v, dict) and "$patch" in v)]
    out = [copy.deepcopy(v) for v in current]
    for item in patch:
        if not isinstance(item, dict):
            continue
        idx = next(
            (
                i
                for i, v in enumerate(out)
                if isinstance(v, dict) and v.get(merge_key) == item.get(merge_key)
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                out.pop(idx)
            continue
        if idx is None:
            out.append(_strip_directives(item))
        else:
            out[idx] = strategic_merge(out[idx], item, items_node)
    return out


def _is_delete(v: Any) -> bool:
    return isinstance(v, dict) and v.get("$patch") == "delete"


def _strip_directives(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_directives(x) for k, x in v.items() if not k.startswith("$")}
    if isinstance(v, list):
        return [_strip_directives(x) for x in v]
    return copy.deepcopy(v)
