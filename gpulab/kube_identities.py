"""Who talks to the local platform's kubesim, with which token, and with which rights.

The local platform runs kubesim with a token file, as a real cluster authenticates: one bearer
token per client (the launcher as a cluster admin, the hub, the jobs gateway, the culler) and
none for user pods. Each client gets its own kubeconfig (owner-only, with kubesim's CA). What
each may do comes from the RBAC objects of ``helm-values/manifests/rbac-*.yaml``, the ones a
real installation applies, so a rule missing there makes the local platform (and the tests)
fail as a cluster would.

Two adaptations, both made when the manifests are rendered here (the files stay the one
source of truth):

- the manifests' namespace ``gpulab`` becomes the platform's (``default``);
- in a real installation the hub, the gateway and the culler run in the hub pod as one
  ServiceAccount (``hub``), which holds the union of the three Roles. Locally each runs as its
  own ServiceAccount, bound only by the manifests of its component
  (``app.kubernetes.io/component``), so each Role is checked on its own.

The builders here are pure; :mod:`gpulab.platform` does the file and HTTP work.
"""

from __future__ import annotations

import copy
import csv
import io
import secrets
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from gpulab.hub.workload.labels import COMPONENT_LABEL

NAMESPACE = "default"
# The namespace every file in helm-values/manifests names.
MANIFEST_NAMESPACE = "gpulab"
MANIFEST_FILES = ("namespace.yaml", "rbac-hub.yaml", "rbac-gateway.yaml", "rbac-culler.yaml")
RBAC_GROUP = "rbac.authorization.k8s.io"
MASTERS = "system:masters"


@dataclass(frozen=True)
class Identity:
    """One client of kubesim: ``key`` names its token and kubeconfig files."""

    key: str
    username: str
    groups: tuple[str, ...] = ()
    # The app.kubernetes.io/component of the manifests whose bindings name this identity.
    component: str | None = None

    @property
    def service_account(self) -> str | None:
        prefix = f"system:serviceaccount:{NAMESPACE}:"
        return self.username.removeprefix(prefix) if self.username.startswith(prefix) else None


def _sa(name: str) -> str:
    return f"system:serviceaccount:{NAMESPACE}:{name}"


# First: kubesim writes the first system:masters token into its own kubeconfig.
ADMIN = Identity("admin", "gpulab-launcher", (MASTERS,))
HUB = Identity("hub", _sa("hub"), component="hub")
GATEWAY = Identity("jobs-gateway", _sa("gpulab-jobs-gateway"), component="jobs-gateway")
CULLER = Identity("culler", _sa("gpulab-culler"), component="culler")
IDENTITIES = (ADMIN, HUB, GATEWAY, CULLER)

# The Role the Zero to JupyterHub chart gives its hub ServiceAccount in production
# (templates/hub/rbac.yaml): what KubeSpawner needs. The chart is not installed locally, so
# the platform makes this one Role itself; gpulab's own additions are in rbac-hub.yaml.
CHART_HUB_ROLE_NAME = "hub"
CHART_HUB_ROLE_RULES: list[dict[str, Any]] = [
    {
        "apiGroups": [""],
        "resources": ["pods", "persistentvolumeclaims", "secrets", "services"],
        "verbs": ["get", "watch", "list", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "watch", "list"]},
]


def manifests_dir() -> Path | None:
    """``helm-values/manifests``: the checkout's, else the copy an installed wheel ships in
    ``{sys.prefix}/share/gpulab/manifests``."""
    for folder in (
        Path(__file__).resolve().parent.parent / "helm-values" / "manifests",
        Path(sys.prefix) / "share" / "gpulab" / "manifests",
    ):
        if all((folder / name).is_file() for name in MANIFEST_FILES):
            return folder
    return None


# ------------------------------------------------------------------------------ tokens
def token_file_text(tokens: dict[str, str]) -> str:
    """kubesim's ``--token-auth-file``: ``token,user,uid,"groups"``; the uid is the key."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    for identity in IDENTITIES:
        writer.writerow(
            [tokens[identity.key], identity.username, identity.key, ",".join(identity.groups)]
        )
    return out.getvalue()


def read_tokens(text: str) -> dict[str, str]:
    """Tokens by identity key from a token file this module wrote (kept across restarts, so
    that kubeconfigs handed out earlier stay valid)."""
    known = {i.key for i in IDENTITIES}
    return {
        row[2]: row[0]
        for row in csv.reader(io.StringIO(text))
        if len(row) >= 3 and row[2] in known and row[0]
    }


def complete_tokens(tokens: dict[str, str]) -> dict[str, str]:
    """``tokens`` with a fresh one for every identity that has none."""
    return {i.key: tokens.get(i.key) or secrets.token_urlsafe(32) for i in IDENTITIES}


def kubeconfig_for(admin_kubeconfig: dict[str, Any], token: str) -> dict[str, Any]:
    """The admin kubeconfig kubesim wrote (server, CA) with another identity's token."""
    out = copy.deepcopy(admin_kubeconfig)
    for user in out.get("users") or ():
        user["user"] = {"token": token}
    return out


# ------------------------------------------------------------------------------ RBAC
def _component(doc: dict[str, Any]) -> str | None:
    return ((doc.get("metadata") or {}).get("labels") or {}).get(COMPONENT_LABEL)


def _identity_of(component: str | None) -> Identity | None:
    return next((i for i in IDENTITIES if i.component and i.component == component), None)


def render_manifest(doc: dict[str, Any], namespace: str = NAMESPACE) -> dict[str, Any]:
    """One manifest as the local platform applies it: in ``namespace``, and a binding's
    ServiceAccount subjects replaced by its component's own identity."""
    out = copy.deepcopy(doc)
    md = out.setdefault("metadata", {})
    if out.get("kind") == "Namespace":
        md["name"] = namespace
    elif md.get("namespace") == MANIFEST_NAMESPACE:
        md["namespace"] = namespace
    if out.get("kind") in ("RoleBinding", "ClusterRoleBinding"):
        identity = _identity_of(_component(doc))
        subjects = []
        for subject in out.get("subjects") or ():
            if subject.get("kind") == "ServiceAccount" and identity is not None:
                subject = {
                    "kind": "ServiceAccount",
                    "name": identity.service_account,
                    "namespace": namespace,
                }
            elif subject.get("namespace") == MANIFEST_NAMESPACE:
                subject = {**subject, "namespace": namespace}
            subjects.append(subject)
        out["subjects"] = subjects
    return out


def chart_hub_rbac(namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The chart's hub Role and its binding to the local hub identity."""
    md = {"name": CHART_HUB_ROLE_NAME, "namespace": namespace}
    return [
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "Role",
            "metadata": md,
            "rules": CHART_HUB_ROLE_RULES,
        },
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "RoleBinding",
            "metadata": md,
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": CHART_HUB_ROLE_NAME},
            "subjects": [
                {"kind": "ServiceAccount", "name": HUB.service_account, "namespace": namespace}
            ],
        },
    ]


def service_accounts(namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """The ServiceAccount objects of the local identities, as a cluster would list them."""
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": i.service_account, "namespace": namespace},
            "automountServiceAccountToken": False,
        }
        for i in IDENTITIES
        if i.service_account
    ]


def local_objects(manifest_texts: Iterable[str], namespace: str = NAMESPACE) -> list[dict]:
    """Everything the platform applies, in order: the namespace, ServiceAccounts, the chart's
    hub Role, then the manifests' RBAC objects."""
    docs = [
        render_manifest(doc, namespace)
        for text in manifest_texts
        for doc in yaml.safe_load_all(text)
        if isinstance(doc, dict)
    ]
    ns_docs = [d for d in docs if d.get("kind") == "Namespace"]
    rest = [d for d in docs if d.get("kind") != "Namespace"]
    return ns_docs + service_accounts(namespace) + chart_hub_rbac(namespace) + rest


__all__ = [
    "ADMIN",
    "CHART_HUB_ROLE_RULES",
    "CULLER",
    "GATEWAY",
    "HUB",
    "IDENTITIES",
    "NAMESPACE",
    "Identity",
    "complete_tokens",
    "kubeconfig_for",
    "local_objects",
    "manifests_dir",
    "read_tokens",
    "render_manifest",
    "token_file_text",
]
