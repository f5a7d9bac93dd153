"""May this user do this? Kubernetes RBAC over the stored Role / ClusterRole / RoleBinding /
ClusterRoleBinding objects (``rbac.authorization.k8s.io/v1``), with upstream's semantics:

- a rule matches a verb (``*`` any), an API group (``*`` any), a resource (``*`` any;
  ``pods/log`` a subresource, ``*/status`` that subresource of any resource; ``pods`` does not
  cover ``pods/log``), and, if it lists ``resourceNames``, the request's object name (so such
  a rule never grants ``list``, ``watch``, ``create`` or ``deletecollection``);
  ``nonResourceURLs`` match a path exactly or by a trailing ``*`` prefix;
- a ClusterRoleBinding grants its role everywhere; a RoleBinding grants its Role or
  ClusterRole in its own namespace only, and never non-resource URLs;
- subjects are Users, Groups, and ServiceAccounts (matched by the username
  ``system:serviceaccount:<ns>:<name>``).

The bootstrap policy every cluster has is built in rather than stored: ``cluster-admin`` bound
to the group ``system:masters``, and ``system:discovery``, ``system:basic-user`` and
``system:public-info-viewer`` bound to ``system:authenticated``. A stored object of the same
name replaces its built-in. Aggregated ClusterRoles (``aggregationRule``) are not aggregated.

:class:`RbacIndex` is pure: built from the objects, then answering by dictionary lookups
keyed by subject (no scan of every binding per request). :class:`StoreAuthorizer` keeps one
fresh by rebuilding it lazily after any change to an RBAC object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gpulab.kubesim.authn import MASTERS, Impersonation, UserInfo, service_account
from gpulab.kubesim.errors import ApiError
from gpulab.kubesim.store import ResourceType, Store, WatchEvent, resource

GROUP = "rbac.authorization.k8s.io"
KINDS = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")


@dataclass(frozen=True)
class Attributes:
    """What a request asks (authorizer.Attributes upstream)."""

    user: UserInfo
    verb: str
    resource_request: bool = True
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # non-resource requests

    @property
    def combined_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclass(frozen=True)
class Rule:
    verbs: frozenset[str]
    api_groups: frozenset[str] = frozenset()
    resources: frozenset[str] = frozenset()
    resource_names: frozenset[str] = frozenset()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, rule: dict[str, Any]) -> Rule:
        return cls(
            frozenset(rule.get("verbs") or ()),
            frozenset(rule.get("apiGroups") or ()),
            frozenset(rule.get("resources") or ()),
            frozenset(rule.get("resourceNames") or ()),
            tuple(rule.get("nonResourceURLs") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"verbs": sorted(self.verbs)}
        if self.non_resource_urls:
            out["nonResourceURLs"] = list(self.non_resource_urls)
            return out
        out["apiGroups"] = sorted(self.api_groups)
        out["resources"] = sorted(self.resources)
        if self.resource_names:
            out["resourceNames"] = sorted(self.resource_names)
        return out

    def allows(self, a: Attributes) -> bool:
        if "*" not in self.verbs and a.verb not in self.verbs:
            return False
        if not a.resource_request:
            return any(
                u == "*" or u == a.path or (u.endswith("*") and a.path.startswith(u[:-1]))
                for u in self.non_resource_urls
            )
        if "*" not in self.api_groups and a.api_group not in self.api_groups:
            return False
        combined = a.combined_resource
        if not any(
            r in ("*", combined) or (a.subresource and r == f"*/{a.subresource}")
            for r in self.resources
        ):
            return False
        return not self.resource_names or a.name in self.resource_names


@dataclass(frozen=True)
class Grant:
    """One binding's roleRef resolved: where it applies ("" = cluster-wide) and what it is."""

    namespace: str
    binding: str  # 'RoleBinding "x"' or 'ClusterRoleBinding "x"', for review reasons
    role: str
    subject: str
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def _cluster_role(name: str, rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": "ClusterRole", "metadata": {"name": name}, "rules": rules}


def _cluster_binding(name: str, role: str, groups: Iterable[str]) -> dict[str, Any]:
    return {
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "Group", "apiGroup": GROUP, "name": g} for g in groups],
    }


_PUBLIC_INFO = ["/healthz", "/livez", "/readyz", "/version", "/version/"]
BOOTSTRAP_CLUSTER_ROLES = [
    _cluster_role(
        "cluster-admin",
        [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ],
    ),
    _cluster_role(
        "system:discovery",
        [
            {
                "nonResourceURLs": [
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/openapi",
                    "/openapi/*",
                    *_PUBLIC_INFO,
                ],
                "verbs": ["get"],
            }
        ],
    ),
    _cluster_role(
        "system:basic-user",
        [
            {
                "apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                "verbs": ["create"],
            },
            {
                "apiGroups": ["authentication.k8s.io"],
                "resources": ["selfsubjectreviews"],
                "verbs": ["create"],
            },
        ],
    ),
    _cluster_role(
        "system:public-info-viewer", [{"nonResourceURLs": _PUBLIC_INFO, "verbs": ["get"]}]
    ),
]
BOOTSTRAP_CLUSTER_ROLE_BINDINGS = [
    _cluster_binding("cluster-admin", "cluster-admin", [MASTERS]),
    _cluster_binding("system:discovery", "system:discovery", ["system:authenticated"]),
    _cluster_binding("system:basic-user", "system:basic-user", ["system:authenticated"]),
    _cluster_binding(
        "system:public-info-viewer",
        "system:public-info-viewer",
        ["system:authenticated", "system:unauthenticated"],
    ),
]


def _subject_keys(user: UserInfo) -> list[tuple[str, str]]:
    keys = [("User", user.name)] + [("Group", g) for g in user.groups]
    if (sa := service_account(user.name)) is not None:
        keys.append(("ServiceAccount", f"{sa[0]}:{sa[1]}"))
    return keys


def _subject_key(subject: dict[str, Any], binding_ns: str) -> tuple[str, str] | None:
    kind, name = subject.get("kind"), subject.get("name") or ""
    if kind == "ServiceAccount":
        # Upstream defaults an empty subject namespace to the binding's only for RoleBindings.
        ns = subject.get("namespace") or binding_ns
        return ("ServiceAccount", f"{ns}:{name}") if ns and name else None
    if kind in ("User", "Group") and name:
        return (kind, name)
    return None


def _subject_text(key: tuple[str, str]) -> str:
    kind, name = key
    if kind == "ServiceAccount":
        ns, _, sa = name.partition(":")
        return f'ServiceAccount "{sa}/{ns}"'
    return f'{kind} "{name}"'


def _resource_covers(owner: str, requested: str) -> bool:
    if owner in ("*", requested):
        return True
    return owner.startswith("*/") and "/" in requested and requested.endswith(owner[1:])


def _url_covers(owner: str, requested: str) -> bool:
    return owner == requested or (owner.endswith("*") and requested.startswith(owner.rstrip("*")))


def _covers(owner: Rule, requested: Rule) -> bool:
    """Does ``owner`` grant everything ``requested`` does (validation.Covers upstream)?"""
    if "*" not in owner.verbs and not requested.verbs <= owner.verbs:
        return False
    if requested.non_resource_urls:
        return all(
            any(_url_covers(o, u) for o in owner.non_resource_urls)
            for u in requested.non_resource_urls
        )
    if "*" not in owner.api_groups and not requested.api_groups <= owner.api_groups:
        return False
    if not all(any(_resource_covers(o, r) for o in owner.resources) for r in requested.resources):
        return False
    return not owner.resource_names or (
        bool(requested.resource_names) and requested.resource_names <= owner.resource_names
    )


def _atoms(rule: Rule) -> list[Rule]:
    """A rule broken down into one verb (and one group, resource, name or URL) each."""
    verbs = sorted(rule.verbs)
    if rule.non_resource_urls:
        return [
            Rule(frozenset([v]), non_resource_urls=(u,))
            for v in verbs
            for u in rule.non_resource_urls
        ]
    names = sorted(rule.resource_names) or [None]
    return [
        Rule(frozenset([v]), frozenset([g]), frozenset([r]), frozenset([n]) if n else frozenset())
        for v in verbs
        for g in sorted(rule.api_groups)
        for r in sorted(rule.resources)
        for n in names
    ]


def not_held(held: list[Rule], wanted: Iterable[Rule]) -> list[Rule]:
    """The parts of ``wanted`` that no rule in ``held`` covers (empty: no escalation)."""
    return [a for w in wanted for a in _atoms(w) if not any(_covers(h, a) for h in held)]


def _compact(rule: Rule) -> str:
    """A rule as the apiserver prints it in an escalation error (CompactString)."""

    def quoted(values: Iterable[str]) -> str:
        return "[" + " ".join(f'"{v}"' for v in values) + "]"

    if rule.non_resource_urls:
        return f"{{NonResourceURLs:{quoted(rule.non_resource_urls)}, Verbs:{quoted(sorted(rule.verbs))}}}"
    parts = [
        f"APIGroups:{quoted(sorted(rule.api_groups))}",
        f"Resources:{quoted(sorted(rule.resources))}",
    ]
    if rule.resource_names:
        parts.append(f"ResourceNames:{quoted(sorted(rule.resource_names))}")
    parts.append(f"Verbs:{quoted(sorted(rule.verbs))}")
    return "{" + ", ".join(parts) + "}"


class RbacIndex:
    """The RBAC objects, indexed by subject. Build with :meth:`build`; then read-only."""

    def __init__(
        self,
        grants: dict[tuple[tuple[str, str], str], list[Grant]],
        roles: dict[tuple[str, str], tuple[Rule, ...]] | None = None,
        cluster_roles: dict[str, tuple[Rule, ...]] | None = None,
    ) -> None:
        self._grants = grants
        self._roles = roles or {}
        self._cluster_roles = cluster_roles or {}

    @classmethod
    def build(
        cls,
        roles: Iterable[dict[str, Any]] = (),
        cluster_roles: Iterable[dict[str, Any]] = (),
        role_bindings: Iterable[dict[str, Any]] = (),
        cluster_role_bindings: Iterable[dict[str, Any]] = (),
    ) -> RbacIndex:
        def rules_of(obj: dict[str, Any]) -> tuple[Rule, ...]:
            return tuple(Rule.from_json(r) for r in obj.get("rules") or () if isinstance(r, dict))

        role_rules = {
            (r["metadata"].get("namespace", ""), r["metadata"]["name"]): rules_of(r) for r in roles
        }
        cluster = {r["metadata"]["name"]: rules_of(r) for r in BOOTSTRAP_CLUSTER_ROLES}
        cluster.update({r["metadata"]["name"]: rules_of(r) for r in cluster_roles})
        bindings = {b["metadata"]["name"]: b for b in BOOTSTRAP_CLUSTER_ROLE_BINDINGS}
        bindings.update({b["metadata"]["name"]: b for b in cluster_role_bindings})

        # (subject, namespace of the binding or "") -> grants: a request looks up only its
        # subjects' cluster-wide grants and those in its namespace.
        grants: dict[tuple[tuple[str, str], str], list[Grant]] = {}

        def add(binding: dict[str, Any], namespace: str) -> None:
            ref = binding.get("roleRef") or {}
            kind, name = ref.get("kind"), ref.get("name", "")
            if kind == "ClusterRole":
                rules = cluster.get(name)
            elif kind == "Role" and namespace:
                rules = role_rules.get((namespace, name))
            else:
                rules = None
            if not rules:
                return  # a binding to a missing role grants nothing (upstream logs it)
            where = (
                f"{binding['metadata']['name']}/{namespace}"
                if namespace
                else binding["metadata"]["name"]
            )
            label = f'{"RoleBinding" if namespace else "ClusterRoleBinding"} "{where}" of {kind} "{name}"'
            for subject in binding.get("subjects") or ():
                key = _subject_key(subject, namespace) if isinstance(subject, dict) else None
                if key is not None:
                    grants.setdefault((key, namespace), []).append(
                        Grant(namespace, label, name, _subject_text(key), rules)
                    )

        for b in bindings.values():
            add(b, "")
        for b in role_bindings:
            add(b, b["metadata"].get("namespace", ""))
        return cls(grants, role_rules, cluster)

    def grants_for(self, user: UserInfo, namespace: str) -> list[Grant]:
        """The grants that apply to ``user`` for a request in ``namespace`` ("" = cluster)."""
        scopes = ("", namespace) if namespace else ("",)
        return [
            g
            for key in _subject_keys(user)
            for scope in scopes
            for g in self._grants.get((key, scope), ())
        ]

    def authorize(self, a: Attributes) -> Decision:
        if MASTERS in a.user.groups:
            return Decision(True)  # the privileged group, before RBAC as upstream
        namespace = a.namespace if a.resource_request else ""
        for grant in self.grants_for(a.user, namespace):
            if any(rule.allows(a) for rule in grant.rules):
                return Decision(True, f"RBAC: allowed by {grant.binding} to {grant.subject}")
        return Decision(False)

    def rules_for(self, user: UserInfo, namespace: str) -> list[Rule]:
        """Every rule that applies to ``user`` in ``namespace`` (SelfSubjectRulesReview)."""
        rules: list[Rule] = []
        if MASTERS in user.groups:
            rules += [Rule.from_json(r) for r in BOOTSTRAP_CLUSTER_ROLES[0]["rules"]]
        for grant in self.grants_for(user, namespace):
            rules += [r for r in grant.rules if r not in rules]
        return rules

    def escalation(
        self, user: UserInfo, kind: str, namespace: str, obj: dict[str, Any]
    ) -> list[Rule] | None:
        """What writing ``obj`` (a Role, ClusterRole or binding) would grant that ``user``
        does not hold; empty if allowed, ``None`` for a binding to a role that does not exist
        (it cannot be checked). As upstream, the ``escalate`` verb on the role, or ``bind`` on
        a binding's role, lifts the check."""
        if MASTERS in user.groups:
            return []
        name = (obj.get("metadata") or {}).get("name", "")
        if kind in ("Role", "ClusterRole"):
            lift = Attributes(
                user,
                "escalate",
                api_group=GROUP,
                resource=f"{kind.lower()}s",
                namespace=namespace,
                name=name,
            )
            wanted: tuple[Rule, ...] = tuple(
                Rule.from_json(r) for r in obj.get("rules") or () if isinstance(r, dict)
            )
        else:
            ref = obj.get("roleRef") or {}
            ref_kind, ref_name = ref.get("kind", ""), ref.get("name", "")
            lift = Attributes(
                user,
                "bind",
                api_group=GROUP,
                resource=f"{ref_kind.lower()}s",
                namespace=namespace,
                name=ref_name,
            )
            if ref_kind == "ClusterRole":
                found = self._cluster_roles.get(ref_name)
            else:
                found = self._roles.get((namespace, ref_name))
            if self.authorize(lift).allowed:
                return []
            if found is None:
                return None
            wanted = found
        if self.authorize(lift).allowed:
            return []
        return not_held(self.rules_for(user, namespace), wanted)


def escalation_forbidden(plural: str, name: str, user: UserInfo, missing: list[Rule]) -> ApiError:
    groups = " ".join(f'"{g}"' for g in user.groups)
    rules = "\n".join(_compact(r) for r in missing)
    return ApiError(
        403,
        "Forbidden",
        f'{plural}.{GROUP} "{name}" is forbidden: user "{user.name}" (groups=[{groups}]) is '
        f"attempting to grant RBAC permissions not currently held:\n{rules}",
        {"name": name, "group": GROUP, "kind": plural},
    )


def forbidden_message(a: Attributes) -> str:
    """The apiserver's wording of a denial (responsewriters.forbiddenMessage)."""
    if not a.resource_request:
        return f'User "{a.user.name}" cannot {a.verb} path "{a.path}"'
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return (
        f'User "{a.user.name}" cannot {a.verb} resource "{a.combined_resource}" '
        f'in API group "{a.api_group}" {where}'
    )


def forbidden(a: Attributes) -> ApiError:
    """The 403 of a denied request (apierrors.NewForbidden around :func:`forbidden_message`)."""
    if not a.resource_request:
        return ApiError(403, "Forbidden", f"forbidden: {forbidden_message(a)}", {})
    qualified = f"{a.resource}.{a.api_group}" if a.api_group else a.resource
    named = f' "{a.name}"' if a.name else ""
    details = {"name": a.name, "group": a.api_group, "kind": a.resource}
    return ApiError(
        403,
        "Forbidden",
        f"{qualified}{named} is forbidden: {forbidden_message(a)}",
        {k: v for k, v in details.items() if v},
    )


def impersonation_checks(caller: UserInfo, asked: Impersonation) -> list[Attributes]:
    """What ``caller`` must be allowed to impersonate ``asked``, one check per part."""
    if (sa := service_account(asked.user)) is not None:
        checks = [
            Attributes(
                caller, "impersonate", resource="serviceaccounts", namespace=sa[0], name=sa[1]
            )
        ]
    else:
        checks = [Attributes(caller, "impersonate", resource="users", name=asked.user)]
    checks += [Attributes(caller, "impersonate", resource="groups", name=g) for g in asked.groups]
    if asked.uid:
        checks.append(
            Attributes(
                caller,
                "impersonate",
                api_group="authentication.k8s.io",
                resource="uids",
                name=asked.uid,
            )
        )
    return checks


class StoreAuthorizer:
    """An :class:`RbacIndex` of the store's RBAC objects, rebuilt after they change."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._types: set[ResourceType] = {resource(k, GROUP) for k in KINDS}
        self._index: RbacIndex | None = None
        self._unsubscribe: Callable[[], None] = store.subscribe(self._on_change, read_only=True)

    def _on_change(self, rt: ResourceType, _event: WatchEvent) -> None:
        if rt in self._types:
            self._index = None

    @property
    def index(self) -> RbacIndex:
        if self._index is None:
            objects = {
                k: self._store.list(resource(k, GROUP), None, copy_objects=False)[0] for k in KINDS
            }
            self._index = RbacIndex.build(
                objects["roles"],
                objects["clusterroles"],
                objects["rolebindings"],
                objects["clusterrolebindings"],
            )
        return self._index

    def authorize(self, a: Attributes) -> Decision:
        return self.index.authorize(a)

    def close(self) -> None:
        self._unsubscribe()


__all__ = [
    "Attributes",
    "Decision",
    "RbacIndex",
    "Rule",
    "StoreAuthorizer",
    "escalation_forbidden",
    "forbidden",
    "forbidden_message",
    "impersonation_checks",
    "not_held",
]
