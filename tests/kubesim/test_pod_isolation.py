"""Pods on kubesim are isolated from each other and from kubesim's own files (as root).

Each test replays one attack a pod could make on the local platform before: read another
pod's environment (its server token) through ``/proc``, reach another claim's folder or
kubesim's state through the host path, or write into a world-writable claim folder.
"""

from __future__ import annotations

import os
import stat
import uuid
from typing import Any

import pytest
from kubelet_testlib import run_pod, wait_for, wait_phase
from kubernetes import client

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="namespaces and uid switching need root (see docs/kubesim.md)"
)
RESEARCHER = {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 100}


@pytest.fixture
def core(k8s: Any) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


def make_pvc(core: client.CoreV1Api, ns: str, name: str) -> None:
    core.create_namespaced_persistent_volume_claim(
        ns,
        {
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )


def claim_mount(claim: str, path: str, **mount: Any) -> dict[str, Any]:
    return {
        "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}],
        "volumeMounts": [{"name": "v", "mountPath": path, **mount}],
    }


def run_to_end(kubesim: Any, core: client.CoreV1Api, ns: str, name: str, script: str,
               **spec: Any) -> str:  # fmt: skip
    """Run ``script`` in a new pod and return its output once it finished."""
    core.create_namespaced_pod(ns, run_pod(name, ["sh", "-c", script], **spec))
    pod = wait_phase(core, ns, name, "Succeeded", "Failed")
    out = kubesim.kubectl("logs", "-n", ns, name).stdout
    assert pod.status.phase == "Succeeded", out
    return str(out)


def test_pod_cannot_read_another_pods_environ(
    kubesim: Any, core: client.CoreV1Api, namespace: str
) -> None:
    token = f"alice-token-{uuid.uuid4().hex}"
    core.create_namespaced_pod(
        namespace,
        run_pod(
            "alice",
            ["sleep", "600"],
            env=[{"name": "JUPYTERHUB_API_TOKEN", "value": token}],
            podSecurityContext=RESEARCHER,
        ),
    )
    wait_phase(core, namespace, "alice", "Running")
    out = run_to_end(
        kubesim, core, namespace, "bob",
        "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c TOKEN= ; true",
        podSecurityContext=RESEARCHER,
    )  # fmt: skip
    assert token not in out
    assert out.split() == ["0"]


def test_pod_sees_only_its_own_processes(
    kubesim: Any, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, run_pod("neighbour", ["sleep", "600"]))
    wait_phase(core, namespace, "neighbour", "Running")
    out = run_to_end(
        kubesim, core, namespace, "looker",
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done",
    )  # fmt: skip
    commands = [line.strip() for line in out.splitlines() if line.strip()]
    assert not any("sleep 600" in c for c in commands)
    # Its own shell, the loop's children, and the pod's init: nothing of the host.
    assert len(commands) <= 4, commands


def test_pod_cannot_reach_another_claims_folder(
    kubesim: Any, core: client.CoreV1Api, namespace: str
) -> None:
    make_pvc(core, namespace, "home-alice")
    make_pvc(core, namespace, "home-bob")
    alice = kubesim.data_dir / "volumes" / namespace / "home-alice"
    wait_for("alice's claim folder", alice.exists)
    (alice / "notes.txt").write_text("alice's notes\n")
    out = run_to_end(
        kubesim, core, namespace, "bob",
        f"cat {alice}/notes.txt || echo unreadable; touch {alice}/bob-was-here || echo unwritable",
        **claim_mount("home-bob", "/home/jovyan"),
    )  # fmt: skip
    assert "alice's notes" not in out
    assert "unreadable" in out and "unwritable" in out
    assert not (alice / "bob-was-here").exists()


def test_pod_cannot_see_kubesim_state(kubesim: Any, core: client.CoreV1Api, namespace: str) -> None:
    state = kubesim.kubeconfig.parent  # the data dir, the kubeconfig, the log, the audit log
    out = run_to_end(
        kubesim, core, namespace, "snoop",
        f"ls -A {state} 2>&1; ls -A {kubesim.data_dir} 2>/dev/null || echo no-data-dir; "
        f"cat {kubesim.kubeconfig} 2>/dev/null || echo no-kubeconfig",
    )  # fmt: skip
    assert out.splitlines()[0] == "no-data-dir", out  # the state folder lists as empty
    assert "no-kubeconfig" in out and "token" not in out


def test_own_volume_still_mounted_inside_hidden_data_dir(
    kubesim: Any, core: client.CoreV1Api, namespace: str
) -> None:
    make_pvc(core, namespace, "home")
    out = run_to_end(
        kubesim, core, namespace, "writer", "echo mine > /home/jovyan/f && cat /home/jovyan/f",
        podSecurityContext=RESEARCHER, **claim_mount("home", "/home/jovyan"),
    )  # fmt: skip
    assert out == "mine\n"
    assert (kubesim.data_dir / "volumes" / namespace / "home" / "f").read_text() == "mine\n"


def test_new_claim_folder_is_owner_only(
    core: client.CoreV1Api, kubesim: Any, namespace: str
) -> None:
    make_pvc(core, namespace, "fresh")
    folder = kubesim.data_dir / "volumes" / namespace / "fresh"
    wait_for("the claim folder", folder.exists)
    st = folder.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700)


def test_claim_folder_belongs_to_the_pods_user_and_fs_group(
    kubesim: Any, core: client.CoreV1Api, namespace: str
) -> None:
    make_pvc(core, namespace, "home")
    run_to_end(
        kubesim, core, namespace, "owner", "touch /home/jovyan/f",
        podSecurityContext=RESEARCHER, **claim_mount("home", "/home/jovyan"),
    )  # fmt: skip
    st = (kubesim.data_dir / "volumes" / namespace / "home").stat()
    assert (st.st_uid, st.st_gid) == (1000, 100)
    assert stat.S_IMODE(st.st_mode) == 0o2770  # no access for others, never world-writable


def test_sub_path_folder_is_writable_by_the_volume_owner(
    kubesim: Any, core: client.CoreV1Api, namespace: str
) -> None:
    make_pvc(core, namespace, "home")
    out = run_to_end(
        kubesim, core, namespace, "sub", "echo ok > /home/jovyan/f && cat /home/jovyan/f",
        podSecurityContext=RESEARCHER, **claim_mount("home", "/home/jovyan", subPath="u/alice"),
    )  # fmt: skip
    assert out == "ok\n"
    sub = kubesim.data_dir / "volumes" / namespace / "home" / "u" / "alice"
    assert (sub.stat().st_uid, stat.S_IMODE(sub.stat().st_mode)) == (1000, 0o2770)


def test_read_only_claim_is_not_taken_over_by_its_reader(
    kubesim: Any, core: client.CoreV1Api, namespace: str
) -> None:
    make_pvc(core, namespace, "dataset")
    folder = kubesim.data_dir / "volumes" / namespace / "dataset"
    wait_for("the claim folder", folder.exists)
    folder.chmod(0o755)  # provisioned by the admin for everyone to read
    (folder / "labels.csv").write_text("a,b\n")
    out = run_to_end(
        kubesim, core, namespace, "reader", "cat /data/labels.csv",
        podSecurityContext=RESEARCHER, **claim_mount("dataset", "/data", readOnly=True),
    )  # fmt: skip
    assert out == "a,b\n"
    st = folder.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o755)


def test_pod_has_its_own_ipc_namespace(
    kubesim: Any, core: client.CoreV1Api, namespace: str
) -> None:
    out = run_to_end(kubesim, core, namespace, "ipc", "readlink /proc/self/ns/ipc")
    assert out.strip().startswith("ipc:[")
    assert out.strip() != os.readlink("/proc/self/ns/ipc")
