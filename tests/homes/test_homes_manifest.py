"""The pure builders of gpulab.hub.homes.manifest."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from gpulab.hub.homes.manifest import (
    HomeError,
    check_home_claim,
    claim_owner,
    delete_after,
    deletion_mark_patch,
    empty_claim_manifest,
    home_claim_name,
    mounting_pods,
    restored_claim_manifest,
    snapshot_manifest,
    snapshot_name,
    unmark_patch,
)
from gpulab.hub.names import is_dns_label
from gpulab.hub.policy import parse_policy
from gpulab.hub.workload.pod import home_claim

POLICY = parse_policy(
    {
        "version": 1,
        "storage": {
            "home": {
                "storage_class": "cephfs",
                "size": "5Gi",
                "claim_name_template": "home-{username}",
            },
            "datasets": [{"name": "imagenet", "claim": "home-imagenet", "mount_path": "/data"}],
        },
    }
)
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_claim_name_uses_the_escaped_username() -> None:
    assert home_claim_name(POLICY, "bob.smith") == "home-bob-2esmith"
    assert home_claim_name(POLICY, "alice") == "home-alice"
    assert is_dns_label(home_claim_name(POLICY, "Bob.Smith@example.org"))


def test_a_dataset_claim_is_refused_as_a_home() -> None:
    with pytest.raises(HomeError, match="shared dataset"):
        check_home_claim(POLICY, "home-imagenet")
    check_home_claim(POLICY, "home-alice")


def test_snapshot_names_are_dns_labels_and_unique_per_attempt() -> None:
    assert snapshot_name("home-alice", "reset", NOW) == "home-alice-reset-20250304-050607"
    assert snapshot_name("home-alice", "reset", NOW, 2).endswith("-2")
    long = snapshot_name("home-" + "x" * 60, "deleted", NOW)
    assert len(long) <= 63 and is_dns_label(long)
    with pytest.raises(ValueError):
        snapshot_name("home-alice", "oops", NOW)


def test_snapshot_manifest_labels_and_class() -> None:
    body = snapshot_manifest(
        name="s", namespace="ns", username="Bob.Smith", claim="home-x", reason="manual",
        snapshot_class="ceph-snapshots",
    )  # fmt: skip
    assert body["apiVersion"] == "snapshot.storage.k8s.io/v1" and body["kind"] == "VolumeSnapshot"
    labels = body["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "gpulab"
    assert labels["app.kubernetes.io/component"] == "home-snapshot"
    assert is_dns_label(labels["gpulab.io/user"])
    assert body["metadata"]["annotations"]["gpulab.io/username"] == "Bob.Smith"
    assert body["spec"] == {
        "source": {"persistentVolumeClaimName": "home-x"},
        "volumeSnapshotClassName": "ceph-snapshots",
    }
    no_class = snapshot_manifest(
        name="s", namespace="ns", username="a", claim="c", reason="manual", snapshot_class=None
    )
    assert "volumeSnapshotClassName" not in no_class["spec"]  # the cluster's default class


OLD: dict[str, Any] = {
    "metadata": {
        "name": "home-alice",
        "namespace": "ns",
        "uid": "u1",
        "resourceVersion": "9",
        "labels": {"gpulab.io/user": "alice", "gpulab.io/delete-after": "1"},
        "annotations": {
            "pv.kubernetes.io/bind-completed": "yes",
            "volume.kubernetes.io/storage-provisioner": "cephfs.csi.ceph.com",
            "hub.jupyter.org/username": "alice",
        },
        "finalizers": ["kubernetes.io/pvc-protection"],
    },
    "spec": {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "cephfs",
        "volumeMode": "Filesystem",
        "volumeName": "pvc-u1",
    },
    "status": {"phase": "Bound"},
}


def test_empty_claim_copies_what_matters_and_drops_server_fields() -> None:
    new = empty_claim_manifest(OLD)
    assert new["metadata"] == {
        "name": "home-alice",
        "namespace": "ns",
        "labels": {"gpulab.io/user": "alice"},
        "annotations": {"hub.jupyter.org/username": "alice"},
    }
    assert new["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "cephfs",
        "volumeMode": "Filesystem",
    }
    assert "status" not in new


def test_restored_claim_points_at_the_snapshot_and_grows_to_its_size() -> None:
    snap = {"metadata": {"name": "snap"}, "status": {"restoreSize": "8Gi"}}
    new = restored_claim_manifest(OLD, snap)
    ref = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"}
    assert new["spec"]["dataSource"] == ref and new["spec"]["dataSourceRef"] == ref
    assert new["spec"]["resources"]["requests"]["storage"] == "8Gi"
    smaller = restored_claim_manifest(
        OLD, {"metadata": {"name": "s"}, "status": {"restoreSize": "1Gi"}}
    )
    assert smaller["spec"]["resources"]["requests"]["storage"] == "5Gi"


def test_policy_claim_when_no_claim_exists() -> None:
    pvc = home_claim(POLICY, "alice", "ns")
    assert pvc["metadata"]["name"] == "home-alice"
    assert pvc["metadata"]["labels"]["gpulab.io/user"] == "alice"
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteMany"],
        "resources": {"requests": {"storage": "5Gi"}},
        "storageClassName": "cephfs",
    }


def test_delete_after_mark() -> None:
    marked = deletion_mark_patch(123, "home-al-deleted-x", "Al")
    assert marked == {
        "metadata": {
            "labels": {"gpulab.io/delete-after": "123"},
            "annotations": {
                "gpulab.io/deletion-snapshot": "home-al-deleted-x",
                "gpulab.io/username": "Al",
            },
        }
    }
    assert unmark_patch() == {
        "metadata": {
            "labels": {"gpulab.io/delete-after": None},
            "annotations": {"gpulab.io/deletion-snapshot": None},
        }
    }
    # The owner comes from the claim's mark, else from the deletion snapshot.
    assert claim_owner(marked, None) == "Al"
    snap = {"metadata": {"annotations": {"gpulab.io/username": "Bo"}}}
    assert claim_owner({"metadata": {}}, snap) == "Bo"
    assert claim_owner({"metadata": {}}, None) is None
    assert delete_after(OLD) == 1
    assert delete_after({"metadata": {"labels": {"gpulab.io/delete-after": "soon"}}}) is None
    assert delete_after({"metadata": {}}) is None


def test_mounting_pods_ignores_finished_pods_and_other_claims() -> None:
    def pod(name: str, claim: str, phase: str) -> dict[str, Any]:
        return {
            "metadata": {"name": name},
            "spec": {"volumes": [{"name": "h", "persistentVolumeClaim": {"claimName": claim}}]},
            "status": {"phase": phase},
        }

    pods = [
        pod("server", "home-alice", "Running"),
        pod("job", "home-alice", "Pending"),
        pod("done", "home-alice", "Succeeded"),
        pod("bob", "home-bob", "Running"),
    ]
    assert mounting_pods(pods, "home-alice") == ["job", "server"]
