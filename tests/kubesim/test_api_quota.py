"""ResourceQuota admission and status, through the official client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubesim_testlib import pod


def _gpu_pod(name: str, gpus: int) -> dict[str, Any]:
    body = pod(name)
    # Only a limit: for extended resources the request defaults to it.
    body["spec"]["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return body


def _quota(core: Any, ns: str, hard: dict[str, str]) -> None:
    core.create_namespaced_resource_quota(
        ns, {"metadata": {"name": "gpus"}, "spec": {"hard": hard}}
    )


def test_pod_over_gpu_quota_is_403_exceeded_quota(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    _quota(core, namespace, {"requests.nvidia.com/gpu": "4"})
    core.create_namespaced_pod(namespace, _gpu_pod("a", 2))
    core.create_namespaced_pod(namespace, _gpu_pod("b", 2))
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod(namespace, _gpu_pod("c", 2))
    status = json.loads(e.value.body)
    assert (e.value.status, status["reason"]) == (403, "Forbidden")
    assert status["message"] == (
        'pods "c" is forbidden: exceeded quota: gpus, requested: requests.nvidia.com/gpu=2, '
        "used: requests.nvidia.com/gpu=4, limited: requests.nvidia.com/gpu=4"
    )


def test_quota_status_used_follows_pods(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    _quota(core, namespace, {"requests.nvidia.com/gpu": "8", "pods": "10"})
    core.create_namespaced_pod(namespace, _gpu_pod("a", 3))
    status = core.read_namespaced_resource_quota("gpus", namespace).status
    assert status.hard == {"requests.nvidia.com/gpu": "8", "pods": "10"}
    assert status.used == {"requests.nvidia.com/gpu": "3", "pods": "1"}
    core.delete_namespaced_pod("a", namespace)
    assert (
        core.read_namespaced_resource_quota("gpus", namespace).status.used[
            "requests.nvidia.com/gpu"
        ]
        == "0"
    )


def test_terminal_pods_do_not_count_against_quota(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    _quota(core, namespace, {"requests.nvidia.com/gpu": "2"})
    core.create_namespaced_pod(namespace, _gpu_pod("done", 2))
    core.patch_namespaced_pod_status("done", namespace, {"status": {"phase": "Succeeded"}})
    core.create_namespaced_pod(namespace, _gpu_pod("next", 2))  # admitted: "done" is terminal


def test_cpu_quota_requires_cpu_requests(k8s: Any, namespace: str) -> None:
    core = client.CoreV1Api(k8s)
    _quota(core, namespace, {"requests.cpu": "2"})
    with pytest.raises(ApiException) as e:
        core.create_namespaced_pod(namespace, pod("no-cpu"))
    assert (
        e.value.status == 403 and "must specify requests.cpu" in json.loads(e.value.body)["message"]
    )
