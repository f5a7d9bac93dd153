"""The kubelet half of kubesim, driven through the official ``kubernetes`` client and kubectl."""

from __future__ import annotations

import os
import urllib.request
import uuid
from typing import Any

import pytest
from kubelet_testlib import (
    pid_alive,
    processes_with,
    run_pod,
    wait_for,
    wait_gone,
    wait_phase,
)
from kubernetes import client

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="uid switching and mounts need root")


@pytest.fixture
def core(k8s: Any) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


def logs(kubesim: Any, ns: str, name: str, *extra: str) -> str:
    return kubesim.kubectl("logs", "-n", ns, name, *extra).stdout


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


def test_pod_runs_and_logs(kubesim: Any, core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(
        namespace, run_pod("hello", ["sh", "-c", "echo hello; echo oops >&2"])
    )
    pod = wait_phase(core, namespace, "hello", "Succeeded", "Failed")
    assert pod.status.phase == "Succeeded"
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (0, "Completed")
    assert pod.status.pod_ip.startswith("127.0.0.") and pod.status.host_ip == "127.0.0.1"
    assert {c.type: c.status for c in pod.status.conditions}["PodScheduled"] == "True"
    assert logs(kubesim, namespace, "hello") == "hello\noops\n"
    reasons = {
        e.reason
        for e in core.list_namespaced_event(
            namespace, field_selector="involvedObject.name=hello"
        ).items
    }
    assert {"Scheduled", "Pulled", "Created", "Started"} <= reasons


def test_exit_code_and_failed_phase(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, run_pod("fails", ["sh", "-c", "exit 3"]))
    pod = wait_phase(core, namespace, "fails", "Succeeded", "Failed")
    assert pod.status.phase == "Failed"
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (3, "Error")


def test_missing_executable_is_a_start_error(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(namespace, run_pod("noexec", ["no-such-binary-xyz"]))
    pod = wait_phase(core, namespace, "noexec", "Failed")
    term = pod.status.container_statuses[0].state.terminated
    assert term.reason == "StartError" and "no-such-binary-xyz" in term.message


def test_restart_policy_on_failure(kubesim: Any, core: client.CoreV1Api, namespace: str) -> None:
    script = "if [ -e /scratch/once ]; then echo second; exit 0; fi; touch /scratch/once; exit 1"
    core.create_namespaced_pod(
        namespace,
        run_pod(
            "retry",
            ["sh", "-c", script],
            restart="OnFailure",
            volumes=[{"name": "scratch", "emptyDir": {}}],
            volumeMounts=[{"name": "scratch", "mountPath": "/scratch"}],
        ),
    )
    pod = wait_phase(core, namespace, "retry", "Succeeded", "Failed")
    cs = pod.status.container_statuses[0]
    assert pod.status.phase == "Succeeded" and cs.restart_count == 1
    assert cs.last_state.terminated.exit_code == 1
    assert logs(kubesim, namespace, "retry") == "second\n"
    assert logs(kubesim, namespace, "retry", "--previous") == ""


def test_restart_policy_always_restarts_a_finished_container(
    core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(namespace, run_pod("always", ["true"], restart="Always"))
    wait_for(
        "two restarts",
        lambda: (
            (core.read_namespaced_pod("always", namespace).status.container_statuses or [None])[0]
            and core.read_namespaced_pod("always", namespace)
            .status.container_statuses[0]
            .restart_count
            >= 2
        ),
    )
    assert core.read_namespaced_pod("always", namespace).status.phase == "Running"


def _host_pid(marker: str) -> int:
    """The host pid of the container's shell whose script names ``marker`` (``$$`` in the pod
    is its pid inside the pod's own PID namespace)."""
    found = wait_for(f"a process named {marker}", lambda: processes_with(marker))
    assert len(found) == 1, found
    return int(found[0])


@pytest.mark.parametrize("grace", [5, 0])
def test_delete_ends_the_process(
    kubesim: Any, core: client.CoreV1Api, namespace: str, grace: int
) -> None:
    make_pvc(core, namespace, "state")
    marker = f"victim-{uuid.uuid4().hex[:8]}"
    script = (
        f': {marker}; trap "echo term > /state/term; exit 0" TERM; while true; do sleep 0.2; done'
    )
    core.create_namespaced_pod(
        namespace,
        run_pod(
            "victim",
            ["sh", "-c", script],
            volumes=[{"name": "state", "persistentVolumeClaim": {"claimName": "state"}}],
            volumeMounts=[{"name": "state", "mountPath": "/state"}],
        ),
    )
    folder = kubesim.data_dir / "volumes" / namespace / "state"
    pid = _host_pid(marker)
    assert pid_alive(pid)
    core.delete_namespaced_pod("victim", namespace, grace_period_seconds=grace)
    wait_gone(core, namespace, "victim")
    wait_for("the container process to end", lambda: not pid_alive(pid))
    if grace:
        assert (folder / "term").read_text() == "term\n"  # SIGTERM reached it


def test_unschedulable_then_scheduled_when_capacity_frees(
    core: client.CoreV1Api, namespace: str
) -> None:
    node = "kubesim-node-1"
    gpus = {"limits": {"nvidia.com/gpu": "4"}}
    core.create_namespaced_pod(
        namespace, run_pod("big", ["sleep", "300"], node=node, resources=gpus)
    )
    wait_phase(core, namespace, "big", "Running")
    one = {"limits": {"nvidia.com/gpu": "1"}}
    core.create_namespaced_pod(
        namespace, run_pod("waits", ["sleep", "300"], node=node, resources=one)
    )

    def unschedulable() -> Any:
        conds = core.read_namespaced_pod("waits", namespace).status.conditions or []
        return next((c for c in conds if c.type == "PodScheduled" and c.reason), None)

    cond = wait_for("Unschedulable", unschedulable)
    assert cond.status == "False" and cond.reason == "Unschedulable"
    assert cond.message.startswith(
        "0/2 nodes are available: 1 Insufficient nvidia.com/gpu, "
        "1 node(s) didn't match Pod's node affinity/selector."
    )
    events = core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=waits,reason=FailedScheduling"
    ).items
    assert events and events[0].type == "Warning" and events[0].message == cond.message
    assert events[0].involved_object.uid and events[0].last_timestamp
    core.delete_namespaced_pod("big", namespace, grace_period_seconds=0)
    pod = wait_phase(core, namespace, "waits", "Running")
    assert pod.spec.node_name == node


def test_no_node_has_enough_gpus(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(
        namespace,
        run_pod("huge", ["true"], resources={"limits": {"nvidia.com/gpu": "5"}}),
    )

    def message() -> str | None:
        conds = core.read_namespaced_pod("huge", namespace).status.conditions or []
        return next((c.message for c in conds if c.type == "PodScheduled"), None)

    assert wait_for("FailedScheduling", message).startswith(
        "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
    )


def test_gpu_env_and_annotation(kubesim: Any, core: client.CoreV1Api, namespace: str) -> None:
    cmd = ["sh", "-c", "echo $NVIDIA_VISIBLE_DEVICES"]
    core.create_namespaced_pod(
        namespace, run_pod("gpu", cmd, resources={"limits": {"nvidia.com/gpu": "2"}})
    )
    core.create_namespaced_pod(namespace, run_pod("cpu", cmd))
    gpu = wait_phase(core, namespace, "gpu", "Succeeded")
    wait_phase(core, namespace, "cpu", "Succeeded")
    assigned = gpu.metadata.annotations["kubesim.gpulab.io/gpus"]
    assert len(assigned.split(",")) == 2
    assert logs(kubesim, namespace, "gpu") == assigned + "\n"
    assert logs(kubesim, namespace, "cpu") == "void\n"


@needs_root
def test_run_as_user_applies(kubesim: Any, core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(
        namespace,
        run_pod(
            "who",
            ["sh", "-c", "id -u; id -g; id -G; touch /home/jovyan/f && echo writable"],
            podSecurityContext={"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 100},
            volumes=[{"name": "home", "emptyDir": {}}],
            volumeMounts=[{"name": "home", "mountPath": "/home/jovyan"}],
        ),
    )
    wait_phase(core, namespace, "who", "Succeeded")
    uid, gid, groups, writable = logs(kubesim, namespace, "who").splitlines()
    assert (uid, gid, writable) == ("1000", "1000", "writable")
    assert "100" in groups.split()


def test_run_as_non_root_without_user_fails(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(
        namespace, run_pod("nonroot", ["true"], securityContext={"runAsNonRoot": True})
    )

    def waiting() -> Any:
        statuses = core.read_namespaced_pod("nonroot", namespace).status.container_statuses
        return statuses and statuses[0].state.waiting and statuses[0].state.waiting.message

    wait_for("CreateContainerConfigError", waiting)
    state = core.read_namespaced_pod("nonroot", namespace).status.container_statuses[0].state
    assert state.waiting.reason == "CreateContainerConfigError"
    assert "runAsNonRoot" in state.waiting.message


@needs_root
def test_read_only_mount_is_read_only(kubesim: Any, core: client.CoreV1Api, namespace: str) -> None:
    make_pvc(core, namespace, "data")
    (kubesim.data_dir / "volumes" / namespace / "data").mkdir(parents=True, exist_ok=True)
    (kubesim.data_dir / "volumes" / namespace / "data" / "in.txt").write_text("dataset\n")
    core.create_namespaced_pod(
        namespace,
        run_pod(
            "ro",
            ["sh", "-c", "cat /datasets/d/in.txt; touch /datasets/d/new || echo refused"],
            volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
            volumeMounts=[{"name": "d", "mountPath": "/datasets/d", "readOnly": True}],
        ),
    )
    wait_phase(core, namespace, "ro", "Succeeded")
    out = logs(kubesim, namespace, "ro")
    assert out.startswith("dataset\n") and "Read-only file system" in out and "refused" in out
    assert not (kubesim.data_dir / "volumes" / namespace / "data" / "new").exists()


def test_pvc_folder_outlives_pods(kubesim: Any, core: client.CoreV1Api, namespace: str) -> None:
    make_pvc(core, namespace, "home")
    mount = {
        "volumes": [{"name": "h", "persistentVolumeClaim": {"claimName": "home"}}],
        "volumeMounts": [{"name": "h", "mountPath": "/home/jovyan", "subPath": "sub"}],
    }
    core.create_namespaced_pod(
        namespace, run_pod("writer", ["sh", "-c", "echo kept > /home/jovyan/f"], **mount)
    )
    wait_phase(core, namespace, "writer", "Succeeded")
    core.delete_namespaced_pod("writer", namespace)
    wait_gone(core, namespace, "writer")
    mount = {
        "volumes": [{"name": "h", "persistentVolumeClaim": {"claimName": "home"}}],
        "volumeMounts": [{"name": "h", "mountPath": "/home/jovyan", "subPath": "sub"}],
    }
    core.create_namespaced_pod(namespace, run_pod("reader", ["cat", "/home/jovyan/f"], **mount))
    wait_phase(core, namespace, "reader", "Succeeded")
    assert logs(kubesim, namespace, "reader") == "kept\n"
    pvc = core.read_namespaced_persistent_volume_claim("home", namespace)
    assert pvc.status.phase == "Bound"
    folder = kubesim.data_dir / "volumes" / namespace / "home"
    assert (folder / "sub" / "f").exists()
    core.delete_namespaced_persistent_volume_claim("home", namespace)
    wait_for("the claim's folder to go", lambda: not folder.exists())


def test_secret_and_configmap_env_and_volumes(
    kubesim: Any, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "s"}, "stringData": {"token": "s3cret", "k2": "v2"}}
    )
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "c"}, "data": {"mode": "fast"}}
    )
    script = 'echo "$TOKEN $MODE $CFG_mode"; cat /etc/s/token; echo; cat /etc/c/mode; echo; stat -c %a /etc/s/token'
    core.create_namespaced_pod(
        namespace,
        run_pod(
            "cfg",
            ["sh", "-c", script],
            env=[
                {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "mode"}}},
            ],
            envFrom=[{"configMapRef": {"name": "c"}, "prefix": "CFG_"}],
            volumes=[
                {"name": "s", "secret": {"secretName": "s", "defaultMode": 0o400}},
                {"name": "c", "configMap": {"name": "c"}},
            ],
            volumeMounts=[
                {"name": "s", "mountPath": "/etc/s"},
                {"name": "c", "mountPath": "/etc/c"},
            ],
        ),
    )
    wait_phase(core, namespace, "cfg", "Succeeded")
    assert logs(kubesim, namespace, "cfg") == "s3cret fast fast\ns3cret\nfast\n400\n"


def test_downward_api_env(kubesim: Any, core: client.CoreV1Api, namespace: str) -> None:
    fields = {
        "POD_IP": "status.podIP",
        "POD_NAME": "metadata.name",
        "POD_NS": "metadata.namespace",
        "NODE": "spec.nodeName",
        "APP": "metadata.labels['app']",
    }
    env = [{"name": k, "valueFrom": {"fieldRef": {"fieldPath": v}}} for k, v in fields.items()]
    env.append({"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}})
    body = run_pod(
        "downward",
        ["sh", "-c", "echo $POD_IP $POD_NAME $POD_NS $NODE $APP $CPU"],
        env=env,
        resources={"limits": {"cpu": "1500m"}},
    )
    body["metadata"]["labels"] = {"app": "demo"}
    core.create_namespaced_pod(namespace, body)
    pod = wait_phase(core, namespace, "downward", "Succeeded")
    assert logs(kubesim, namespace, "downward").split() == [
        pod.status.pod_ip,
        "downward",
        namespace,
        pod.spec.node_name,
        "demo",
        "2",
    ]


def test_two_servers_on_port_8888(core: client.CoreV1Api, namespace: str) -> None:
    import sys

    for name in ("web-a", "web-b"):
        core.create_namespaced_pod(
            namespace,
            run_pod(
                name,
                [sys.executable, "-m", "http.server", "8888", "--bind", "0.0.0.0"],
                restart="Always",
                ports=[{"name": "http", "containerPort": 8888}],
                readinessProbe={"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2},
            ),
        )
    ips = []
    for name in ("web-a", "web-b"):
        wait_for(
            f"{name} ready",
            lambda n=name: (
                all(
                    cs.ready
                    for cs in core.read_namespaced_pod(n, namespace).status.container_statuses
                    or [0]
                    if cs
                )
                and core.read_namespaced_pod(n, namespace).status.container_statuses
            ),
        )
        ips.append(core.read_namespaced_pod(name, namespace).status.pod_ip)
    assert len(set(ips)) == 2
    for ip in ips:
        with urllib.request.urlopen(f"http://{ip}:8888/", timeout=10) as resp:  # noqa: S310
            assert resp.status == 200


def test_kubectl_logs_follow_ends_with_the_container(kubesim: Any, namespace: str) -> None:
    manifest = run_pod("counter", ["sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.2; done"])
    import json

    kubesim.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(manifest))

    def started() -> bool:
        # Running, or already Succeeded: the loop takes 0.6 s, less than kubectl may take to
        # start on a busy machine (`kubectl wait --for=...Running` then never returns).
        got = kubesim.kubectl(
            "get", "-n", namespace, "pod/counter", "-o", "jsonpath={.status.phase}"
        )
        return got.stdout in ("Running", "Succeeded")

    wait_for("the counter pod to start", started)
    out = kubesim.kubectl("logs", "-f", "-n", namespace, "counter").stdout
    assert out.split()[-1] == "3"


def test_pod_active_deadline(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_pod(
        namespace, run_pod("bounded", ["sleep", "300"], activeDeadlineSeconds=1)
    )
    pod = wait_phase(core, namespace, "bounded", "Failed")
    assert pod.status.reason == "DeadlineExceeded"
    assert pod.status.container_statuses[0].state.terminated is not None


def test_init_containers_run_first(kubesim: Any, core: client.CoreV1Api, namespace: str) -> None:
    body = run_pod(
        "init",
        ["cat", "/work/greeting"],
        volumes=[{"name": "w", "emptyDir": {}}],
        volumeMounts=[{"name": "w", "mountPath": "/work"}],
    )
    body["spec"]["initContainers"] = [
        {
            "name": "prepare",
            "image": "busybox:1.36",
            "command": ["sh", "-c", "echo prepared > /work/greeting"],
            "volumeMounts": [{"name": "w", "mountPath": "/work"}],
        }
    ]
    core.create_namespaced_pod(namespace, body)
    pod = wait_phase(core, namespace, "init", "Succeeded", "Failed")
    assert pod.status.phase == "Succeeded"
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 0
    assert logs(kubesim, namespace, "init") == "prepared\n"
    assert logs(kubesim, namespace, "init", "-c", "prepare") == ""


@needs_root
def test_memory_empty_dir_is_a_sized_tmpfs(
    kubesim: Any, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_pod(
        namespace,
        run_pod(
            "shm",
            ["sh", "-c", "df -k /dev/shm | tail -1; grep ' /dev/shm ' /proc/mounts | tail -1"],
            volumes=[{"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}],
            volumeMounts=[{"name": "shm", "mountPath": "/dev/shm"}],
        ),
    )
    wait_phase(core, namespace, "shm", "Succeeded")
    df, mount = logs(kubesim, namespace, "shm").splitlines()
    assert df.split()[1] == str(64 * 1024)
    assert mount.split()[2] == "tmpfs"


def test_readiness_probe_gates_ready(core: client.CoreV1Api, namespace: str) -> None:
    import sys

    # Listens only after a while: Running, but not Ready until the probe passes.
    code = "import time, http.server as h; time.sleep(2); h.test(h.SimpleHTTPRequestHandler, port=8080, bind='0.0.0.0')"
    core.create_namespaced_pod(
        namespace,
        run_pod(
            "late",
            [sys.executable, "-c", code],
            restart="Always",
            readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1},
        ),
    )
    wait_phase(core, namespace, "late", "Running")
    first = core.read_namespaced_pod("late", namespace)
    assert first.status.container_statuses[0].started is True
    wait_for(
        "ready",
        lambda: core.read_namespaced_pod("late", namespace).status.container_statuses[0].ready,
    )
    conds = {
        c.type: c.status for c in core.read_namespaced_pod("late", namespace).status.conditions
    }
    assert conds["Ready"] == "True" and conds["ContainersReady"] == "True"


def test_downward_api_and_projected_volumes(
    kubesim: Any, core: client.CoreV1Api, namespace: str
) -> None:
    core.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"a.conf": "x=1"}}
    )
    body = run_pod(
        "files",
        [
            "sh",
            "-c",
            "cat /etc/podinfo/name; echo; cat /etc/podinfo/labels; echo; cat /etc/all/conf/a",
        ],
        volumes=[
            {
                "name": "podinfo",
                "downwardAPI": {
                    "items": [
                        {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    ]
                },
            },
            {
                "name": "all",
                "projected": {
                    "sources": [
                        {
                            "configMap": {
                                "name": "settings",
                                "items": [{"key": "a.conf", "path": "conf/a"}],
                            }
                        }
                    ]
                },
            },
        ],
        volumeMounts=[
            {"name": "podinfo", "mountPath": "/etc/podinfo"},
            {"name": "all", "mountPath": "/etc/all"},
        ],
    )
    body["metadata"]["labels"] = {"tier": "web"}
    core.create_namespaced_pod(namespace, body)
    wait_phase(core, namespace, "files", "Succeeded")
    assert logs(kubesim, namespace, "files") == 'files\ntier="web"\nx=1\n'


def test_sigterm_ignored_then_killed_after_grace(
    kubesim: Any, core: client.CoreV1Api, namespace: str
) -> None:
    make_pvc(core, namespace, "state")
    marker = f"stubborn-{uuid.uuid4().hex[:8]}"
    script = f'trap "" TERM; : {marker}; while true; do sleep 0.2; done'
    core.create_namespaced_pod(
        namespace,
        run_pod(
            "stubborn",
            ["sh", "-c", script],
            volumes=[{"name": "state", "persistentVolumeClaim": {"claimName": "state"}}],
            volumeMounts=[{"name": "state", "mountPath": "/state"}],
        ),
    )
    pid = _host_pid(marker)
    core.delete_namespaced_pod("stubborn", namespace, grace_period_seconds=1)
    wait_gone(core, namespace, "stubborn")
    assert not pid_alive(pid)  # the pod object goes only after its processes are dead
    events = core.list_namespaced_event(
        namespace, field_selector="involvedObject.name=stubborn,reason=Killing"
    ).items
    assert events and events[0].message == "Stopping container main"
