"""Garbage collection of ownerReferences: Background, Foreground, Orphan, and Job defaults."""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubesim_testlib import KubesimProcess, pod


def _owned_pod(name: str, owner: Any, bound: bool = False) -> dict[str, Any]:
    body = pod(name, bound=bound)
    body["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "name": owner.metadata.name,
            "uid": owner.metadata.uid,
            "blockOwnerDeletion": True,
        }
    ]
    return body


def _pods(core: Any, ns: str) -> list[str]:
    return sorted(p.metadata.name for p in core.list_namespaced_pod(ns).items)


def test_background_deletion_removes_dependents(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_pod(namespace, _owned_pod("child", owner))
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")
    assert _pods(core, namespace) == []


def test_orphan_deletion_keeps_dependents_without_owner_reference(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_pod(namespace, _owned_pod("child", owner))
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Orphan")
    assert core.read_namespaced_pod("child", namespace).metadata.owner_references is None


def test_foreground_deletion_keeps_owner_until_dependents_are_gone(
    k8s: Any, namespace: str
) -> None:
    core = client.CoreV1Api(k8s)
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    core.create_namespaced_pod(namespace, _owned_pod("child", owner, bound=True))  # graceful
    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Foreground")
    waiting = core.read_namespaced_config_map("owner", namespace)
    assert waiting.metadata.deletion_timestamp is not None
    assert waiting.metadata.finalizers == ["foregroundDeletion"]
    core.delete_namespaced_pod(
        "child", namespace, grace_period_seconds=0
    )  # what the kubelet ends with
    assert [
        c.metadata.name
        for c in core.list_namespaced_config_map(namespace).items
        if c.metadata.name == "owner"
    ] == []


def _job_with_pod(k8s: Any, ns: str) -> None:
    batch, core = client.BatchV1Api(k8s), client.CoreV1Api(k8s)
    job = batch.create_namespaced_job(
        ns,
        {
            "metadata": {"name": "j"},
            "spec": {
                "suspend": True,
                "template": {
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
                },
            },
        },
    )
    body = pod("j-pod")
    body["metadata"]["ownerReferences"] = [
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "name": "j",
            "uid": job.metadata.uid,
            "controller": True,
        }
    ]
    core.create_namespaced_pod(ns, body)


def test_job_deleted_through_api_without_policy_orphans_its_pods(k8s: Any, namespace: str) -> None:
    _job_with_pod(k8s, namespace)
    client.BatchV1Api(k8s).delete_namespaced_job("j", namespace)  # batch/v1 default: Orphan
    assert _pods(client.CoreV1Api(k8s), namespace) == ["j-pod"]


def test_kubectl_delete_job_removes_its_pods(
    kubesim: KubesimProcess, k8s: Any, namespace: str
) -> None:
    _job_with_pod(k8s, namespace)
    kubesim.kubectl("delete", "job", "j", "-n", namespace)  # kubectl sends Background
    assert _pods(client.CoreV1Api(k8s), namespace) == []


def test_deleting_namespace_removes_its_objects(kubesim: KubesimProcess, k8s: Any) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespace({"metadata": {"name": "doomed"}})
    core.create_namespaced_config_map("doomed", {"metadata": {"name": "c"}})
    core.delete_namespace("doomed")
    names = json.loads(kubesim.kubectl("get", "ns", "-o", "json").stdout)["items"]
    assert "doomed" not in [n["metadata"]["name"] for n in names]
