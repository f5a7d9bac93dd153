"""The culler's Kubernetes access: a watch cache of the Nodes, for the dashboard's capacity and
per-node view (no API call per render; the dashboard cancels jobs through the jobs gateway:
:mod:`.job_cancel`).

RBAC the service needs: get/list/watch pods and nodes (helm-values). Calls go through gpulab's one
client (:class:`gpulab.hub.kube.KubeClient`) with the User-Agent ``gpulab-culler/<version>``.
"""

from __future__ import annotations

from typing import Any

from ...kube import KubeClient, WatchCache, resource_path

__all__ = ["USER_AGENT", "KubeAccess"]

USER_AGENT = "gpulab-culler/0.1"


class KubeAccess:
    """The culler's calls, in ``namespace`` (None: all namespaces)."""

    def __init__(self, kube: KubeClient, namespace: str | None) -> None:
        self.kube = kube
        self.namespace = namespace
        self.nodes = WatchCache(kube, resource_path("v1", "nodes"), name="nodes")

    @classmethod
    async def connect(cls, kubeconfig: str | None, namespace: str | None) -> KubeAccess:
        """See :func:`gpulab.hub.kube.load_configuration`; KubeError when there is no cluster."""
        return cls(await KubeClient.connect(kubeconfig, user_agent=USER_AGENT), namespace)

    @property
    def api_client(self) -> Any:
        """The underlying ``kubernetes_asyncio`` ApiClient (the usage recorder shares it)."""
        return self.kube.api_client

    def watch_nodes(self) -> None:
        """Keep :attr:`nodes` current in the background (lists first; retries on errors)."""
        self.nodes.start()

    def node_objects(self) -> list[dict[str, Any]] | None:
        """The nodes as last seen (None until the first list is in)."""
        return list(self.nodes.objects.values()) if self.nodes.synced.is_set() else None

    async def close(self) -> None:
        await self.nodes.stop()
        await self.kube.close()
