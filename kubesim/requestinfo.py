"""What an API request is about (verb, group, resource, namespace, name, subresource),
parsed from method, path and query as the apiserver's RequestInfoFactory does. Routing and
the audit log both use it.
"""

from __future__ import annotations

from dataclasses import dataclass

from multidict import MultiMapping


@dataclass(frozen=True)
class RequestInfo:
    is_resource: bool
    verb: str  # get list watch create update patch delete deletecollection (or the HTTP method)
    api_prefix: str = ""  # "api" or "apis"
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def _is_watch(query: MultiMapping[str]) -> bool:
    return query.get("watch", "").lower() in ("true", "1")


def parse_request(method: str, path: str, query: MultiMapping[str]) -> RequestInfo:
    parts = [p for p in path.split("/") if p]
    non_resource = RequestInfo(False, method.lower())
    if not parts or parts[0] not in ("api", "apis"):
        return non_resource
    prefix = parts[0]
    if prefix == "api":
        if len(parts) < 3:
            return non_resource
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 4:
            return non_resource
        group, version, rest = parts[1], parts[2], parts[3:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3:
        return RequestInfo(
            True, "unknown", prefix, group, version, resource, "/".join(rest[2:]), namespace, name
        )
    if resource == "namespaces" and name:
        namespace = name
    if method == "GET":
        if _is_watch(query):
            verb = "watch"
        else:
            verb = "get" if name else "list"
    elif method == "DELETE" and not name:
        verb = "deletecollection"
    else:
        verb = _METHOD_VERBS.get(method, method.lower())
    return RequestInfo(True, verb, prefix, group, version, resource, subresource, namespace, name)
