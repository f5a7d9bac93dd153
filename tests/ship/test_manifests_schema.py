"""helm-values/manifests/*.yaml: strict Kubernetes OpenAPI schemas (1.29-1.33), structural
schemas for the CRD kinds, semantic rules, cross-references, and the gateway's RBAC."""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ship.k8s_schema import (
    SUPPORTED_VERSIONS,
    K8sObjectError,
    is_crd_kind,
    object_problems,
    validate_object,
)
from tests.ship.rbac import ApiCall, Permission, load_audit, load_role_rules, rules_cover

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "helm-values" / "manifests"
NAMESPACE = "gpulab"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


DOCS = _documents()


def _id(item: tuple[str, dict[str, Any]]) -> str:
    name, doc = item
    return f"{name}:{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def _find(kind: str, name: str) -> dict[str, Any]:
    for _, doc in DOCS:
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise LookupError(f"no {kind} {name} in {MANIFESTS}")


def _policy() -> dict[str, Any]:
    return yaml.safe_load(_find("ConfigMap", "gpulab-policy")["data"]["policy.yaml"])


# ----------------------------------------------------------------------------- schemas


def test_manifests_exist() -> None:
    files = {p.name for p in MANIFESTS.glob("*.yaml")}
    assert {
        "rbac-gateway.yaml",
        "rbac-culler.yaml",
        "storageclass-cephfs.yaml",
        "datasets.yaml",
        "snapshots.yaml",
        "networkpolicies.yaml",
        "kueue.yaml",
        "policy-configmap.yaml",
        "limits.yaml",
    } <= files


@pytest.mark.parametrize("item", DOCS, ids=_id)
def test_manifest_validates(item: tuple[str, dict[str, Any]]) -> None:
    """Core kinds: strict schema of every supported version; CRD kinds: our structural
    schema (tests/ship/k8s_schema.py CRD_SCHEMAS). Both: names, labels, namespaces."""
    _, doc = item
    validate_object(doc, SUPPORTED_VERSIONS, require_namespace=True)


def test_namespaced_objects_live_in_gpulab() -> None:
    for name, doc in DOCS:
        ns = doc["metadata"].get("namespace")
        assert ns in (None, NAMESPACE), f"{name}: {doc['kind']} in namespace {ns}"


def test_names_are_unique() -> None:
    seen: set[tuple[str, str | None, str]] = set()
    for name, doc in DOCS:
        key = (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
        assert key not in seen, f"{name}: {key} defined twice"
        seen.add(key)


def test_crd_kinds_are_checked_structurally() -> None:
    crds = {doc["kind"] for _, doc in DOCS if is_crd_kind(doc)}
    assert crds == {
        "VolumeSnapshotClass",
        "ResourceFlavor",
        "ClusterQueue",
        "Cohort",
        "WorkloadPriorityClass",
    }


VALID_CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "ok", "namespace": "gpulab", "labels": {"a.b/c": "d"}},
    "data": {"k": "v"},
}


@pytest.mark.parametrize(
    "patch, expect",
    [
        ({"data": {"k": 1}}, "1 is not of type"),  # schema type
        ({"metadata": {"name": "ok", "nmespace": "x"}}, "nmespace"),  # strict: unknown field
        ({"spec": {}}, "spec"),  # strict: unknown top-level field
        ({"metadata": {"name": "Not_A_Name"}}, "DNS-1123"),  # semantic
        ({"metadata": {"name": "ok", "labels": {"bad key!": "x"}}}, "bad key!"),
        ({"metadata": {"name": "ok", "labels": {"k": "-starts-with-dash"}}}, "-starts-with-dash"),
        ({"metadata": {"name": "ok", "labels": {"k": "x" * 64}}}, "1-63"),
        ({"apiVersion": "v2"}, "no schema"),
    ],
)
def test_broken_manifest_fails(patch: dict[str, Any], expect: str) -> None:
    obj = {**copy.deepcopy(VALID_CONFIGMAP), **patch}
    assert object_problems(VALID_CONFIGMAP) == []
    with pytest.raises(K8sObjectError) as info:
        validate_object(obj)
    assert expect in str(info.value)


def test_broken_role_and_job_fail_on_every_version() -> None:
    role = copy.deepcopy(_find("Role", "gpulab-jobs-gateway"))
    role["rules"][0]["verbs"] = "create"  # a string, not a list
    problems = object_problems(role)
    assert len(problems) == 1 and problems[0].startswith(",".join(SUPPORTED_VERSIONS))
    cron = copy.deepcopy(_find("CronJob", "gpulab-home-snapshots"))
    cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["imagePull"] = "x"
    assert any("imagePull" in p for p in object_problems(cron))
    cron = copy.deepcopy(_find("CronJob", "gpulab-home-snapshots"))
    cron["metadata"]["name"] = "a" * 53  # Jobs get an 11-character suffix
    assert any("at most 52" in p for p in object_problems(cron))


def test_broken_crd_fails() -> None:
    cq = copy.deepcopy(_find("ClusterQueue", "gpulab-vision--borrow"))
    cq["spec"]["resourceGroups"][1]["flavors"][0]["resources"][0]["name"] = "amd.com/gpu"
    assert any("coveredResources" in p for p in object_problems(cq))
    cq["spec"]["resourcegroups"] = cq["spec"].pop("resourceGroups")
    assert any("resourcegroups" in p for p in object_problems(cq))
    vsc = copy.deepcopy(_find("VolumeSnapshotClass", "ceph-snapshots"))
    vsc["deletionPolicy"] = "Keep"
    assert any("deletionPolicy" in p for p in object_problems(vsc))


def test_generated_style_objects_validate() -> None:
    """validate_object on the kind of objects gpulab generates (a pod, a Job, a Secret)."""
    labels = {
        "app.kubernetes.io/name": "gpulab",
        "app.kubernetes.io/managed-by": "gpulab",
        "app.kubernetes.io/component": "job",
        "gpulab.io/user": "alice",
        "gpulab.io/job-id": "j-3f9a",
    }
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "gpulab-job-j-3f9a-upload", "namespace": "gpulab", "labels": labels},
        "type": "Opaque",
        "stringData": {"AWS_ACCESS_KEY_ID": "x"},
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "gpulab-job-j-3f9a", "namespace": "gpulab", "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": 3600,
            "ttlSecondsAfterFinished": 86400,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "fsGroup": 100,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": "job",
                            "image": "harbor.example.org/shared/pytorch:2.4-cuda12.4",
                            "command": ["gpulab-job-runner", "--", "python", "train.py"],
                            "resources": {"limits": {"nvidia.com/gpu": 1}},
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                        }
                    ],
                },
            },
        },
    }
    validate_object(secret)
    validate_object(job)
    job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = []
    with pytest.raises(K8sObjectError):
        validate_object(job, versions=("1.31",))


# ----------------------------------------------------------------------------- coherence


def test_policy_agrees_with_the_manifests() -> None:
    from gpulab.hub.policy import parse_policy

    text = _find("ConfigMap", "gpulab-policy")["data"]["policy.yaml"]
    policy = parse_policy(text)  # raises PolicyError with every problem
    assert _find("StorageClass", policy.storage.home.storage_class or "")
    assert policy.storage.home.access_mode == "ReadWriteMany"
    assert _find("VolumeSnapshotClass", policy.storage.snapshot_class or "")
    for dataset in policy.storage.datasets:
        pvc = _find("PersistentVolumeClaim", dataset.claim)
        assert dataset.read_only and pvc["spec"]["accessModes"] == ["ReadOnlyMany"]
        pv = _find("PersistentVolume", pvc["spec"]["volumeName"])
        assert pv["spec"]["csi"]["readOnly"] is True
        assert pv["spec"]["claimRef"] == {"namespace": NAMESPACE, "name": dataset.claim}
        assert pv["spec"]["storageClassName"] == pvc["spec"]["storageClassName"] == ""


def _parsed_policy() -> Any:
    from gpulab.hub.policy import parse_policy

    return parse_policy(_find("ConfigMap", "gpulab-policy")["data"]["policy.yaml"])


def test_namespace_quota_holds_every_group_quota() -> None:
    """The namespace's ResourceQuota must never refuse what the policy's group quotas allow
    (it also holds the hub's own pods: strictly above their sum)."""
    from gpulab.hub.policy import cpu_millicores, group_caps, quantity_bytes

    policy = _parsed_policy()
    caps = [group_caps(g, policy.profiles) for g in policy.groups.values()]
    assert all(c.group_cpu_millis and c.group_memory_bytes for c in caps)  # every group capped
    hard = _find("ResourceQuota", "gpulab-namespace-quota")["spec"]["hard"]
    assert cpu_millicores(hard["requests.cpu"]) > sum(c.group_cpu_millis or 0 for c in caps)
    assert quantity_bytes(hard["requests.memory"]) > sum(c.group_memory_bytes or 0 for c in caps)
    gpus = sum(g.gpu.quota_group for g in policy.groups.values())
    assert int(hard["requests.nvidia.com/gpu"]) == gpus


def test_limit_range_allows_the_largest_job_and_server() -> None:
    from gpulab.hub.policy import (
        cpu_millicores,
        group_caps,
        profile_cpu_millis,
        profile_memory_bytes,
        quantity_bytes,
    )

    policy = _parsed_policy()
    [limits] = _find("LimitRange", "gpulab-container-limits")["spec"]["limits"]
    caps = [group_caps(g, policy.profiles) for g in policy.groups.values()]
    profiles = list(policy.profiles.values())
    largest_cpu = max(
        [c.job_cpu_millis or 0 for c in caps] + [profile_cpu_millis(p) or 0 for p in profiles]
    )
    largest_memory = max(
        [c.job_memory_bytes or 0 for c in caps] + [profile_memory_bytes(p) or 0 for p in profiles]
    )
    assert cpu_millicores(limits["max"]["cpu"]) == largest_cpu
    assert quantity_bytes(limits["max"]["memory"]) == largest_memory
    # A max with no default becomes every container's default limit: never for GPUs.
    assert set(limits["max"]) == set(limits["default"]) == {"cpu", "memory"}
    for key, read in (("cpu", cpu_millicores), ("memory", quantity_bytes)):
        assert read(limits["defaultRequest"][key]) <= read(limits["default"][key])
        assert read(limits["default"][key]) <= read(limits["max"][key])


def test_bindings_reference_existing_roles_and_accounts() -> None:
    for _, doc in DOCS:
        if doc["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        role = _find(doc["roleRef"]["kind"], doc["roleRef"]["name"])
        assert role["metadata"].get("namespace") == doc["metadata"].get("namespace")
        for subject in doc["subjects"]:
            assert subject["kind"] == "ServiceAccount" and subject["namespace"] == NAMESPACE
            if subject["name"] != "hub":  # the chart makes "hub"
                _find("ServiceAccount", subject["name"])


def test_snapshot_cronjob_uses_its_own_account() -> None:
    cron = _find("CronJob", "gpulab-home-snapshots")
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "gpulab-home-snapshots"
    _find("ServiceAccount", "gpulab-home-snapshots")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["capabilities"]["drop"] == ["ALL"]


def _snapshot_module() -> dict[str, Any]:
    script = _find("ConfigMap", "gpulab-home-snapshots")["data"]["snapshot_homes.py"]
    namespace: dict[str, Any] = {"__name__": "snapshot_homes"}
    exec(compile(script, "snapshot_homes.py", "exec"), namespace)  # noqa: S102
    return namespace


def test_snapshot_plan_creates_valid_snapshots_and_prunes() -> None:
    plan = _snapshot_module()["plan"]
    now = dt.datetime(2025, 3, 1, 2, 30, tzinfo=dt.UTC)
    old = [
        {
            "metadata": {
                "name": f"home-alice-2025021{i}-0230",
                "creationTimestamp": f"2025-02-1{i}T02:30:00Z",
            },
            "spec": {"source": {"persistentVolumeClaimName": "home-alice"}},
        }
        for i in range(5)
    ]
    create, delete = plan(["home-bob", "home-alice"], old, now, 3, "gpulab", "ceph-snapshots")
    assert [s["metadata"]["name"] for s in create] == [
        "home-alice-20250301-0230",
        "home-bob-20250301-0230",
    ]
    for snap in create:
        validate_object(snap, require_namespace=True)
    assert delete == ["home-alice-20250210-0230", "home-alice-20250211-0230"]


# ----------------------------------------------------------------------------- RBAC

GATEWAY_RBAC = MANIFESTS / "rbac-gateway.yaml"

# What a gateway session looks like in a kubesim audit log: submit (secret + job, with an
# idempotency lookup; the home claims from a watch), status from the watch cache, logs, cancel, cleanup of a failed submit.
SAMPLE_AUDIT = [
    ("list", "batch", "jobs", "", ""),
    ("watch", "batch", "jobs", "", ""),
    ("list", "", "pods", "", ""),
    ("watch", "", "pods", "", ""),
    ("list", "", "persistentvolumeclaims", "", ""),
    ("watch", "", "persistentvolumeclaims", "", ""),
    ("create", "", "persistentvolumeclaims", "", ""),
    ("create", "batch", "jobs", "", ""),
    ("create", "", "secrets", "", ""),
    ("get", "batch", "jobs", "", "gpulab-job-j1"),
    ("get", "", "pods", "log", "gpulab-job-j1-abcde"),
    ("patch", "batch", "jobs", "", "gpulab-job-j1"),
    ("delete", "batch", "jobs", "", "gpulab-job-j1"),
    ("get", "", "secrets", "", "gpulab-job-j2-upload"),
    ("get", "", "configmaps", "", "gpulab-quota-vision"),
    ("create", "", "configmaps", "", ""),
    ("update", "", "configmaps", "", "gpulab-quota-vision"),
    # a multi-node job's headless Service
    ("create", "", "services", "", ""),
    # saved definitions: their CronJobs, each scheduled run's credential and its pod's gate,
    # and a user's notification settings
    ("create", "batch", "cronjobs", "", ""),
    ("list", "batch", "cronjobs", "", ""),
    ("get", "batch", "cronjobs", "", "gpulab-def-d1"),
    ("patch", "batch", "cronjobs", "", "gpulab-def-d1"),
    ("delete", "batch", "cronjobs", "", "gpulab-def-d1"),
    ("update", "", "secrets", "", "gpulab-def-d1"),
    ("patch", "", "pods", "", "gpulab-def-d1-29000000-abcde"),
    # Kueue: the Workloads of queued jobs
    ("list", "kueue.x-k8s.io", "workloads", "", ""),
    ("watch", "kueue.x-k8s.io", "workloads", "", ""),
]


def _write_audit(path: Path, rows: list[tuple[str, str, str, str, str]], ua: str) -> None:
    with path.open("w") as f:
        for verb, group, resource, sub, name in rows:
            record = {
                "verb": verb,
                "apiGroup": group,
                "resource": resource,
                "subresource": sub,
                "namespace": NAMESPACE,
                "name": name,
                "userAgent": ua,
                "code": 200,
                "path": "/",
            }
            f.write(json.dumps(record) + "\n")


def test_gateway_role_covers_the_recorded_calls_exactly(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    _write_audit(audit, SAMPLE_AUDIT, "gpulab-jobs-gateway/0.1 kubernetes_asyncio")
    with audit.open("a") as f:  # another client in the same log is ignored
        f.write(
            json.dumps(
                {
                    **json.loads(audit.read_text().splitlines()[0]),
                    "verb": "patch",
                    "userAgent": "kubectl",
                }
            )
            + "\n"
        )
    calls = load_audit(audit, user_agent="gpulab-jobs-gateway")
    assert len(calls) == len(SAMPLE_AUDIT)
    rules = load_role_rules(GATEWAY_RBAC, "gpulab-jobs-gateway")
    assert rules_cover(rules, calls, namespace=NAMESPACE) == ([], [])


def test_rules_cover_reports_drift() -> None:
    rules = load_role_rules(GATEWAY_RBAC, "gpulab-jobs-gateway")
    calls = [
        ApiCall.from_record(
            dict(zip(("verb", "apiGroup", "resource", "subresource", "name"), row, strict=True))
        )
        for row in SAMPLE_AUDIT
    ]
    calls = [
        ApiCall(c.verb, c.api_group, c.resource, c.subresource, NAMESPACE, c.name) for c in calls
    ]
    # the gateway starts deleting secrets and reading events; it stops patching jobs
    new = [
        ApiCall("delete", "", "secrets", namespace=NAMESPACE, name="s"),
        ApiCall("list", "", "events", namespace=NAMESPACE),
    ]
    kept = [c for c in calls if not (c.resource == "jobs" and c.verb == "patch")]
    missing, extra = rules_cover(rules, kept + new, namespace=NAMESPACE)
    assert missing == [Permission("", "events", "list"), Permission("", "secrets", "delete")]
    assert extra == [Permission("batch", "jobs", "patch")]


def test_rules_cover_edge_cases() -> None:
    call = ApiCall("get", "", "pods", "log", NAMESPACE, "p")
    # "*" on resources does not reach subresources; "pods/*" does
    assert rules_cover([{"apiGroups": [""], "resources": ["*"], "verbs": ["get"]}], [call])[0]
    missing, extra = rules_cover(
        [{"apiGroups": [""], "resources": ["pods/*"], "verbs": ["get"]}], [call]
    )
    assert missing == [] and extra == [Permission("", "pods/*", "get")], "wildcards are extra"
    # resourceNames restrict named calls and cannot grant list
    named = {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get", "list"],
        "resourceNames": ["s1"],
    }
    assert rules_cover([named], [ApiCall("get", "", "secrets", name="s1")])[0] == []
    assert rules_cover([named], [ApiCall("get", "", "secrets", name="s2")])[0]
    assert rules_cover([named], [ApiCall("list", "", "secrets")])[0]
    # a Role in gpulab cannot grant calls elsewhere, nor cluster-scoped ones
    role = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    assert rules_cover(
        role, [ApiCall("get", "", "pods", namespace="kube-system", name="x")], namespace=NAMESPACE
    )[0]
    assert rules_cover(role, [ApiCall("get", "", "nodes", name="n")], namespace=NAMESPACE)[0]
