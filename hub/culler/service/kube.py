"""The culler's Kubernetes access: a watch cache of the Nodes, for the dashboard's capacity and
per-node view, and, when Kueue is installed, of Kueue's Workloads and LocalQueues, for the
dashboard's queues (no API call per render; the dashboard cancels jobs through the jobs
gateway: :mod:`.job_cancel`).

RBAC the service needs: get/list/watch pods and nodes; list/watch ``workloads`` and
``localqueues`` of ``kueue.x-k8s.io`` (helm-values). Calls go through gpulab's one
client (:class:`gpulab.hub.kube.KubeClient`) with the User-Agent ``gpulab-culler/<version>``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ...kube import KubeClient, WatchCache, resource_path
from ...kueue.detect import KueueStatus, detect_kueue
from ...kueue.names import GROUP_VERSION
from .queues import QueuesSeen

__all__ = ["USER_AGENT", "KubeAccess"]

USER_AGENT = "gpulab-culler/0.1"

log = logging.getLogger("gpulab.culler")


class KubeAccess:
    """The culler's calls, in ``namespace`` (None: all namespaces)."""

    def __init__(self, kube: KubeClient, namespace: str | None) -> None:
        self.kube = kube
        self.namespace = namespace
        self.nodes = WatchCache(kube, resource_path("v1", "nodes"), name="nodes")
        self.kueue: KueueStatus | None = None  # None: not asked yet
        self._queues: asyncio.Task[None] | None = None
        self.workloads = WatchCache(
            kube, resource_path(GROUP_VERSION, "workloads", namespace), name="workloads"
        )
        self.local_queues = WatchCache(
            kube, resource_path(GROUP_VERSION, "localqueues", namespace), name="localqueues"
        )

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

    def watch_queues(self) -> None:
        """In the background (a slow or absent cluster never holds up the culler's start):
        ask once whether Kueue is installed and say so in the log; if it is, keep
        :attr:`workloads` and :attr:`local_queues` current."""
        self._queues = asyncio.get_running_loop().create_task(self._detect_and_watch())

    async def _detect_and_watch(self) -> None:
        self.kueue = await detect_kueue(self.kube)
        log.info("%s", self.kueue.message)
        if self.kueue.available:
            self.workloads.start()
            self.local_queues.start()

    def queue_objects(self) -> QueuesSeen:
        """Whether Kueue is installed, and its Workloads and LocalQueues as last seen."""
        return QueuesSeen(
            self.kueue, list(self.workloads.objects.values()), dict(self.local_queues.objects)
        )

    def node_objects(self) -> list[dict[str, Any]] | None:
        """The nodes as last seen (None until the first list is in)."""
        return list(self.nodes.objects.values()) if self.nodes.synced.is_set() else None

    async def close(self) -> None:
        if self._queues is not None:
            self._queues.cancel()
        for cache in (self.nodes, self.workloads, self.local_queues):
            await cache.stop()
        await self.kube.close()
