"""Does a Role grant exactly the API calls a component makes?

The calls come from a kubesim audit log (``gpulab kubesim serve --audit-log FILE``: one JSON
object per request with verb, apiGroup, resource, subresource, namespace, name, userAgent,
code). Use::

    from tests.ship.rbac import load_audit, load_role_rules, rules_cover

    calls = load_audit(path, user_agent="gpulab-jobs-gateway")   # only the gateway's calls
    rules = load_role_rules("helm-values/manifests/rbac-gateway.yaml", "gpulab-jobs-gateway")
    missing, extra = rules_cover(rules, calls, namespace="gpulab")
    assert not missing, f"the Role lacks {missing}"
    assert not extra, f"the Role grants more than is used: {extra}"

A permission is (apiGroup, resource[/subresource], verb), as RBAC sees a request: a GET of
``pods/x/log`` is ("", "pods/log", "get"), a GET with ?watch=1 is "watch". Calls that failed
(403, 404, 409, ...) still count: the component asked for them, so it needs them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import yaml


class Permission(NamedTuple):
    api_group: str
    resource: str  # "pods" or "pods/log"
    verb: str

    def __str__(self) -> str:
        group = self.api_group or "core"
        return f"{self.verb} {self.resource} ({group})"


@dataclass(frozen=True)
class ApiCall:
    verb: str
    api_group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    user_agent: str = ""
    code: int = 0

    @property
    def permission(self) -> Permission:
        resource = f"{self.resource}/{self.subresource}" if self.subresource else self.resource
        return Permission(self.api_group, resource, self.verb)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ApiCall:
        """From a kubesim audit record (camelCase keys) or a dict with snake_case keys."""

        def pick(*keys: str, default: Any = "") -> Any:
            for key in keys:
                if key in record and record[key] is not None:
                    return record[key]
            return default

        return cls(
            verb=str(pick("verb")),
            api_group=str(pick("apiGroup", "api_group")),
            resource=str(pick("resource")),
            subresource=str(pick("subresource")),
            namespace=str(pick("namespace")),
            name=str(pick("name")),
            user_agent=str(pick("userAgent", "user_agent")),
            code=int(pick("code", default=0)),
        )


def load_audit(path: str | Path, *, user_agent: str | None = None) -> list[ApiCall]:
    """The calls of a kubesim JSON-lines audit log; with `user_agent`, only the calls whose
    User-Agent contains that string (the component under test)."""
    calls: list[ApiCall] = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            call = ApiCall.from_record(json.loads(line))
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}:{lineno}: not an audit record: {e}") from None
        if user_agent is None or user_agent in call.user_agent:
            calls.append(call)
    return calls


def load_role_rules(path: str | Path, role_name: str) -> list[dict[str, Any]]:
    """The rules of the Role or ClusterRole `role_name` in a multi-document YAML file."""
    for doc in yaml.safe_load_all(Path(path).read_text()):
        if (
            isinstance(doc, dict)
            and doc.get("kind") in ("Role", "ClusterRole")
            and doc.get("metadata", {}).get("name") == role_name
        ):
            return list(doc.get("rules") or [])
    raise LookupError(f"no Role {role_name!r} in {path}")


def _grants(rule: Mapping[str, Any], call: ApiCall) -> bool:
    perm = call.permission
    groups = rule.get("apiGroups") or []
    resources = rule.get("resources") or []
    verbs = rule.get("verbs") or []
    names = rule.get("resourceNames") or []
    if rule.get("nonResourceURLs"):
        return False
    if "*" not in groups and perm.api_group not in groups:
        return False
    base = perm.resource.split("/", 1)[0]
    # "*" matches every resource but no subresource; "*/log" and "pods/*" match as RBAC does.
    sub = perm.resource.split("/", 1)[1] if "/" in perm.resource else None
    if not (
        perm.resource in resources
        or ("*" in resources and sub is None)
        or (sub is not None and (f"*/{sub}" in resources or f"{base}/*" in resources))
    ):
        return False
    if "*" not in verbs and perm.verb not in verbs:
        return False
    # resourceNames cannot restrict list/watch/create/deletecollection (no name in the
    # request), so such a rule only grants calls on a named object in the list.
    return not (names and (not call.name or call.name not in names))


def _expand(rule: Mapping[str, Any]) -> set[Permission]:
    return {
        Permission(group, resource, verb)
        for group in rule.get("apiGroups") or []
        for resource in rule.get("resources") or []
        for verb in rule.get("verbs") or []
    }


def rules_cover(
    role_rules: Iterable[Mapping[str, Any]],
    calls: Iterable[ApiCall | Mapping[str, Any]],
    *,
    namespace: str | None = None,
) -> tuple[list[Permission], list[Permission]]:
    """Compare a Role's rules with the API calls a component made.

    Returns ``(missing, extra)``, both sorted lists of :class:`Permission`:
    - missing: permissions of calls that no rule grants. With `namespace`, calls in another
      namespace or on cluster-scoped resources are missing too: a Role there cannot grant them.
    - extra: permissions the rules grant that no call used. Wildcards (``*``) in a rule are
      always extra (an exact Role names what it grants), as are rules on nonResourceURLs.
    """
    rules = [dict(r) for r in role_rules]
    parsed = [c if isinstance(c, ApiCall) else ApiCall.from_record(c) for c in calls]
    missing: set[Permission] = set()
    used: set[Permission] = set()
    for call in parsed:
        out_of_scope = namespace is not None and call.namespace != namespace
        if out_of_scope or not any(_grants(rule, call) for rule in rules):
            missing.add(call.permission)
        else:
            used.add(call.permission)
    extra: set[Permission] = set()
    for rule in rules:
        for url in rule.get("nonResourceURLs") or []:
            for verb in rule.get("verbs") or []:
                extra.add(Permission("", url, verb))
        for perm in _expand(rule):
            if "*" in (perm.api_group, perm.resource, perm.verb) or "/*" in perm.resource:
                extra.add(perm)
            elif perm not in used:
                extra.add(perm)
    return sorted(missing), sorted(extra)


def not_allowed(client: Any, calls: Iterable[ApiCall]) -> list[ApiCall]:
    """The calls the identity behind ``client`` (an ``httpx.Client`` on the API server with
    its token) may not make, as the server's RBAC answers a SelfSubjectAccessReview: one
    review per distinct (permission, namespace). A refusal for another cause (a quota, an
    injected fault) is not counted."""
    seen: dict[tuple[Permission, str], bool] = {}
    refused = []
    for call in calls:
        key = (call.permission, call.namespace)
        if key not in seen:
            review = {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {
                    "resourceAttributes": {
                        "verb": call.verb,
                        "group": call.api_group,
                        "resource": call.resource,
                        "subresource": call.subresource,
                        "namespace": call.namespace,
                    }
                },
            }
            reply = client.post(
                "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", json=review
            )
            reply.raise_for_status()
            seen[key] = bool(reply.json()["status"]["allowed"])
        if not seen[key]:
            refused.append(call)
    return refused
