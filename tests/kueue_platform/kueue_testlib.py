"""What the Kueue-on platform's tests share: reading Kueue's objects from kubesim, a user's
server through the hub, a queued Job made as the jobs gateway makes one, and polling."""

from __future__ import annotations

import contextlib
import time
import urllib.error
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from gpulab.hub.kueue.names import PRIORITY_BATCH, user_local_queue
from gpulab.hub.kueue.render import render_user
from gpulab.hub.kueue.sync import object_path
from gpulab.hub.names import escape_username
from gpulab.hub.workload.labels import (
    COMPONENT_LABEL,
    JOB_COMPONENT,
    SERVER_COMPONENT,
    USER_LABEL,
)
from gpulab.hub.workload.pod import queue_labels, workload_labels
from gpulab.hub.workload.queueing import owner_key, workload_gpus, workload_state
from gpulab.hub.workload.security import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT

T = TypeVar("T")

POLICY = Path(__file__).resolve().parent / "policy.yaml"

NAMESPACE = "default"  # the platform's users' namespace (tests/gateway/gateway_testlib.py)
KUEUE = "/apis/kueue.x-k8s.io/v1beta2"
GPU = "nvidia.com/gpu"
IMAGE = "harbor.local/nlp/pytorch:2.4-cuda12.4"
DEADLINE = 120.0


def new_user(platform: Any, group: str, prefix: str = "kq") -> str:
    """A fresh hub user in ``group`` (made for one test)."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    platform.api("POST", f"/hub/api/users/{name}")
    with contextlib.suppress(urllib.error.HTTPError):
        platform.api("POST", f"/hub/api/groups/{group}")
    platform.api("POST", f"/hub/api/groups/{group}/users", {"users": [name]})
    return name


def poll(value: Callable[[], T], what: str, limit: float = DEADLINE) -> T:
    """``value()`` once it is truthy (a bound on waiting, not a timed assertion)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        got = value()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"never saw: {what}")


class Cluster:
    """kubesim, as a cluster admin: Workloads, LocalQueues, pods and Jobs of the namespace."""

    def __init__(self, platform: Any) -> None:
        self.kube: httpx.Client = platform.kube_client()

    def close(self) -> None:
        self.kube.close()

    def items(self, path: str, **params: str) -> list[dict[str, Any]]:
        r = self.kube.get(path, params=params or None)
        r.raise_for_status()
        return r.json()["items"]

    def workloads(self) -> list[dict[str, Any]]:
        return self.items(f"{KUEUE}/namespaces/{NAMESPACE}/workloads")

    def local_queues(self) -> dict[str, dict[str, Any]]:
        queues = self.items(f"{KUEUE}/namespaces/{NAMESPACE}/localqueues")
        return {q["metadata"]["name"]: q for q in queues}

    def pod(self, name: str) -> dict[str, Any] | None:
        r = self.kube.get(f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
        return r.json() if r.status_code == 200 else None

    def workload_of(self, kind: str, name: str) -> dict[str, Any] | None:
        live = [
            w
            for w in self.workloads()
            if owner_key(w) == (kind, NAMESPACE, name) and workload_state(w) != "finished"
        ]
        return live[0] if live else None

    def admitted_gpus(self, workloads: list[dict[str, Any]], queues: set[str]) -> int:
        """GPUs of the admitted Workloads that joined one of ``queues`` (LocalQueue names)."""
        return sum(
            workload_gpus(w, [GPU])
            for w in workloads
            if w["spec"].get("queueName") in queues and workload_state(w) == "admitted"
        )

    def apply(self, objects: list[dict[str, Any]]) -> None:
        """Create rendered Kueue objects (one already there is kept)."""
        for obj in objects:
            r = self.kube.post(object_path(obj, collection=True), json=obj)
            assert r.status_code in (201, 409), r.text

    def ensure_queues(self, policy: Any, user: str, group: str) -> None:
        """``user``'s ClusterQueue and LocalQueues, made as the hub and the gateway make them
        on a user's first start or submit."""
        self.apply(render_user(policy, user, group, NAMESPACE))

    # ------------------------------------------------------------------ Jobs
    def submit_queued_job(self, user: str, group: str, gpus: int) -> str:
        """A suspended Job in ``user``'s LocalQueue, as the jobs gateway submits one with Kueue
        (the queue and priority labels, gpulab's labels, a restricted pod holding ``gpus``)."""
        name = f"kq-job-{uuid.uuid4().hex[:8]}"
        labels = {
            **workload_labels(
                JOB_COMPONENT, username=user, group=group, gpus=gpus, gpu_type="a100"
            ),
            **queue_labels(user_local_queue(user), PRIORITY_BATCH),
        }
        container = {
            "name": "main",
            "image": IMAGE,
            "command": ["python", "-c", "import time; time.sleep(900)"],
            "resources": {"limits": {GPU: str(gpus)}, "requests": {GPU: str(gpus)}},
            "securityContext": CONTAINER_SECURITY_CONTEXT,
        }
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "spec": {
                "suspend": True,
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "automountServiceAccountToken": False,
                        "securityContext": POD_SECURITY_CONTEXT,
                        "tolerations": [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}],
                        "containers": [container],
                    },
                },
            },
        }
        r = self.kube.post(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs", json=job)
        assert r.status_code == 201, r.text
        return name

    def delete_job(self, name: str) -> None:
        self.kube.request(
            "DELETE",
            f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{name}",
            json={"propagationPolicy": "Foreground"},
        )

    def user_pods(self, user: str) -> list[dict[str, Any]]:
        return self.items(
            f"/api/v1/namespaces/{NAMESPACE}/pods",
            labelSelector=f"{USER_LABEL}={escape_username(user)}",
        )


class Hub:
    """The hub's REST API as an admin, for one user's default server."""

    def __init__(self, platform: Any, user: str) -> None:
        self.user = user
        self.client = httpx.Client(
            base_url=platform.hub_url,
            headers={"Authorization": f"token {platform.admin_token}"},
            timeout=60,
        )

    def close(self) -> None:
        self.client.close()

    def server(self) -> dict[str, Any] | None:
        return self.client.get(f"/hub/api/users/{self.user}").json()["servers"].get("")

    def start(self, gpus: int = 1) -> int:
        r = self.client.post(
            f"/hub/api/users/{self.user}/server",
            json={"profile": "gpu", "gpus": str(gpus), "image": IMAGE},
        )
        return r.status_code

    def stop(self) -> None:
        self.client.delete(f"/hub/api/users/{self.user}/server")
        poll(lambda: self.server() is None, f"{self.user}'s server stopped")


def server_pod(cluster: Cluster, user: str) -> dict[str, Any] | None:
    """``user``'s server pod (found by gpulab's labels: KubeSpawner names it)."""
    pods = cluster.items(
        f"/api/v1/namespaces/{NAMESPACE}/pods",
        labelSelector=f"{USER_LABEL}={escape_username(user)},{COMPONENT_LABEL}={SERVER_COMPONENT}",
    )
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return live[0] if live else None
