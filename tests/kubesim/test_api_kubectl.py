"""kubectl against kubesim: the commands people and scripts use."""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import yaml
from kubesim_testlib import KubesimProcess, pod


def _apply(kubesim: KubesimProcess, ns: str, manifest: str) -> subprocess.CompletedProcess[str]:
    return kubesim.kubectl("apply", "-n", ns, "-f", "-", input=textwrap.dedent(manifest))


def test_kubectl_reports_server_version_1_31(kubesim: KubesimProcess) -> None:
    out = json.loads(kubesim.kubectl("version", "-o", "json").stdout)
    assert out["serverVersion"]["gitVersion"].startswith("v1.31.")


def test_kubectl_get_nodes_prints_server_side_table(kubesim: KubesimProcess) -> None:
    out = kubesim.kubectl("get", "nodes").stdout
    assert out.splitlines()[0].split()[:2] == ["NAME", "STATUS"]
    assert len(out.splitlines()) >= 2


def test_kubectl_create_then_get_pod_table_has_ready_status_restarts_age(
    kubesim: KubesimProcess, namespace: str
) -> None:
    kubesim.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod("web")))
    lines = kubesim.kubectl("get", "pods", "-n", namespace).stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:4] == ["web", "0/1", "Pending", "0"]


def test_kubectl_get_o_json_and_yaml_return_the_object(
    kubesim: KubesimProcess, namespace: str
) -> None:
    kubesim.kubectl("create", "configmap", "cfg", "-n", namespace, "--from-literal=a=1")
    as_json = json.loads(kubesim.kubectl("get", "cm", "cfg", "-n", namespace, "-o", "json").stdout)
    as_yaml = yaml.safe_load(
        kubesim.kubectl("get", "cm", "cfg", "-n", namespace, "-o", "yaml").stdout
    )
    assert as_json["data"] == {"a": "1"} == as_yaml["data"]
    assert as_json["metadata"]["uid"] == as_yaml["metadata"]["uid"]


def test_kubectl_apply_twice_patches_the_object(kubesim: KubesimProcess, namespace: str) -> None:
    manifest = """
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: settings, labels: {tier: a}}
        data: {mode: one, keep: "yes"}
    """
    assert "created" in _apply(kubesim, namespace, manifest).stdout
    second = manifest.replace("mode: one", "mode: two").replace(', keep: "yes"', "")
    assert "configured" in _apply(kubesim, namespace, second).stdout
    cm = json.loads(kubesim.kubectl("get", "cm", "settings", "-n", namespace, "-o", "json").stdout)
    assert cm["data"] == {"mode": "two"}  # the field dropped from the manifest is removed
    assert "kubectl.kubernetes.io/last-applied-configuration" in cm["metadata"]["annotations"]


def test_kubectl_label_selector_filters(kubesim: KubesimProcess, namespace: str) -> None:
    for name, app in (("a", "web"), ("b", "db"), ("c", "web")):
        kubesim.kubectl(
            "create", "-n", namespace, "-f", "-", input=json.dumps(pod(name, labels={"app": app}))
        )
    names = kubesim.kubectl(
        "get", "pods", "-n", namespace, "-l", "app=web", "-o", "name"
    ).stdout.split()
    assert names == ["pod/a", "pod/c"]
    names = kubesim.kubectl(
        "get", "pods", "-n", namespace, "-l", "app notin (web)", "-o", "name"
    ).stdout.split()
    assert names == ["pod/b"]


def test_kubectl_delete_removes_pod(kubesim: KubesimProcess, namespace: str) -> None:
    kubesim.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod("gone")))
    kubesim.kubectl("delete", "pod", "gone", "-n", namespace)
    result = kubesim.kubectl("get", "pod", "gone", "-n", namespace, check=False)
    assert result.returncode != 0 and "NotFound" in result.stderr


def test_kubectl_describe_pod_shows_fields_and_events(
    kubesim: KubesimProcess, namespace: str
) -> None:
    kubesim.kubectl(
        "create", "-n", namespace, "-f", "-", input=json.dumps(pod("desc", labels={"app": "x"}))
    )
    out = kubesim.kubectl("describe", "pod", "desc", "-n", namespace).stdout
    assert "Name:" in out and "desc" in out and "app=x" in out and "busybox:1.36" in out


def test_kubectl_create_rejects_unknown_field_and_bad_name(
    kubesim: KubesimProcess, namespace: str
) -> None:
    bad = pod("Bad_Name")
    bad["spec"]["foo"] = 1
    result = kubesim.kubectl(
        "create", "-n", namespace, "-f", "-", input=json.dumps(bad), check=False
    )
    assert result.returncode != 0
    assert 'unknown field "spec.foo"' in result.stderr
    assert "Bad_Name" in result.stderr and "RFC 1123" in result.stderr


def test_kubectl_get_watch_prints_new_pod(kubesim: KubesimProcess, namespace: str) -> None:
    env = {**os.environ, "KUBECONFIG": str(kubesim.kubeconfig)}
    watcher = subprocess.Popen(
        ["kubectl", "get", "pods", "-n", namespace, "-w", "--request-timeout=30s"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        kubesim.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps(pod("watched")))
        assert watcher.stdout is not None
        seen = []
        for line in watcher.stdout:
            seen.append(line)
            if line.startswith("watched"):
                break
        assert any(line.split()[:3] == ["watched", "0/1", "Pending"] for line in seen)
    finally:
        watcher.kill()
        watcher.wait()


def _write_log(
    kubesim: KubesimProcess, namespace: str, name: str, uid: str, lines: list[str]
) -> Path:
    path = kubesim.data_dir / "pods" / f"{namespace}_{name}_{uid}" / "logs" / "main" / "0.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    path.write_text("".join(f"{stamp} {line}\n" for line in lines))
    return path


def test_kubectl_logs_reads_container_log_file(kubesim: KubesimProcess, namespace: str) -> None:
    kubesim.kubectl(
        "create", "-n", namespace, "-f", "-", input=json.dumps(pod("logger", bound=True))
    )
    uid = kubesim.kubectl(
        "get", "pod", "logger", "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    _write_log(kubesim, namespace, "logger", uid, ["first", "second", "third"])
    assert kubesim.kubectl("logs", "logger", "-n", namespace).stdout == "first\nsecond\nthird\n"
    assert kubesim.kubectl("logs", "logger", "-n", namespace, "--tail=1").stdout == "third\n"
    stamped = kubesim.kubectl("logs", "logger", "-n", namespace, "--timestamps").stdout
    assert stamped.splitlines()[0].endswith("Z first")


def test_kubectl_logs_follow_ends_when_container_terminates(
    kubesim: KubesimProcess, namespace: str
) -> None:
    kubesim.kubectl(
        "create", "-n", namespace, "-f", "-", input=json.dumps(pod("follow", bound=True))
    )
    uid = kubesim.kubectl(
        "get", "pod", "follow", "-n", namespace, "-o", "jsonpath={.metadata.uid}"
    ).stdout
    path = _write_log(kubesim, namespace, "follow", uid, ["hello"])
    env = {**os.environ, "KUBECONFIG": str(kubesim.kubeconfig)}
    follower = subprocess.Popen(
        ["kubectl", "logs", "-f", "follow", "-n", namespace],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert follower.stdout is not None
    assert follower.stdout.readline() == "hello\n"
    with path.open("a") as f:
        f.write(f"{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')} bye\n")
    status = {
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}},
                }
            ],
        }
    }
    kubesim.kubectl(
        "patch",
        "pod",
        "follow",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )
    rest, _ = follower.communicate(timeout=30)
    assert rest == "bye\n" and follower.returncode == 0
