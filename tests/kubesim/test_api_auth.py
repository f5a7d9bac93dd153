"""kubesim with ``--token-auth-file``: bearer tokens, RBAC from the stored objects, the review
APIs, as a real API server answers them to kubectl.

One kubesim child for the module, with four identities: an admin (``system:masters``), alice
and bob (plain users), and the jobs gateway's identity (the hub's service account in
``gpulab``). Each gets its own kubeconfig holding its token.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import textwrap
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from gpulab.kubesim.authn import UNRESTRICTED, UserInfo
from gpulab.kubesim.launch import KubesimChild
from gpulab.kubesim.rbac import Attributes, RbacIndex, Rule, not_held
from gpulab.kubesim.tls import serving_cert
from kubesim_testlib import KubesimProcess

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_RBAC = ROOT / "helm-values" / "manifests" / "rbac-gateway.yaml"
GATEWAY_SA = "system:serviceaccount:gpulab:hub"
RBAC_GROUP = "rbac.authorization.k8s.io"
RBAC_V1 = f"{RBAC_GROUP}/v1"

TOKENS = {
    "admin": ("admin-token", "kube-admin", "uid-admin", "system:masters"),
    "alice": ("alice-token", "alice", "uid-alice", "team-a"),
    "bob": ("bob-token", "bob", "uid-bob", ""),
    "gateway": ("gateway-token", GATEWAY_SA, "uid-hub", ""),
}


@dataclass
class Cluster:
    child: KubesimChild
    folder: Path

    @property
    def tls(self) -> ssl.SSLContext:
        return serving_cert(self.child.data_dir / "tls").client_context()

    def kubeconfig(self, who: str) -> Path:
        path = self.folder / f"kubeconfig-{who}"
        if not path.exists():
            admin = yaml.safe_load(self.child.kubeconfig.read_text())
            config = {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": admin["clusters"],
                "users": [{"name": who, "user": {"token": TOKENS[who][0]}}],
                "contexts": [{"name": who, "context": {"cluster": "kubesim", "user": who}}],
                "current-context": who,
            }
            path.write_text(yaml.safe_dump(config))
        return path

    def kubectl(
        self, who: str, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig(who))}
        result = subprocess.run(
            ["kubectl", *args], env=env, input=input, capture_output=True, text=True, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} as {who} failed: {result.stderr}")
        return result

    def apply(self, manifest: str) -> None:
        self.kubectl("admin", "apply", "-f", "-", input=textwrap.dedent(manifest))

    def grant(self, name: str, rules: list[dict[str, Any]]) -> None:
        """Create the ClusterRole ``name`` (as YAML: kubectl's create clusterrole/rolebinding
        send protobuf, which kubesim does not decode)."""
        role = {"apiVersion": RBAC_V1, "kind": "ClusterRole", "metadata": {"name": name}}
        self.apply(yaml.safe_dump({**role, "rules": rules}))

    def bind(self, name: str, role: str, subject: dict[str, str], namespace: str = "") -> None:
        """Bind ClusterRole ``role`` to ``subject``: in ``namespace``, else cluster-wide."""
        metadata = {"name": name, **({"namespace": namespace} if namespace else {})}
        binding = {
            "apiVersion": RBAC_V1,
            "kind": "RoleBinding" if namespace else "ClusterRoleBinding",
            "metadata": metadata,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [
                {
                    **subject,
                    **({} if subject["kind"] == "ServiceAccount" else {"apiGroup": RBAC_GROUP}),
                }
            ],
        }
        self.apply(yaml.safe_dump(binding))

    def can_i(self, who: str, *args: str) -> bool:
        result = self.kubectl(who, "auth", "can-i", *args, check=False)
        answer = result.stdout.strip().split()[0] if result.stdout.strip() else ""
        assert answer in ("yes", "no"), result.stderr
        return answer == "yes"

    def http(
        self, method: str, path: str, who: str | None = None, body: Any = None
    ) -> tuple[int, dict[str, Any]]:
        headers = {"Content-Type": "application/json"}
        if who is not None:
            headers["Authorization"] = f"Bearer {TOKENS[who][0]}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.child.url + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.tls) as resp:  # noqa: S310 - loopback
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    folder = tmp_path_factory.mktemp("kubesim-auth")
    token_file = folder / "tokens.csv"
    token_file.write_text(
        "".join(
            f'{token},{user},{uid},"{groups}"\n' for token, user, uid, groups in TOKENS.values()
        )
    )
    child = KubesimProcess.start(folder, token_auth_file=token_file)
    c = Cluster(child, folder)
    try:
        for ns in ("team-a", "team-b", "gpulab"):
            c.kubectl("admin", "create", "namespace", ns)
        c.apply(
            """
            apiVersion: rbac.authorization.k8s.io/v1
            kind: Role
            metadata: {name: pod-reader, namespace: team-a}
            rules:
              - {apiGroups: [""], resources: [pods], verbs: [get, list]}
              - {apiGroups: [""], resources: [pods/log], verbs: [get]}
              - {apiGroups: [""], resources: [configmaps], verbs: [get], resourceNames: [open]}
            ---
            apiVersion: rbac.authorization.k8s.io/v1
            kind: RoleBinding
            metadata: {name: alice-reads-pods, namespace: team-a}
            roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
            subjects: [{kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}]
            """
        )
        c.kubectl("admin", "apply", "-f", str(GATEWAY_RBAC))
        yield c
    finally:
        child.stop()


# -- authentication -------------------------------------------------------------------------


def test_a_request_without_a_valid_token_is_401_unauthorized(cluster: Cluster) -> None:
    for who in (None, "nobody"):
        headers = {} if who is None else {"Authorization": "Bearer not-a-token"}
        req = urllib.request.Request(cluster.child.url + "/api/v1/namespaces", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10, context=cluster.tls)  # noqa: S310 - loopback
        assert e.value.code == 401
        body = json.loads(e.value.read())
        assert body["kind"] == "Status" and body["reason"] == "Unauthorized"
    # The probes stay open; discovery and kubesim's own endpoints need a token.
    assert cluster.http("GET", "/version")[0] == 200
    assert cluster.http("GET", "/kubesim/faults")[0] == 401
    assert cluster.http("GET", "/apis")[0] == 401
    result = cluster.kubectl("bob", "get", "pods", "-n", "team-a", check=False)
    assert result.returncode != 0


def test_discovery_is_open_to_every_authenticated_user_and_other_paths_are_not(
    cluster: Cluster,
) -> None:
    assert cluster.http("GET", "/apis", "bob")[0] == 200
    assert "pods" in cluster.kubectl("bob", "api-resources").stdout
    code, body = cluster.http("GET", "/metrics", "bob")
    assert code == 403
    assert body["message"] == 'forbidden: User "bob" cannot get path "/metrics"'


def test_whoami_shows_user_uid_and_groups(cluster: Cluster) -> None:
    out = json.loads(cluster.kubectl("alice", "auth", "whoami", "-o", "json").stdout)
    assert out["kind"] == "SelfSubjectReview"
    assert out["status"]["userInfo"] == {
        "username": "alice",
        "uid": "uid-alice",
        "groups": ["team-a", "system:authenticated"],
    }
    table = cluster.kubectl("alice", "auth", "whoami").stdout
    assert "alice" in table and "team-a" in table


def test_a_service_account_token_carries_the_service_account_groups(cluster: Cluster) -> None:
    out = json.loads(cluster.kubectl("gateway", "auth", "whoami", "-o", "json").stdout)
    assert out["status"]["userInfo"]["username"] == GATEWAY_SA
    assert out["status"]["userInfo"]["groups"] == [
        "system:serviceaccounts",
        "system:serviceaccounts:gpulab",
        "system:authenticated",
    ]


# -- authorization --------------------------------------------------------------------------


def test_a_rolebinding_grants_its_role_in_its_namespace_only(cluster: Cluster) -> None:
    assert cluster.kubectl("alice", "get", "pods", "-n", "team-a").returncode == 0
    code, body = cluster.http("GET", "/api/v1/namespaces/team-b/pods", "alice")
    assert code == 403
    assert body["reason"] == "Forbidden"
    assert body["message"] == (
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
        'in the namespace "team-b"'
    )
    assert body["details"] == {"kind": "pods"}
    result = cluster.kubectl("alice", "get", "pods", "-A", check=False)
    assert 'cannot list resource "pods" in API group "" at the cluster scope' in result.stderr


def test_a_missing_rule_is_403_with_the_upstream_message(cluster: Cluster) -> None:
    code, body = cluster.http("DELETE", "/api/v1/namespaces/team-a/pods/web", "alice")
    assert code == 403
    assert body["message"] == (
        'pods "web" is forbidden: User "alice" cannot delete resource "pods" in API group "" '
        'in the namespace "team-a"'
    )
    # ?watch= is the watch verb, which the Role does not list.
    code, body = cluster.http("GET", "/api/v1/namespaces/team-a/pods?watch=true", "alice")
    assert code == 403 and 'cannot watch resource "pods"' in body["message"]
    code, body = cluster.http("GET", "/apis/batch/v1/namespaces/team-a/jobs", "alice")
    assert code == 403 and body["message"].startswith("jobs.batch is forbidden: ")
    assert 'in API group "batch"' in body["message"]


def test_subresources_and_resource_names_match_as_upstream(cluster: Cluster) -> None:
    assert cluster.can_i("alice", "get", "pods", "--subresource=log", "-n", "team-a")
    assert not cluster.can_i("alice", "get", "pods", "--subresource=status", "-n", "team-a")
    assert cluster.can_i("alice", "get", "configmaps/open", "-n", "team-a")
    assert not cluster.can_i("alice", "get", "configmaps/other", "-n", "team-a")
    assert not cluster.can_i("alice", "list", "configmaps", "-n", "team-a")


def test_can_i_answers_per_identity(cluster: Cluster) -> None:
    assert cluster.can_i("alice", "list", "pods", "-n", "team-a")
    assert not cluster.can_i("alice", "list", "pods", "-n", "team-b")
    assert not cluster.can_i("bob", "list", "pods", "-n", "team-a")
    assert cluster.can_i("admin", "delete", "nodes")
    assert cluster.can_i("admin", "get", "/anything", "--all-namespaces")
    listed = cluster.kubectl("alice", "auth", "can-i", "--list", "-n", "team-a").stdout
    assert "pods/log" in listed and "selfsubjectreviews.authentication.k8s.io" in listed


def test_a_clusterrole_through_a_rolebinding_grants_in_that_namespace_only(
    cluster: Cluster,
) -> None:
    cluster.grant(
        "secret-reader", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]
    )
    cluster.bind("bob-secrets", "secret-reader", {"kind": "User", "name": "bob"}, "team-b")
    assert cluster.can_i("bob", "list", "secrets", "-n", "team-b")
    assert not cluster.can_i("bob", "list", "secrets", "-n", "team-a")
    assert not cluster.can_i("bob", "list", "secrets", "--all-namespaces")
    # A change of the bindings takes effect on the next request.
    cluster.kubectl("admin", "delete", "rolebinding", "bob-secrets", "-n", "team-b")
    assert not cluster.can_i("bob", "list", "secrets", "-n", "team-b")


def test_group_and_service_account_subjects(cluster: Cluster) -> None:
    cluster.grant("node-viewer", [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}])
    cluster.bind(
        "sas-view-nodes", "node-viewer", {"kind": "Group", "name": "system:serviceaccounts:gpulab"}
    )
    cluster.bind("team-a-views-nodes", "node-viewer", {"kind": "Group", "name": "team-a"})
    # A ServiceAccount subject without a namespace takes its RoleBinding's: here team-b's,
    # so not the gateway's (hub in gpulab).
    cluster.grant(
        "cm-reader", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]
    )
    cluster.bind("hub-reads-cm", "cm-reader", {"kind": "ServiceAccount", "name": "hub"}, "team-b")
    assert not cluster.can_i("gateway", "list", "configmaps", "-n", "team-b")
    sa = {"kind": "ServiceAccount", "name": "hub", "namespace": "gpulab"}
    cluster.bind("gpulab-hub-reads-cm", "cm-reader", sa, "team-b")
    assert cluster.can_i("gateway", "list", "configmaps", "-n", "team-b")
    assert not cluster.can_i("gateway", "list", "configmaps", "-n", "team-a")
    assert cluster.can_i("gateway", "list", "nodes")
    assert not cluster.can_i("gateway", "get", "nodes")
    assert cluster.can_i("alice", "list", "nodes")
    assert not cluster.can_i("bob", "list", "nodes")
    assert cluster.kubectl("gateway", "get", "nodes").returncode == 0


def _gateway_grants() -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) granted by the gateway's Role: it uses no wildcards or
    resourceNames, so its grants are the plain product of each rule's lists."""
    for doc in yaml.safe_load_all(GATEWAY_RBAC.read_text()):
        if doc["kind"] == "Role":
            return {
                (g, r, v)
                for rule in doc["rules"]
                for g in rule["apiGroups"]
                for r in rule["resources"]
                for v in rule["verbs"]
            }
    raise LookupError("no Role in rbac-gateway.yaml")


def test_the_gateway_role_grants_exactly_what_it_says(cluster: Cluster) -> None:
    grants = _gateway_grants()
    verbs = ("get", "list", "watch", "create", "update", "patch", "delete", "deletecollection")
    resources = [
        ("batch", "jobs", ""),
        ("", "pods", ""),
        ("", "pods", "log"),
        ("", "pods", "status"),
        ("", "secrets", ""),
        ("", "persistentvolumeclaims", ""),
        ("", "configmaps", ""),
        ("", "events", ""),
    ]
    wrong = []
    for group, res, sub in resources:
        for verb in verbs:
            for ns in ("gpulab", "team-a"):
                spec = {"verb": verb, "group": group, "resource": res, "namespace": ns}
                if sub:
                    spec["subresource"] = sub
                _, review = cluster.http(
                    "POST",
                    "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                    "gateway",
                    {"spec": {"resourceAttributes": spec}},
                )
                combined = f"{res}/{sub}" if sub else res
                expected = ns == "gpulab" and (group, combined, verb) in grants
                if review["status"]["allowed"] != expected:
                    wrong.append((ns, group, combined, verb, review["status"]))
    assert wrong == []
    # And kubectl, acting: it creates a job in gpulab, and may not delete a secret there.
    assert cluster.can_i("gateway", "create", "jobs", "-n", "gpulab")
    assert not cluster.can_i("gateway", "delete", "secrets", "-n", "gpulab")
    cluster.kubectl("gateway", "create", "job", "probe", "--image=busybox:1.36", "-n", "gpulab")
    cluster.kubectl("admin", "create", "secret", "generic", "s3", "-n", "gpulab")
    result = cluster.kubectl("gateway", "delete", "secret", "s3", "-n", "gpulab", check=False)
    assert result.returncode != 0
    assert (
        f'secrets "s3" is forbidden: User "{GATEWAY_SA}" cannot delete resource "secrets" '
        'in API group "" in the namespace "gpulab"'
    ) in result.stderr


def test_roles_and_bindings_grant_only_what_their_writer_holds(cluster: Cluster) -> None:
    writer = [
        {
            "apiGroups": [RBAC_GROUP],
            "resources": ["roles", "rolebindings"],
            "verbs": ["create", "update", "patch"],
        }
    ]
    cluster.grant("rbac-writer", writer)
    cluster.bind("alice-writes-rbac", "rbac-writer", {"kind": "User", "name": "alice"}, "team-a")

    def role(name: str, resource: str) -> dict[str, Any]:
        rules = [{"apiGroups": [""], "resources": [resource], "verbs": ["get"]}]
        return {"metadata": {"name": name}, "rules": rules}

    def binding(name: str, kind: str, role: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": kind, "name": role},
            "subjects": [{"kind": "User", "name": "bob", "apiGroup": RBAC_GROUP}],
        }

    base = "/apis/rbac.authorization.k8s.io/v1/namespaces/team-a"
    assert cluster.http("POST", f"{base}/roles", "alice", role("pods-too", "pods"))[0] == 201
    code, body = cluster.http("POST", f"{base}/roles", "alice", role("secrets-too", "secrets"))
    assert code == 403
    assert body["message"] == (
        'roles.rbac.authorization.k8s.io "secrets-too" is forbidden: user "alice" '
        '(groups=["team-a" "system:authenticated"]) is attempting to grant RBAC permissions '
        'not currently held:\n{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}'
    )
    ok = binding("bob-pods", "Role", "pod-reader")
    assert cluster.http("POST", f"{base}/rolebindings", "alice", ok)[0] == 201
    admin = binding("bob-admin", "ClusterRole", "cluster-admin")
    code, body = cluster.http("POST", f"{base}/rolebindings", "alice", admin)
    assert (
        code == 403 and "attempting to grant RBAC permissions not currently held" in body["message"]
    )
    # The bind verb on that role lifts the check, as upstream.
    bind = [
        {
            "apiGroups": [RBAC_GROUP],
            "resources": ["clusterroles"],
            "verbs": ["bind"],
            "resourceNames": ["cluster-admin"],
        }
    ]
    cluster.grant("may-bind-admin", bind)
    cluster.bind("alice-binds-admin", "may-bind-admin", {"kind": "User", "name": "alice"}, "team-a")
    assert cluster.http("POST", f"{base}/rolebindings", "alice", admin)[0] == 201
    assert cluster.can_i("bob", "delete", "secrets", "-n", "team-a")
    assert not cluster.can_i("bob", "delete", "secrets", "-n", "team-b")


def test_subject_access_review_is_for_those_allowed_to_create_it(cluster: Cluster) -> None:
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": "alice",
            "groups": ["team-a"],
            "resourceAttributes": {"verb": "list", "resource": "pods", "namespace": "team-a"},
        },
    }
    path = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    code, body = cluster.http("POST", path, "admin", review)
    assert code == 201 and body["status"]["allowed"] is True
    assert body["status"]["reason"] == (
        'RBAC: allowed by RoleBinding "alice-reads-pods/team-a" of Role "pod-reader" '
        'to User "alice"'
    )
    code, body = cluster.http("POST", path, "alice", review)
    assert code == 403 and 'cannot create resource "subjectaccessreviews"' in body["message"]


def test_impersonation_needs_the_impersonate_verb(cluster: Cluster) -> None:
    assert cluster.can_i("admin", "list", "pods", "-n", "team-a", "--as", "alice")
    assert not cluster.can_i("admin", "list", "pods", "-n", "team-b", "--as", "alice")
    out = json.loads(
        cluster.kubectl(
            "admin", "auth", "whoami", "-o", "json", "--as", "carol", "--as-group", "g1"
        ).stdout
    )
    assert out["status"]["userInfo"]["groups"] == ["g1", "system:authenticated"]
    result = cluster.kubectl("alice", "get", "pods", "-n", "team-a", "--as", "bob", check=False)
    assert result.returncode != 0
    assert (
        'users "bob" is forbidden: User "alice" cannot impersonate resource "users" '
        'in API group "" at the cluster scope'
    ) in result.stderr


# -- without a token file: nothing changes ----------------------------------------------------


def test_without_a_token_file_everyone_is_an_unrestricted_admin(kubesim: KubesimProcess) -> None:
    out = json.loads(kubesim.kubectl("auth", "whoami", "-o", "json").stdout)
    assert out["status"]["userInfo"]["username"] == UNRESTRICTED.name
    assert kubesim.kubectl("auth", "can-i", "delete", "nodes").stdout.strip() == "yes"


# -- the authorizer alone -------------------------------------------------------------------


def _rule_index(rules: list[dict[str, Any]], subject: dict[str, Any]) -> RbacIndex:
    return RbacIndex.build(
        cluster_roles=[{"metadata": {"name": "r"}, "rules": rules}],
        cluster_role_bindings=[
            {
                "metadata": {"name": "b"},
                "roleRef": {"kind": "ClusterRole", "name": "r"},
                "subjects": [subject],
            }
        ],
    )


def test_wildcards_match_as_upstream() -> None:
    alice = UserInfo("alice", groups=("system:authenticated",))
    index = _rule_index(
        [
            {"apiGroups": ["*"], "resources": ["*/status"], "verbs": ["update"]},
            {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]},
            {"nonResourceURLs": ["/logs/*"], "verbs": ["get"]},
        ],
        {"kind": "User", "name": "alice"},
    )

    def allowed(**kw: Any) -> bool:
        return index.authorize(Attributes(alice, **kw)).allowed

    assert allowed(verb="update", api_group="batch", resource="jobs", subresource="status")
    assert not allowed(verb="update", api_group="batch", resource="jobs")
    # "*" covers subresources too (upstream's ResourceMatches).
    assert allowed(verb="get", resource="pods", subresource="log")
    assert not allowed(verb="get", api_group="batch", resource="jobs")
    assert allowed(verb="get", resource_request=False, path="/logs/kubelet.log")
    assert not allowed(verb="get", resource_request=False, path="/log")


def test_a_service_account_subject_matches_its_username_only() -> None:
    index = _rule_index(
        [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}],
        {"kind": "ServiceAccount", "name": "hub", "namespace": "gpulab"},
    )
    pods = {"verb": "list", "resource": "pods", "namespace": "x"}
    hub = UserInfo(GATEWAY_SA, groups=("system:serviceaccounts",))
    other = UserInfo("system:serviceaccount:other:hub", groups=("system:serviceaccounts",))
    assert index.authorize(Attributes(hub, **pods)).allowed
    assert not index.authorize(Attributes(other, **pods)).allowed
    assert not index.authorize(Attributes(UserInfo("hub"), **pods)).allowed


def test_escalation_check_breaks_rules_down_as_upstream() -> None:
    def rule(**kw: Any) -> Rule:
        return Rule.from_json(kw)

    held = [
        rule(apiGroups=[""], resources=["*"], verbs=["get", "list"]),
        rule(apiGroups=["batch"], resources=["jobs"], verbs=["*"], resourceNames=["a"]),
        rule(nonResourceURLs=["/logs/*"], verbs=["get"]),
    ]
    assert (
        not_held(held, [rule(apiGroups=[""], resources=["pods", "pods/log"], verbs=["get"])]) == []
    )
    assert not_held(held, [rule(nonResourceURLs=["/logs/x"], verbs=["get"])]) == []
    assert (
        not_held(
            held,
            [rule(apiGroups=["batch"], resources=["jobs"], verbs=["delete"], resourceNames=["a"])],
        )
        == []
    )
    # A wildcard is held only as a wildcard; names restrict; each missing part is named.
    assert not_held(held, [rule(apiGroups=[""], resources=["pods"], verbs=["*"])]) != []
    assert not_held(held, [rule(apiGroups=["batch"], resources=["jobs"], verbs=["get"])]) != []
    missing = not_held(held, [rule(apiGroups=[""], resources=["pods"], verbs=["get", "delete"])])
    assert missing == [rule(apiGroups=[""], resources=["pods"], verbs=["delete"])]


def test_kubesims_admin_endpoints_are_for_cluster_admins_only(cluster: Cluster) -> None:
    assert cluster.http("POST", "/kubesim/faults", "alice", {"latency": 1})[0] == 403
    assert cluster.http("GET", "/kubesim/faults", "admin")[0] == 200
