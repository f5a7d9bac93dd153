"""Homes end to end on the shared ``platform`` (kubesim + JupyterHub with GPULabSpawner):
deleting a user through the hub API keeps the home claim and its files, and the admin can
then snapshot, reset and restore it with ``gpulab admin home``."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import uuid
from typing import Any

import httpx
import pytest
from gpulab.hub.names import escape_username

pytestmark = pytest.mark.e2e

NAMESPACE = "default"
DEADLINE = 120  # seconds for a server to start or stop: a deadline, not an assertion on speed
CPU_IMG = "harbor.local/shared/scipy:2024.10"
E2E_POLICY = os.path.join(os.path.dirname(__file__), "..", "e2e", "policy.yaml")


def kubectl(platform: Any, *args: str, check: bool = True) -> str:
    env = {**os.environ, "KUBECONFIG": str(platform.kubeconfig)}
    result = subprocess.run(["kubectl", *args], env=env, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
    return result.stdout


def server(platform: Any, name: str) -> dict[str, Any] | None:
    return platform.api("GET", f"/hub/api/users/{name}")["servers"].get("")


def wait(what: str, fn: Any) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if value := fn():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def pod_gone(platform: Any, name: str) -> bool:
    return not kubectl(
        platform, "get", "pods", "-n", NAMESPACE, "--field-selector",
        f"metadata.name=jupyter-{escape_username(name)}", "-o", "name",
    ).strip()  # fmt: skip


def admin_home(platform: Any, *args: str, hub: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(platform.kubeconfig), "GPULAB_POLICY": E2E_POLICY}
    for var in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN"):
        env.pop(var, None)
    if hub:  # the sweep asks the hub whether each owner is still deleted
        env["JUPYTERHUB_API_URL"] = f"{platform.hub_url}/hub/api"
        env["JUPYTERHUB_API_TOKEN"] = platform.admin_token
    return subprocess.run(
        [sys.executable, "-m", "gpulab.cli", "admin", "home", *args, "-n", NAMESPACE, "--yes"],
        env=env, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_deleting_a_user_keeps_the_home_and_the_admin_can_reset_and_restore(platform: Any) -> None:
    name = f"hm-{uuid.uuid4().hex[:6]}"
    platform.api("POST", f"/hub/api/users/{name}")
    with contextlib.suppress(urllib.error.HTTPError):
        platform.api("POST", "/hub/api/groups/vision")
    platform.api("POST", "/hub/api/groups/vision/users", {"users": [name]})
    token = platform.user_token(name)
    claim = f"home-{escape_username(name)}"
    try:
        platform.api("POST", f"/hub/api/users/{name}/server", {"profile": "cpu", "image": CPU_IMG})
        wait("server ready", lambda: (s := server(platform, name)) and s.get("ready"))
        r = httpx.put(
            f"{platform.hub_url}/user/{name}/api/contents/thesis.txt",
            json={"type": "file", "format": "text", "content": "chapter 1"},
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert r.status_code in (200, 201), r.text

        # The admin may not reset a home while its server runs.
        refused = admin_home(platform, "reset", name)
        assert refused.returncode == 1 and "in use by pod(s)" in refused.stderr

        platform.api("DELETE", f"/hub/api/users/{name}/server")
        wait("server stopped", lambda: server(platform, name) is None)
        wait("server pod gone", lambda: pod_gone(platform, name))
    finally:
        with contextlib.suppress(urllib.error.HTTPError):
            platform.api("DELETE", f"/hub/api/users/{name}/server")
        wait("server pod gone", lambda: pod_gone(platform, name))
    platform.api("DELETE", f"/hub/api/users/{name}")
    with pytest.raises(urllib.error.HTTPError):
        platform.api("GET", f"/hub/api/users/{name}")

    pvc = json.loads(kubectl(platform, "get", "pvc", claim, "-n", NAMESPACE, "-o", "json"))
    assert pvc["status"]["phase"] == "Bound"
    home = platform.state_dir / "kubesim" / "volumes" / NAMESPACE / claim
    assert (home / "thesis.txt").read_text() == "chapter 1"

    reset = admin_home(platform, "reset", name)
    assert reset.returncode == 0, reset.stderr
    assert not (home / "thesis.txt").exists()
    snap = reset.stdout.split(f"undo: gpulab admin home restore {name} ")[1].split()[0]
    restored = admin_home(platform, "restore", name, snap)
    assert restored.returncode == 0, restored.stderr
    assert (home / "thesis.txt").read_text() == "chapter 1"
    assert snap in kubectl(platform, "get", "volumesnapshots", "-n", NAMESPACE)


# ----------------------------------------------------------------------------- every home


SNAPSHOTS_YAML = os.path.join(
    os.path.dirname(__file__), "..", "..", "helm-values", "manifests", "snapshots.yaml"
)
HOME_LABELS = {
    "app.kubernetes.io/name": "gpulab",
    "app.kubernetes.io/component": "home",
    "app.kubernetes.io/managed-by": "gpulab",
}


def snapshot_selector() -> str:
    """The label selector the nightly snapshot CronJob lists home claims with."""
    with open(SNAPSHOTS_YAML) as f:
        match = re.search(r'HOME_SELECTOR = "([^"]+)"', f.read())
    assert match, "the snapshot CronJob's script no longer names HOME_SELECTOR"
    return match.group(1)


def new_vision_user(platform: Any, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    platform.api("POST", f"/hub/api/users/{name}")
    with contextlib.suppress(urllib.error.HTTPError):
        platform.api("POST", "/hub/api/groups/vision")
    platform.api("POST", "/hub/api/groups/vision/users", {"users": [name]})
    return name


def start_and_stop(platform: Any, name: str) -> None:
    try:
        platform.api("POST", f"/hub/api/users/{name}/server", {"profile": "cpu", "image": CPU_IMG})
        wait("server ready", lambda: (s := server(platform, name)) and s.get("ready"))
    finally:
        with contextlib.suppress(urllib.error.HTTPError):
            platform.api("DELETE", f"/hub/api/users/{name}/server")
        wait("server pod gone", lambda: pod_gone(platform, name))


def test_every_home_claim_carries_the_home_labels_and_the_snapshot_cronjob_selects_it(
    platform: Any,
) -> None:
    spawned = new_vision_user(platform, "hs")
    start_and_stop(platform, spawned)  # the spawner makes this user's home claim
    users = [spawned]
    if platform.s3 is not None:  # the jobs gateway runs with Ceph only
        submitter = new_vision_user(platform, "hj")
        job = {"name": "noop", "image": CPU_IMG, "command": ["true"]}
        r = httpx.post(
            f"{platform.hub_url}/services/jobs-gateway/api/v1/jobs",
            json=job,
            headers={"Authorization": f"token {platform.user_token(submitter)}"},
            timeout=60,
        )
        assert r.status_code == 201, r.text  # the gateway made this user's home claim
        users.append(submitter)
    selected = json.loads(
        kubectl(platform, "get", "pvc", "-n", NAMESPACE, "-l", snapshot_selector(), "-o", "json")
    )["items"]
    by_name = {pvc["metadata"]["name"]: pvc for pvc in selected}
    for user in users:
        claim = f"home-{escape_username(user)}"
        assert claim in by_name, f"the snapshot CronJob does not select {claim}"
        labels = by_name[claim]["metadata"]["labels"]
        assert labels.items() >= {**HOME_LABELS, "gpulab.io/user": escape_username(user)}.items()


def create_marked_home(platform: Any, claim: str) -> None:
    """A home claim carrying the mark ``on_user_delete: snapshot`` leaves (not yet expired)."""
    marked = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": claim,
            "namespace": NAMESPACE,
            "labels": {**HOME_LABELS, "gpulab.io/delete-after": str(int(time.time()) + 3600)},
            "annotations": {"gpulab.io/deletion-snapshot": f"{claim}-deleted-1"},
        },
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    env = {**os.environ, "KUBECONFIG": str(platform.kubeconfig)}
    subprocess.run(
        ["kubectl", "create", "-f", "-"], input=json.dumps(marked), env=env, check=True,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def assert_unmarked(platform: Any, claim: str) -> None:
    pvc = json.loads(kubectl(platform, "get", "pvc", claim, "-n", NAMESPACE, "-o", "json"))
    assert "gpulab.io/delete-after" not in pvc["metadata"].get("labels", {})
    assert "gpulab.io/deletion-snapshot" not in pvc["metadata"].get("annotations", {})


def test_starting_a_server_cancels_a_pending_home_deletion(platform: Any) -> None:
    name = new_vision_user(platform, "hc")
    claim = f"home-{escape_username(name)}"
    create_marked_home(platform, claim)
    start_and_stop(platform, name)
    assert_unmarked(platform, claim)


def test_re_creating_a_deleted_user_clears_the_mark_on_their_home_at_once(platform: Any) -> None:
    """The user was deleted (their home marked for the sweep) and is created again: the mark
    is gone when the hub answers, before any server start."""
    name = f"hu-{uuid.uuid4().hex[:6]}"
    claim = f"home-{escape_username(name)}"
    create_marked_home(platform, claim)
    platform.api("POST", f"/hub/api/users/{name}")
    assert_unmarked(platform, claim)


def mark_for_deletion(platform: Any, claim: str, name: str, snapshot: str) -> None:
    """The mark ``on_user_delete: snapshot`` leaves on a deleted user's home, already expired
    (the e2e policy keeps homes, so the test marks it as that policy would)."""
    kubectl(
        platform, "label", "pvc", claim, "-n", NAMESPACE, "--overwrite",
        f"gpulab.io/delete-after={int(time.time()) - 60}",
    )  # fmt: skip
    kubectl(
        platform, "annotate", "pvc", claim, "-n", NAMESPACE, "--overwrite",
        f"gpulab.io/deletion-snapshot={snapshot}", f"gpulab.io/username={name}",
    )  # fmt: skip


def test_the_sweep_keeps_a_recreated_users_home_and_deletes_a_deleted_ones(
    platform: Any,
) -> None:
    """Deleted (home snapshotted and marked), re-created, new files written, grace period
    over: the sweep used to delete the live home and everything written since the snapshot.
    It now asks the hub, and deletes only once the owner is really gone."""
    name = new_vision_user(platform, "hr")
    claim = f"home-{escape_username(name)}"
    start_and_stop(platform, name)  # the spawner makes the home claim
    home = platform.state_dir / "kubesim" / "volumes" / NAMESPACE / claim
    home.mkdir(parents=True, exist_ok=True)
    (home / "before.txt").write_text("in the snapshot")
    taken = admin_home(platform, "snapshot", name)
    assert taken.returncode == 0, taken.stderr
    snapshot = taken.stdout.split()[1]
    mark_for_deletion(platform, claim, name, snapshot)
    (home / "since.txt").write_text("written after re-creation")  # not in the snapshot

    blind = admin_home(platform, "sweep")
    assert blind.returncode == 1 and "JUPYTERHUB_API_TOKEN" in blind.stderr
    swept = admin_home(platform, "sweep", hub=True)
    assert swept.returncode == 0, swept.stderr
    assert f"{claim}: kept ({name} exists again in the hub: unmarked)" in swept.stdout
    pvc = json.loads(kubectl(platform, "get", "pvc", claim, "-n", NAMESPACE, "-o", "json"))
    assert "gpulab.io/delete-after" not in pvc["metadata"].get("labels", {})
    assert (home / "since.txt").read_text() == "written after re-creation"

    # Really deleted this time: the sweep deletes the home, the snapshot stays.
    platform.api("DELETE", f"/hub/api/users/{name}")
    mark_for_deletion(platform, claim, name, snapshot)
    swept = admin_home(platform, "sweep", hub=True)
    assert swept.returncode == 0, swept.stderr
    assert f"{claim}: deleted (expired; snapshot {snapshot} kept)" in swept.stdout
    wait("home deleted", lambda: not kubectl(
        platform, "get", "pvc", "-n", NAMESPACE, "--field-selector",
        f"metadata.name={claim}", "-o", "name",
    ).strip())  # fmt: skip
    assert snapshot in kubectl(platform, "get", "volumesnapshots", "-n", NAMESPACE)


def test_a_spawn_on_a_home_being_deleted_fails_at_once_naming_the_snapshot(
    platform: Any,
) -> None:
    """A home claim stuck in deletion (a finalizer holds it): the server pod used to stay
    Pending on the volume until the start timeout; the start now fails at once and says
    which snapshot an admin restores it from."""
    name = new_vision_user(platform, "hg")
    claim = f"home-{escape_username(name)}"
    snapshot = f"{claim}-deleted-20260101-000000"
    held = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": claim,
            "namespace": NAMESPACE,
            "labels": HOME_LABELS,
            "annotations": {"gpulab.io/deletion-snapshot": snapshot},
            "finalizers": ["example.com/hold"],
        },
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    env = {**os.environ, "KUBECONFIG": str(platform.kubeconfig)}
    subprocess.run(
        ["kubectl", "create", "-f", "-"], input=json.dumps(held), env=env, check=True,
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    kubectl(platform, "delete", "pvc", claim, "-n", NAMESPACE, "--wait=false")
    try:
        started = time.monotonic()
        r = httpx.post(
            f"{platform.hub_url}/hub/api/users/{name}/server",
            json={"profile": "cpu", "image": CPU_IMG},
            headers={"Authorization": f"token {platform.admin_token}"},
            timeout=60,
        )
        assert r.status_code == 409, r.text
        assert time.monotonic() - started < 30
        assert (
            f"your home volume {claim} is being deleted: ask an admin to restore it from "
            f"snapshot {snapshot}"
        ) in r.json()["message"]
        assert server(platform, name) is None
        assert pod_gone(platform, name)
    finally:
        kubectl(
            platform, "patch", "pvc", claim, "-n", NAMESPACE, "--type=merge",
            "-p", '{"metadata": {"finalizers": null}}',
        )  # fmt: skip
