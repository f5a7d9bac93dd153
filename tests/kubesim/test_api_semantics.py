"""Object semantics through the official client: versions, conflicts, patches, deletion."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes_asyncio import client as async_client
from kubesim_testlib import pod


def test_generate_name_gets_a_unique_suffix(k8s: Any, namespace: str) -> None:
    body = pod("")
    body["metadata"] = {"generateName": "worker-"}
    a = client.CoreV1Api(k8s).create_namespaced_pod(namespace, body)
    b = client.CoreV1Api(k8s).create_namespaced_pod(namespace, body)
    assert a.metadata.name.startswith("worker-") and len(a.metadata.name) == len("worker-") + 5
    assert a.metadata.name != b.metadata.name


def test_create_sets_uid_timestamp_generation_and_resource_version(
    k8s: Any, namespace: str
) -> None:
    p = client.CoreV1Api(k8s).create_namespaced_pod(namespace, pod("meta"))
    assert p.metadata.uid and p.metadata.creation_timestamp and p.metadata.generation == 1
    assert int(p.metadata.resource_version) > 0 and p.status.phase == "Pending"


def test_update_with_stale_resource_version_is_409_conflict(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    cm = core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "c"}, "data": {"a": "1"}}
    )
    cm.data = {"a": "2"}
    core.replace_namespaced_config_map("c", namespace, cm)
    cm.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("c", namespace, cm)
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "Conflict"


def test_resource_versions_increase_across_kinds(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    a = core.create_namespaced_config_map(namespace, {"metadata": {"name": "a"}})
    s = core.create_namespaced_secret(
        namespace, {"metadata": {"name": "s"}, "stringData": {"k": "v"}}
    )
    assert int(s.metadata.resource_version) > int(a.metadata.resource_version)
    assert s.data == {"k": "dg=="}


def test_generation_bumps_on_spec_change_not_on_status(k8s: Any, namespace: str) -> None:
    batch = client.BatchV1Api(k8s)
    job = {
        "metadata": {"name": "g"},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {"kubesim.test/never": "true"},
                    "containers": [{"name": "c", "image": "i", "command": ["true"]}],
                }
            },
        },
    }
    batch.create_namespaced_job(namespace, job)
    after_status = batch.patch_namespaced_job_status("g", namespace, {"status": {"active": 0}})
    assert after_status.metadata.generation == 1
    after_spec = batch.patch_namespaced_job("g", namespace, {"spec": {"activeDeadlineSeconds": 60}})
    assert after_spec.metadata.generation == 2


def test_job_gets_generated_selector_and_template_labels(k8s: Any, namespace: str) -> None:
    job = {
        "metadata": {"name": "sel"},
        "spec": {
            "suspend": True,
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "i"}]}
            },
        },
    }
    created = client.BatchV1Api(k8s).create_namespaced_job(namespace, job)
    uid = created.metadata.uid
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}
    labels = created.spec.template.metadata.labels
    assert labels["batch.kubernetes.io/job-name"] == "sel" and labels["controller-uid"] == uid
    assert created.spec.backoff_limit == 6 and created.spec.completions == 1


def test_strategic_merge_patch_merges_containers_and_env_by_name(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    body = pod("smp")
    body["spec"]["containers"][0]["env"] = [{"name": "A", "value": "1"}]
    core.create_namespaced_pod(namespace, body)
    patched = core.patch_namespaced_pod(  # the client sends strategic merge patch for dicts
        "smp", namespace, {"spec": {"containers": [{"name": "main", "image": "busybox:1.37"}]}}
    )
    c = patched.spec.containers[0]
    assert (c.image, [(e.name, e.value) for e in c.env]) == ("busybox:1.37", [("A", "1")])


async def test_json_patch_and_merge_patch(k8s_async: Any, namespace: str) -> None:
    core = async_client.CoreV1Api(k8s_async)
    body = {"metadata": {"name": "p"}, "data": {"a": "1", "b": "2"}}
    await core.create_namespaced_config_map(namespace, body)
    await core.patch_namespaced_config_map(
        "p", namespace, [{"op": "replace", "path": "/data/a", "value": "9"}]
    )
    merged = await core.patch_namespaced_config_map(
        "p",
        namespace,
        {"data": {"b": None, "c": "3"}},
        _content_type="application/merge-patch+json",
    )
    assert merged.data == {"a": "9", "c": "3"}


def test_pod_spec_is_immutable_except_image(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_pod(namespace, pod("imm"))
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_pod("imm", namespace, {"spec": {"restartPolicy": "Never"}})
    assert (
        e.value.status == 422
        and "pod updates may not change fields" in json.loads(e.value.body)["message"]
    )


def test_graceful_delete_of_bound_pod_sets_deletion_timestamp(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_pod(namespace, pod("graceful", bound=True))
    core.delete_namespaced_pod("graceful", namespace, grace_period_seconds=30)
    p = core.read_namespaced_pod("graceful", namespace)
    assert (
        p.metadata.deletion_timestamp is not None and p.metadata.deletion_grace_period_seconds == 30
    )
    core.delete_namespaced_pod(
        "graceful", namespace, body=client.V1DeleteOptions(grace_period_seconds=5)
    )
    assert (
        core.read_namespaced_pod("graceful", namespace).metadata.deletion_grace_period_seconds == 5
    )


def test_force_delete_removes_bound_pod_at_once(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_pod(namespace, pod("forced", bound=True))
    core.delete_namespaced_pod("forced", namespace, grace_period_seconds=0)
    with pytest.raises(ApiException) as e:
        core.read_namespaced_pod("forced", namespace)
    assert e.value.status == 404


def test_dry_run_create_stores_nothing(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    out = core.create_namespaced_config_map(namespace, {"metadata": {"name": "dry"}}, dry_run="All")
    assert out.metadata.name == "dry"
    assert [
        c.metadata.name
        for c in core.list_namespaced_config_map(namespace).items
        if c.metadata.name == "dry"
    ] == []


def test_delete_collection_by_label(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    for name, tier in (("a", "x"), ("b", "y"), ("c", "x")):
        core.create_namespaced_config_map(
            namespace, {"metadata": {"name": name, "labels": {"tier": tier}}}
        )
    core.delete_collection_namespaced_config_map(namespace, label_selector="tier=x")
    left = sorted(
        c.metadata.name
        for c in core.list_namespaced_config_map(namespace, label_selector="tier").items
    )
    assert left == ["b"]


def test_list_pagination_with_limit_and_continue(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    for i in range(5):
        core.create_namespaced_config_map(namespace, {"metadata": {"name": f"page-{i}"}})
    first = core.list_namespaced_config_map(namespace, limit=3, label_selector="")
    second = core.list_namespaced_config_map(namespace, limit=3, _continue=first.metadata._continue)
    names = [
        c.metadata.name for c in first.items + second.items if c.metadata.name.startswith("page-")
    ]
    assert names == [f"page-{i}" for i in range(5)] and second.metadata._continue is None


def test_finalizer_holds_object_until_removed(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    body = {"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}
    core.create_namespaced_config_map(namespace, body)
    core.delete_namespaced_config_map("held", namespace)
    assert core.read_namespaced_config_map("held", namespace).metadata.deletion_timestamp
    core.patch_namespaced_config_map("held", namespace, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("held", namespace)
    assert e.value.status == 404
