"""Node objects for the simulated nodes, registered when the kubelet starts.

A Node advertises what the scheduler binds against: capacity and allocatable cpu, memory,
pods, the GPU extended resource and any GPU slices (MIG profiles, time-sliced GPUs), the labels GPU operators set (``nvidia.com/gpu.product``,
``nvidia.com/gpu.count``) and the configured taints.
"""

from __future__ import annotations

from typing import Any

from gpulab.kubesim.config import NodeConfig
from gpulab.kubesim.store import Store, now_rfc3339, resource

KUBELET_VERSION = "v1.31.0"
MAX_PODS = "110"
HOST_IP = "127.0.0.1"


def node_manifest(node: NodeConfig) -> dict[str, Any]:
    capacity = {"cpu": str(node.cpu), "memory": str(node.memory), "pods": MAX_PODS}
    if node.gpus:
        capacity[node.gpu_resource] = str(node.gpus)
    capacity.update({name: str(count) for name, count in node.slices.items() if count > 0})
    labels = {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
    }
    if node.gpus:
        labels["nvidia.com/gpu.product"] = node.gpu_product
        labels["nvidia.com/gpu.count"] = str(node.gpus)
        labels["nvidia.com/gpu.present"] = "true"
    labels.update(node.labels)
    now = now_rfc3339()
    conditions = [
        {
            "type": t,
            "status": "False",
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        for t, reason, message in (
            ("MemoryPressure", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
            ("DiskPressure", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        )
    ]
    conditions.append(
        {
            "type": "Ready",
            "status": "True",
            "reason": "KubeletReady",
            "message": "kubelet is posting ready status (kubesim)",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
    )
    spec: dict[str, Any] = {}
    if node.taints:
        spec["taints"] = [dict(t) for t in node.taints]
    return {
        "metadata": {"name": node.name, "labels": labels},
        "spec": spec,
        "status": {
            "capacity": capacity,
            "allocatable": dict(capacity),
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": HOST_IP},
                {"type": "Hostname", "address": node.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION,
                "containerRuntimeVersion": "kubesim://1.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "kubesim (local processes)",
                "kernelVersion": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


def register_nodes(store: Store, nodes: list[NodeConfig]) -> None:
    """Create (or refresh) one Node per configured node."""
    rt = resource("nodes")
    for node in nodes:
        manifest = node_manifest(node)
        if store.get(rt, None, node.name) is None:
            store.create(rt, None, manifest)
        else:

            def refresh(o: dict[str, Any], m: dict[str, Any] = manifest) -> None:
                o["metadata"]["labels"] = m["metadata"]["labels"]
                o["spec"], o["status"] = m["spec"], m["status"]

            store.mutate(rt, None, node.name, refresh)
