"""The review APIs: who am I (``authentication.k8s.io/v1`` SelfSubjectReview, what
``kubectl auth whoami`` posts) and may I / may they (``authorization.k8s.io/v1``
SelfSubjectAccessReview, SubjectAccessReview, LocalSubjectAccessReview,
SelfSubjectRulesReview, what ``kubectl auth can-i [--list]`` posts).

These are create-only kinds that are answered, never stored. The builders here are pure:
they take the request body, the caller and an ``authorize`` function, and return the
response object (the body with its ``status`` filled in).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gpulab.kubesim.authn import UserInfo
from gpulab.kubesim.errors import ApiError, bad_request
from gpulab.kubesim.rbac import Attributes, Decision, Rule
from gpulab.kubesim.store import ResourceType

AUTHN = "authentication.k8s.io"
AUTHZ = "authorization.k8s.io"


def _review(group: str, kind: str, plural: str, namespaced: bool = False) -> ResourceType:
    return ResourceType(group, "v1", kind, plural, namespaced)


REVIEWS: dict[tuple[str, str], ResourceType] = {
    (rt.group, rt.plural): rt
    for rt in (
        _review(AUTHN, "SelfSubjectReview", "selfsubjectreviews"),
        _review(AUTHZ, "SelfSubjectAccessReview", "selfsubjectaccessreviews"),
        _review(AUTHZ, "SelfSubjectRulesReview", "selfsubjectrulesreviews"),
        _review(AUTHZ, "SubjectAccessReview", "subjectaccessreviews"),
        _review(AUTHZ, "LocalSubjectAccessReview", "localsubjectaccessreviews", True),
    )
}

Authorize = Callable[[Attributes], Decision]
RulesFor = Callable[[UserInfo, str], list[Rule]]


def _invalid(kind: str, field: str, message: str) -> ApiError:
    cause = {"reason": "FieldValueInvalid", "message": message, "field": field}
    return ApiError(
        422,
        "Invalid",
        f'{kind}.{AUTHZ} "" is invalid: {field}: {message}',
        {"kind": kind, "group": AUTHZ, "causes": [cause]},
    )


def _spec(body: dict[str, Any]) -> dict[str, Any]:
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise bad_request("spec must be an object")
    return spec


def _attributes(kind: str, spec: dict[str, Any], user: UserInfo) -> Attributes:
    res, non_res = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if bool(res) == bool(non_res):
        raise _invalid(
            kind,
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )
    if non_res:
        return Attributes(user, non_res.get("verb", ""), False, path=non_res.get("path", ""))
    return Attributes(
        user,
        res.get("verb", ""),
        True,
        api_group=res.get("group", ""),
        resource=res.get("resource", ""),
        subresource=res.get("subresource", ""),
        namespace=res.get("namespace", ""),
        name=res.get("name", ""),
    )


def _access_status(decision: Decision) -> dict[str, Any]:
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return status


def answer(
    rt: ResourceType,
    body: dict[str, Any],
    caller: UserInfo,
    namespace: str,
    authorize: Authorize,
    rules_for: RulesFor,
) -> dict[str, Any]:
    """The response object of a review posted by ``caller``."""
    out = {**body, "apiVersion": rt.api_version, "kind": rt.kind}
    out["metadata"] = {**(body.get("metadata") or {}), "creationTimestamp": None}
    if rt.kind == "SelfSubjectReview":
        out["status"] = {"userInfo": caller.to_json()}
        return out
    spec = _spec(body)
    if rt.kind == "SelfSubjectRulesReview":
        rules = rules_for(caller, spec.get("namespace", ""))
        out["status"] = {
            "resourceRules": [r.to_json() for r in rules if not r.non_resource_urls],
            "nonResourceRules": [r.to_json() for r in rules if r.non_resource_urls],
            "incomplete": False,
        }
        return out
    if rt.kind == "SelfSubjectAccessReview":
        subject = caller
    else:
        name = spec.get("user", "")
        groups = spec.get("groups") or []
        if not name and not groups:
            raise _invalid(rt.kind, "spec.user", "at least one of user or group must be specified")
        # As upstream, a SubjectAccessReview's groups are taken as given: no implied groups
        # are added (the asker states the full identity).
        subject = UserInfo(name, spec.get("uid", ""), tuple(groups))
    attrs = _attributes(rt.kind, spec, subject)
    if rt.kind == "LocalSubjectAccessReview":
        if attrs.resource_request and attrs.namespace != namespace:
            raise _invalid(
                rt.kind,
                "spec.resourceAttributes.namespace",
                "must match metadata.namespace",
            )
    out["status"] = _access_status(authorize(attrs))
    return out


__all__ = ["REVIEWS", "answer"]
