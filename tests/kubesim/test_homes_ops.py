"""gpulab.hub.homes against a real ``gpulab kubesim serve``: snapshot, reset, restore, user
deletion and the sweeper; dataset claims untouched; refusals while a pod mounts the home; the
``gpulab admin home`` command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from gpulab.hub.homes import HomeError, Homes, HomeUnavailable
from gpulab.hub.policy import parse_policy
from kubelet_testlib import run_pod, wait_for, wait_gone
from kubernetes import client

DATASET = "dataset-imagenet"
GROUP, VERSION = "snapshot.storage.k8s.io", "v1"


def make_policy(on_user_delete: str = "keep", template: str = "home-{username}") -> Any:
    return parse_policy(
        {
            "version": 1,
            "storage": {
                "home": {"size": "1Gi", "claim_name_template": template},
                "datasets": [
                    {"name": "imagenet", "claim": DATASET, "mount_path": "/datasets/imagenet"}
                ],
                "on_user_delete": on_user_delete,
                "snapshot_class": "kubesim-snapclass",
            },
        }
    )


@pytest.fixture
def core(k8s: Any) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


@pytest.fixture
def custom(k8s: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(k8s)


class FakeHub:
    """The sweep's question to the hub (``GET /hub/api/users/<name>``), answered from a set."""

    def __init__(self, users: set[str]) -> None:
        self.users = users
        self.asked: list[str] = []

    async def __call__(self, name: str) -> bool:
        self.asked.append(name)
        return name in self.users


def hub(users: set[str]) -> FakeHub:
    return FakeHub(set(users))


def home_claim(name: str, user: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {
                "app.kubernetes.io/name": "gpulab",
                "gpulab.io/user": user,
                "team": "vision",
            },
            "annotations": {"note": "from the spawner"},
        },
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }


@pytest.fixture
def setup(kubesim: Any, core: client.CoreV1Api, namespace: str) -> dict[str, Any]:
    """alice's home with files, and the dataset claim with a sample."""
    core.create_namespaced_persistent_volume_claim(namespace, home_claim("home-alice", "alice"))
    home = kubesim.data_dir / "volumes" / namespace / "home-alice"
    home.mkdir(parents=True, exist_ok=True)
    (home / "train.py").write_text("print('v1')\n")
    (home / ".bashrc").write_text("export X=1\n")
    (home / "runs").mkdir(exist_ok=True)
    (home / "runs" / "model.pt").write_bytes(b"weights")
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "metadata": {"name": DATASET, "labels": {"app.kubernetes.io/component": "dataset"}},
            "spec": {
                "accessModes": ["ReadOnlyMany"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    dataset = kubesim.data_dir / "volumes" / namespace / DATASET
    dataset.mkdir(parents=True, exist_ok=True)
    (dataset / "labels.csv").write_text("a,b\n")
    uid = core.read_namespaced_persistent_volume_claim(DATASET, namespace).metadata.uid
    return {"home": home, "dataset": dataset, "dataset_uid": uid}


def files(folder: Path) -> set[str]:
    if not folder.exists():
        return set()
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def snap_dir(kubesim: Any, namespace: str, name: str) -> Path:
    return kubesim.data_dir / "snapshots" / namespace / name


def dataset_untouched(core: client.CoreV1Api, namespace: str, setup: dict[str, Any]) -> bool:
    pvc = core.read_namespaced_persistent_volume_claim(DATASET, namespace)
    return (
        pvc.metadata.uid == setup["dataset_uid"]
        and (setup["dataset"] / "labels.csv").read_text() == "a,b\n"
    )


async def test_snapshot_has_the_files_and_kubectl_sees_it(
    kubesim: Any, k8s_async: Any, namespace: str, setup: dict[str, Any]
) -> None:
    homes = Homes(k8s_async, namespace, make_policy())
    name = await homes.snapshot_home("alice", "manual")
    assert name.startswith("home-alice-manual-")
    assert files(snap_dir(kubesim, namespace, name)) == {
        "train.py", ".bashrc", "runs", "runs/model.pt"
    }  # fmt: skip
    (info,) = await homes.list_snapshots("alice")
    assert (info.name, info.claim, info.reason, info.ready, info.user) == (
        name, "home-alice", "manual", True, "alice"
    )  # fmt: skip
    assert info.restore_size == "1Gi"
    out = kubesim.kubectl("get", "volumesnapshots", "-n", namespace).stdout
    assert name in out
    labels = kubesim.kubectl(
        "get", "volumesnapshots", "-n", namespace, "-l",
        "app.kubernetes.io/component=home-snapshot,gpulab.io/user=alice", "-o", "name",
    ).stdout  # fmt: skip
    assert name in labels
    assert await homes.list_snapshots("bob") == []


async def test_reset_then_restore(
    kubesim: Any, core: client.CoreV1Api, k8s_async: Any, namespace: str, setup: dict[str, Any]
) -> None:
    homes = Homes(k8s_async, namespace, make_policy())
    old = core.read_namespaced_persistent_volume_claim("home-alice", namespace)

    reset = await homes.reset_home("alice")
    new = core.read_namespaced_persistent_volume_claim("home-alice", namespace)
    assert new.metadata.uid != old.metadata.uid
    assert new.status.phase == "Bound"
    assert new.metadata.labels == old.metadata.labels
    assert new.metadata.annotations == {"note": "from the spawner"}
    assert new.spec.access_modes == old.spec.access_modes
    assert new.spec.resources.requests == old.spec.resources.requests
    assert new.spec.storage_class_name == old.spec.storage_class_name
    assert new.spec.data_source is None
    assert files(setup["home"]) == set()
    assert files(snap_dir(kubesim, namespace, reset.snapshot)) == {
        "train.py", ".bashrc", "runs", "runs/model.pt"
    }  # fmt: skip

    # The user works in the fresh home, then wants the old one back.
    setup["home"].mkdir(parents=True, exist_ok=True)
    (setup["home"] / "new.txt").write_text("after reset\n")
    restored = await homes.restore_home("alice", reset.snapshot)
    assert restored.previous is not None and restored.restored_from == reset.snapshot
    assert files(setup["home"]) == {"train.py", ".bashrc", "runs", "runs/model.pt"}
    assert (setup["home"] / "runs" / "model.pt").read_bytes() == b"weights"
    # ... and nothing was lost: the pre-restore home is a snapshot too.
    assert files(snap_dir(kubesim, namespace, restored.previous)) == {"new.txt"}
    pvc = core.read_namespaced_persistent_volume_claim("home-alice", namespace)
    assert pvc.status.phase == "Bound" and pvc.spec.data_source.name == reset.snapshot
    assert pvc.metadata.labels == old.metadata.labels

    reasons = sorted(s.reason for s in await homes.list_snapshots("alice"))
    assert reasons == ["reset", "restore"]
    assert dataset_untouched(core, namespace, setup)


async def test_restore_refuses_another_claims_snapshot_and_unknown_names(
    k8s_async: Any, namespace: str, setup: dict[str, Any], core: client.CoreV1Api
) -> None:
    core.create_namespaced_persistent_volume_claim(namespace, home_claim("home-bob", "bob"))
    homes = Homes(k8s_async, namespace, make_policy())
    bobs = await homes.snapshot_home("bob")
    with pytest.raises(HomeError, match="not of alice's home home-alice"):
        await homes.restore_home("alice", bobs)
    with pytest.raises(HomeError, match="no snapshot 'nope'"):
        await homes.restore_home("alice", "nope")
    assert files(setup["home"]) == {"train.py", ".bashrc", "runs", "runs/model.pt"}


async def test_reset_and_restore_are_refused_while_a_server_runs(
    kubesim: Any, core: client.CoreV1Api, k8s_async: Any, namespace: str, setup: dict[str, Any]
) -> None:
    homes = Homes(k8s_async, namespace, make_policy())
    keep = await homes.snapshot_home("alice")
    server = run_pod(
        "jupyter-alice",
        ["sleep", "3600"],
        volumes=[{"name": "home", "persistentVolumeClaim": {"claimName": "home-alice"}}],
        volumeMounts=[{"name": "home", "mountPath": "/home/jovyan"}],
    )
    server["metadata"]["labels"] = {"component": "singleuser-server"}
    core.create_namespaced_pod(namespace, server)
    try:
        wait_for(
            "server running",
            lambda: core.read_namespaced_pod("jupyter-alice", namespace).status.phase == "Running",
        )
        uid = core.read_namespaced_persistent_volume_claim("home-alice", namespace).metadata.uid
        with pytest.raises(HomeError, match="reset refused: .*in use by pod\\(s\\) jupyter-alice"):
            await homes.reset_home("alice")
        with pytest.raises(HomeError, match="restore refused: .*jupyter-alice"):
            await homes.restore_home("alice", keep)
        assert (
            core.read_namespaced_persistent_volume_claim("home-alice", namespace).metadata.uid
            == uid
        )
        assert files(setup["home"]) == {"train.py", ".bashrc", "runs", "runs/model.pt"}
        assert len(await homes.list_snapshots("alice")) == 1  # nothing taken by the refusals
    finally:
        core.delete_namespaced_pod("jupyter-alice", namespace, grace_period_seconds=0)
        wait_gone(core, namespace, "jupyter-alice")


async def test_a_dataset_claim_is_never_a_home(
    core: client.CoreV1Api, k8s_async: Any, namespace: str, setup: dict[str, Any]
) -> None:
    # A template that renders to the dataset's claim for some user ("imagenet").
    homes = Homes(k8s_async, namespace, make_policy("snapshot", "dataset-{username}"))
    for op in (
        homes.reset_home("imagenet"),
        homes.restore_home("imagenet", "x"),
        homes.snapshot_home("imagenet"),
        homes.on_user_deleted("imagenet"),
    ):
        with pytest.raises(HomeError, match="shared dataset"):
            await op
    assert dataset_untouched(core, namespace, setup)


async def test_user_deleted_keep_leaves_the_home_alone(
    core: client.CoreV1Api, k8s_async: Any, namespace: str, setup: dict[str, Any]
) -> None:
    homes = Homes(k8s_async, namespace, make_policy("keep"))
    before = core.read_namespaced_persistent_volume_claim("home-alice", namespace)
    result = await homes.on_user_deleted("alice", make_policy("keep"))
    assert result.action == "kept"
    after = core.read_namespaced_persistent_volume_claim("home-alice", namespace)
    assert after.metadata.uid == before.metadata.uid
    assert "gpulab.io/delete-after" not in (after.metadata.labels or {})
    assert await homes.list_snapshots("alice") == []
    assert await homes.sweep_expired(time.time() + 10 * 365 * 86400, owner_exists=hub({})) == []
    assert (await homes.on_user_deleted("nobody")).action == "none"


async def test_user_deleted_snapshot_then_sweep_after_grace(
    kubesim: Any,
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    k8s_async: Any,
    namespace: str,
    setup: dict[str, Any],
) -> None:
    policy = make_policy("snapshot")
    homes = Homes(k8s_async, namespace, policy)
    now = 1_900_000_000
    result = await homes.on_user_deleted("alice", policy, grace_seconds=7 * 86400, now=now)
    assert result.action == "snapshot" and result.delete_after == now + 7 * 86400
    pvc = core.read_namespaced_persistent_volume_claim("home-alice", namespace)
    assert pvc.metadata.labels["gpulab.io/delete-after"] == str(now + 7 * 86400)

    # Within the grace period nothing is deleted.
    gone = hub({})  # alice is deleted in the hub
    (early,) = await homes.sweep_expired(now + 86400, owner_exists=gone)
    assert not early.deleted and "grace period" in early.reason
    # The snapshot was not waited for by on_user_deleted; the sweeper needs it ready.
    wait_for(
        "deletion snapshot ready",
        lambda: (
            custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "volumesnapshots", result.snapshot
            ).get("status")
            or {}
        ).get("readyToUse"),
    )
    (done,) = await homes.sweep_expired(now + 7 * 86400 + 1, owner_exists=gone)
    assert gone.asked == ["alice", "alice"]
    assert done.deleted and done.claim == "home-alice"
    wait_for(
        "home deleted",
        lambda: (
            not core.list_namespaced_persistent_volume_claim(
                namespace, field_selector="metadata.name=home-alice"
            ).items
        ),
    )
    assert files(snap_dir(kubesim, namespace, result.snapshot)) == {
        "train.py", ".bashrc", "runs", "runs/model.pt"
    }  # fmt: skip
    assert dataset_untouched(core, namespace, setup)
    # The data is a command away.
    restored = await homes.restore_home("alice", result.snapshot)
    assert restored.previous is None
    assert files(setup["home"]) == {"train.py", ".bashrc", "runs", "runs/model.pt"}
    pvc = core.read_namespaced_persistent_volume_claim("home-alice", namespace)
    assert pvc.metadata.labels["gpulab.io/user"] == "alice"
    assert "gpulab.io/delete-after" not in pvc.metadata.labels


async def test_sweep_skips_a_home_in_use_and_a_returning_user(
    core: client.CoreV1Api, k8s_async: Any, namespace: str, setup: dict[str, Any]
) -> None:
    policy = make_policy("snapshot")
    homes = Homes(k8s_async, namespace, policy)
    await homes.on_user_deleted("alice", policy, grace_seconds=0)
    assert await homes.cancel_deletion("alice") is True
    assert await homes.sweep_expired(time.time() + 86400, owner_exists=hub({})) == []
    pvc = core.read_namespaced_persistent_volume_claim("home-alice", namespace)
    assert "gpulab.io/delete-after" not in (pvc.metadata.labels or {})


def mark_of(core: client.CoreV1Api, namespace: str, claim: str) -> dict[str, Any]:
    md = core.read_namespaced_persistent_volume_claim(claim, namespace).metadata
    return {
        "label": (md.labels or {}).get("gpulab.io/delete-after"),
        "snapshot": (md.annotations or {}).get("gpulab.io/deletion-snapshot"),
        "owner": (md.annotations or {}).get("gpulab.io/username"),
    }


async def ready(custom: client.CustomObjectsApi, namespace: str, snapshot: str) -> None:
    wait_for(
        f"snapshot {snapshot} ready",
        lambda: (
            custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "volumesnapshots", snapshot
            ).get("status")
            or {}
        ).get("readyToUse"),
    )


async def test_a_recreated_user_keeps_the_home_and_what_was_written_since(
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    k8s_async: Any,
    namespace: str,
    setup: dict[str, Any],
) -> None:
    """The data loss: alice deleted (home snapshotted and marked), re-created, writes new
    files without ever starting a server (a job), and the sweep after the grace period
    deleted her live home. Now the sweep asks the hub, finds her, and unmarks the home."""
    policy = make_policy("snapshot")
    homes = Homes(k8s_async, namespace, policy)
    now = 1_900_000_000
    deleted = await homes.on_user_deleted("alice", policy, grace_seconds=86400, now=now)
    assert mark_of(core, namespace, "home-alice")["owner"] == "alice"
    await ready(custom, namespace, deleted.snapshot)
    (setup["home"] / "after-recreation.txt").write_text("new work\n")  # not in the snapshot

    back = hub({"alice"})  # re-created in the hub
    (dry,) = await homes.sweep_expired(now + 30 * 86400, owner_exists=back, dry_run=True)
    assert not dry.deleted and "would be unmarked" in dry.reason
    assert mark_of(core, namespace, "home-alice")["label"] is not None
    (result,) = await homes.sweep_expired(now + 30 * 86400, owner_exists=back)
    assert not result.deleted and result.unmarked and "alice exists again" in result.reason
    assert mark_of(core, namespace, "home-alice") == {
        "label": None, "snapshot": None, "owner": "alice"
    }  # fmt: skip
    assert (setup["home"] / "after-recreation.txt").read_text() == "new work\n"
    # Unmarked: later sweeps do not even consider it, whoever the hub knows.
    assert await homes.sweep_expired(now + 60 * 86400, owner_exists=hub({})) == []
    assert core.read_namespaced_persistent_volume_claim("home-alice", namespace)


async def test_the_sweep_keeps_a_home_that_changed_after_it_read_it(
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    k8s_async: Any,
    namespace: str,
    setup: dict[str, Any],
) -> None:
    """Between the sweep's read and its delete, alice comes back and starts a server (the
    start unmarks the home): the delete is refused by its precondition, the home stays."""
    policy = make_policy("snapshot")
    homes = Homes(k8s_async, namespace, policy)
    deleted = await homes.on_user_deleted("alice", policy, grace_seconds=0)
    await ready(custom, namespace, deleted.snapshot)
    before = core.read_namespaced_persistent_volume_claim("home-alice", namespace).metadata.uid

    async def returns_meanwhile(name: str) -> bool:
        assert await homes.cancel_deletion(name)  # her server start, racing the sweep
        return False  # the hub answered before she was re-created

    (result,) = await homes.sweep_expired(time.time() + 1, owner_exists=returns_meanwhile)
    assert not result.deleted and "changed since the sweep read it" in result.reason
    after = core.read_namespaced_persistent_volume_claim("home-alice", namespace)
    assert after.metadata.uid == before and after.metadata.deletion_timestamp is None


async def test_a_start_on_a_home_being_deleted_fails_naming_the_snapshot(
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    k8s_async: Any,
    namespace: str,
    setup: dict[str, Any],
) -> None:
    """A claim held by a finalizer while it is deleted: a server started on it would stay
    Pending; the start's one read of the claim now fails it with what to do."""
    policy = make_policy("snapshot")
    homes = Homes(k8s_async, namespace, policy)
    deleted = await homes.on_user_deleted("alice", policy, grace_seconds=0)
    core.patch_namespaced_persistent_volume_claim(
        "home-alice", namespace, {"metadata": {"finalizers": ["example.com/hold"]}}
    )
    core.delete_namespaced_persistent_volume_claim("home-alice", namespace)
    assert core.read_namespaced_persistent_volume_claim(
        "home-alice", namespace
    ).metadata.deletion_timestamp
    with pytest.raises(HomeUnavailable) as refused:
        await homes.cancel_deletion("alice")
    assert str(refused.value) == (
        f"your home volume home-alice is being deleted: ask an admin to restore it from "
        f"snapshot {deleted.snapshot} (gpulab admin home restore alice {deleted.snapshot})"
    )
    core.patch_namespaced_persistent_volume_claim(
        "home-alice", namespace, {"metadata": {"finalizers": None}}
    )


def test_admin_cli(
    kubesim: Any, core: client.CoreV1Api, namespace: str, setup: dict[str, Any], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nstorage:\n  home: {size: 1Gi}\n  datasets:\n"
        f"    - {{name: imagenet, claim: {DATASET}, mount_path: /datasets/imagenet}}\n"
    )
    env = {**os.environ, "KUBECONFIG": str(kubesim.kubeconfig), "GPULAB_POLICY": str(policy)}

    def gpulab(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gpulab.cli", "admin", "home", *args, "-n", namespace],
            env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )  # fmt: skip

    listed = gpulab("list", "alice")
    assert listed.returncode == 0 and "no snapshots of alice's home (home-alice)" in listed.stdout
    taken = gpulab("snapshot", "alice")
    assert taken.returncode == 0, taken.stderr
    assert "is ready" in taken.stdout
    refused = gpulab("reset", "alice")  # no terminal, no --yes
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert files(setup["home"]) == {"train.py", ".bashrc", "runs", "runs/model.pt"}
    reset = gpulab("reset", "alice", "--yes")
    assert reset.returncode == 0, reset.stderr
    assert "undo: gpulab admin home restore alice home-alice-reset-" in reset.stdout
    assert files(setup["home"]) == set()
    snap = reset.stdout.split("undo: gpulab admin home restore alice ")[1].split()[0]
    restore = gpulab("restore", "alice", snap, "--yes")
    assert restore.returncode == 0, restore.stderr
    assert files(setup["home"]) == {"train.py", ".bashrc", "runs", "runs/model.pt"}
    listed = gpulab("list", "alice")
    assert listed.stdout.count("home-alice-") == 3 and "reset" in listed.stdout
    missing = gpulab("restore", "alice")
    assert missing.returncode == 2 and "gpulab admin home list alice" in missing.stderr
    unknown = gpulab("restore", "alice", "nope", "--yes")
    assert unknown.returncode == 1 and "no snapshot 'nope'" in unknown.stderr
    assert dataset_untouched(core, namespace, setup)
