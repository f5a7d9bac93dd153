"""kubesim's snapshot.storage.k8s.io/v1: discovery, validation, the snapshot controller and
claims restored from snapshots, through kubectl and the official client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubelet_testlib import wait_for
from kubernetes import client
from kubernetes.client.rest import ApiException

GROUP, VERSION = "snapshot.storage.k8s.io", "v1"


@pytest.fixture
def core(k8s: Any) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


@pytest.fixture
def custom(k8s: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(k8s)


def claim(name: str, size: str = "1Gi", source: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": size}},
    }
    if source:
        spec["dataSource"] = {"apiGroup": GROUP, "kind": "VolumeSnapshot", "name": source}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": spec,
    }


def snapshot(name: str, pvc: str | None = None, **source: str) -> dict[str, Any]:
    src = {"persistentVolumeClaimName": pvc} if pvc else dict(source)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "VolumeSnapshot",
        "metadata": {"name": name},
        "spec": {"source": src},
    }


def get_snap(custom: client.CustomObjectsApi, ns: str, name: str) -> dict[str, Any] | None:
    try:
        return custom.get_namespaced_custom_object(GROUP, VERSION, ns, "volumesnapshots", name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def wait_ready(custom: client.CustomObjectsApi, ns: str, name: str) -> dict[str, Any]:
    return wait_for(
        f"snapshot {name} ready",
        lambda: (
            (s := get_snap(custom, ns, name)) and (s.get("status") or {}).get("readyToUse") and s
        ),
    )


def fill(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("old notes\n")
    (folder / ".hidden").write_text("dotfile\n")
    (folder / "sub").mkdir(exist_ok=True)
    (folder / "sub" / "model.bin").write_bytes(b"\x00\x01" * 1000)


def test_discovery_serves_the_snapshot_group(kubesim: Any) -> None:
    groups = json.loads(kubesim.kubectl("get", "--raw", "/apis").stdout)
    assert any(g["name"] == GROUP for g in groups["groups"])
    resources = json.loads(kubesim.kubectl("get", "--raw", f"/apis/{GROUP}/{VERSION}").stdout)
    by_name = {r["name"]: r for r in resources["resources"]}
    assert by_name["volumesnapshots"]["namespaced"] is True
    assert by_name["volumesnapshots"]["kind"] == "VolumeSnapshot"
    assert by_name["volumesnapshotclasses"]["namespaced"] is False
    assert "volumesnapshots/status" in by_name
    out = kubesim.kubectl("get", "volumesnapshotclasses").stdout
    assert "kubesim-snapclass" in out


def test_invalid_snapshots_are_refused(custom: client.CustomObjectsApi, namespace: str) -> None:
    for body in (
        snapshot("both", "a", volumeSnapshotContentName="c") | {},
        {**snapshot("none"), "spec": {"source": {}}},
        {**snapshot("nospec"), "spec": None},
        snapshot("Bad_Name", "a"),
    ):
        if body["metadata"]["name"] == "both":
            body["spec"]["source"] = {
                "persistentVolumeClaimName": "a",
                "volumeSnapshotContentName": "c",
            }
        with pytest.raises(ApiException) as err:
            custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, "volumesnapshots", body
            )
        assert err.value.status == 422, body


def test_snapshot_copies_the_claim_folder_and_restores_into_a_new_claim(
    kubesim: Any, core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str
) -> None:
    core.create_namespaced_persistent_volume_claim(namespace, claim("src"))
    fill(kubesim.data_dir / "volumes" / namespace / "src")
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "volumesnapshots", snapshot("snap", "src")
    )
    snap = wait_ready(custom, namespace, "snap")
    status = snap["status"]
    assert status["restoreSize"] == "1Gi"
    assert status["creationTime"]
    assert status["boundVolumeSnapshotContentName"] == f"snapcontent-{snap['metadata']['uid']}"
    assert snap["spec"]["volumeSnapshotClassName"] == "kubesim-snapclass"
    folder = kubesim.data_dir / "snapshots" / namespace / "snap"
    assert (folder / "notes.txt").read_text() == "old notes\n"
    assert (folder / ".hidden").exists() and (folder / "sub" / "model.bin").stat().st_size == 2000

    # The snapshot is a copy: later changes to the claim do not reach it.
    (kubesim.data_dir / "volumes" / namespace / "src" / "notes.txt").write_text("changed\n")
    core.create_namespaced_persistent_volume_claim(namespace, claim("copy", source="snap"))
    bound = wait_for(
        "restored claim bound",
        lambda: (
            core.read_namespaced_persistent_volume_claim("copy", namespace).status.phase == "Bound"
        ),
    )
    assert bound
    pvc = core.read_namespaced_persistent_volume_claim("copy", namespace)
    assert pvc.spec.data_source.name == "snap" and pvc.spec.data_source_ref.name == "snap"
    assert pvc.spec.volume_name
    restored = kubesim.data_dir / "volumes" / namespace / "copy"
    assert (restored / "notes.txt").read_text() == "old notes\n"
    assert (restored / "sub" / "model.bin").read_bytes() == b"\x00\x01" * 1000
    out = kubesim.kubectl("get", "volumesnapshots", "-n", namespace).stdout
    assert "snap" in out


def test_missing_source_claim_is_an_error_then_taken_when_it_appears(
    kubesim: Any, core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str
) -> None:
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "volumesnapshots", snapshot("early", "later")
    )
    snap = wait_for(
        "snapshot error",
        lambda: (
            (s := get_snap(custom, namespace, "early"))
            and (s.get("status") or {}).get("error")
            and s
        ),
    )
    assert snap["status"]["readyToUse"] is False
    message = snap["status"]["error"]["message"]
    assert "failed to retrieve PVC later" in message and "not found" in message
    core.create_namespaced_persistent_volume_claim(namespace, claim("later"))
    snap = wait_ready(custom, namespace, "early")
    assert "error" not in snap["status"]


def test_claim_from_a_missing_snapshot_waits_pending(
    kubesim: Any, core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str
) -> None:
    core.create_namespaced_persistent_volume_claim(namespace, claim("waiting", source="notyet"))
    pvc = core.read_namespaced_persistent_volume_claim("waiting", namespace)
    assert pvc.status.phase == "Pending"
    events = wait_for(
        "ProvisioningFailed event",
        lambda: [
            e
            for e in core.list_namespaced_event(namespace).items
            if e.reason == "ProvisioningFailed" and e.involved_object.name == "waiting"
        ],
    )
    assert 'volumesnapshots.snapshot.storage.k8s.io "notyet" not found' in events[0].message
    core.create_namespaced_persistent_volume_claim(namespace, claim("base"))
    fill(kubesim.data_dir / "volumes" / namespace / "base")
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "volumesnapshots", snapshot("notyet", "base")
    )
    wait_for(
        "claim bound once the snapshot is ready",
        lambda: (
            core.read_namespaced_persistent_volume_claim("waiting", namespace).status.phase
            == "Bound"
        ),
    )
    assert (kubesim.data_dir / "volumes" / namespace / "waiting" / "notes.txt").exists()


def test_a_claim_smaller_than_the_snapshot_is_not_provisioned(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str
) -> None:
    core.create_namespaced_persistent_volume_claim(namespace, claim("big", "2Gi"))
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "volumesnapshots", snapshot("bigsnap", "big")
    )
    wait_ready(custom, namespace, "bigsnap")
    core.create_namespaced_persistent_volume_claim(namespace, claim("small", "1Gi", "bigsnap"))
    events = wait_for(
        "ProvisioningFailed event",
        lambda: [
            e
            for e in core.list_namespaced_event(namespace).items
            if e.reason == "ProvisioningFailed" and e.involved_object.name == "small"
        ],
    )
    assert "is less than the size" in events[0].message
    assert (
        core.read_namespaced_persistent_volume_claim("small", namespace).status.phase == "Pending"
    )


def test_deleting_a_snapshot_removes_its_folder(
    kubesim: Any, core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str
) -> None:
    core.create_namespaced_persistent_volume_claim(namespace, claim("gone-src"))
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "volumesnapshots", snapshot("gone", "gone-src")
    )
    snap = wait_ready(custom, namespace, "gone")
    assert snap["metadata"]["finalizers"] == [
        "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
    ]
    folder = kubesim.data_dir / "snapshots" / namespace / "gone"
    assert folder.is_dir()
    kubesim.kubectl("delete", "volumesnapshot", "gone", "-n", namespace)  # waits for the finalizer
    assert get_snap(custom, namespace, "gone") is None
    assert not folder.exists()


def test_source_is_immutable_and_unknown_class_is_an_error(
    core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str
) -> None:
    core.create_namespaced_persistent_volume_claim(namespace, claim("imm"))
    body = snapshot("nocls", "imm")
    body["spec"]["volumeSnapshotClassName"] = "no-such-class"
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "volumesnapshots", body)
    snap = wait_for(
        "class error",
        lambda: (
            (s := get_snap(custom, namespace, "nocls"))
            and (s.get("status") or {}).get("error")
            and s
        ),
    )
    assert "no-such-class" in snap["status"]["error"]["message"]
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "volumesnapshots", "nocls",
            {"spec": {"source": {"persistentVolumeClaimName": "other"}}},
        )  # fmt: skip
    assert err.value.status == 422


def test_snapshot_of_an_unbound_claim_is_taken_once_it_binds(
    kubesim: Any, core: client.CoreV1Api, custom: client.CustomObjectsApi, namespace: str
) -> None:
    core.create_namespaced_persistent_volume_claim(namespace, claim("restoring", source="later"))
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "volumesnapshots", snapshot("of-restoring", "restoring")
    )
    snap = wait_for(
        "not-bound error",
        lambda: (
            (s := get_snap(custom, namespace, "of-restoring"))
            and (s.get("status") or {}).get("error")
            and s
        ),
    )
    assert "is not yet bound to a PV" in snap["status"]["error"]["message"]
    core.create_namespaced_persistent_volume_claim(namespace, claim("origin"))
    fill(kubesim.data_dir / "volumes" / namespace / "origin")
    custom.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "volumesnapshots", snapshot("later", "origin")
    )
    wait_ready(custom, namespace, "of-restoring")
    folder = kubesim.data_dir / "snapshots" / namespace / "of-restoring"
    assert (folder / "notes.txt").read_text() == "old notes\n"
