"""The culler's Kubernetes access: GPU capacity from Nodes (the dashboard cancels jobs through
the jobs gateway: :mod:`.job_cancel`).

RBAC the service needs: get/list/watch pods and nodes (helm-values). Calls go through gpulab's one
client (:class:`gpulab.hub.kube.KubeClient`) with the User-Agent ``gpulab-culler/<version>``.
"""

from __future__ import annotations

from typing import Any

from ...kube import KubeClient, resource_path

__all__ = ["USER_AGENT", "KubeAccess"]

USER_AGENT = "gpulab-culler/0.1"


class KubeAccess:
    """The culler's calls, in ``namespace`` (None: all namespaces)."""

    def __init__(self, kube: KubeClient, namespace: str | None) -> None:
        self.kube = kube
        self.namespace = namespace

    @classmethod
    async def connect(cls, kubeconfig: str | None, namespace: str | None) -> KubeAccess:
        """See :func:`gpulab.hub.kube.load_configuration`; KubeError when there is no cluster."""
        return cls(await KubeClient.connect(kubeconfig, user_agent=USER_AGENT), namespace)

    @property
    def api_client(self) -> Any:
        """The underlying ``kubernetes_asyncio`` ApiClient (the usage recorder shares it)."""
        return self.kube.api_client

    async def close(self) -> None:
        await self.kube.close()

    async def gpu_capacity(self) -> dict[str, int]:
        """GPU type (``nvidia.com/gpu.product``) -> allocatable ``*/gpu`` summed over nodes."""
        nodes, _ = await self.kube.list(resource_path("v1", "nodes"))
        out: dict[str, int] = {}
        for node in nodes:
            labels = (node.get("metadata") or {}).get("labels") or {}
            alloc = (node.get("status") or {}).get("allocatable") or {}
            for name, value in alloc.items():
                if name.endswith("/gpu") and str(value).isdigit() and int(value) > 0:
                    gpu_type = labels.get("nvidia.com/gpu.product", "")
                    out[gpu_type] = out.get(gpu_type, 0) + int(value)
        return out
