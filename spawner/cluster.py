"""A watch-backed view of the cluster for quotas and the spawn page (no list call per request).

KubeSpawner's own reflectors watch only its singleuser pods (``component=singleuser-server``)
and key objects by ``namespace/name``, which cluster-scoped Nodes do not have. gpulab needs
every pod that holds GPUs (jobs included) and the nodes, so :class:`ClusterView` keeps its own
watch caches (:class:`~gpulab.hub.kube.WatchCache`) over the ApiClient KubeSpawner configured
(so the hub's kubeconfig and user agent apply): three, shared by every spawner of the hub:

* pods: all namespaces when ``cluster_wide`` (GPU availability needs pods of every owner), else
  the hub's namespace; non-terminated pods only (field selector);
* nodes (``cluster_wide`` only): for GPU availability;
* jobs (``batch/v1``, the namespace, ``app.kubernetes.io/managed-by=gpulab``): for quotas;
* Kueue's Workloads (the namespace; only once a start finds Kueue installed,
  :meth:`ClusterView.queue_ready`): where a queued server stands, for its progress page.

RBAC: list/watch pods and jobs in the namespace; for the spawn page's availability, list/watch
nodes and pods cluster-wide (a ClusterRole). When the cluster-wide watch is refused (403), the
view falls back to the namespace and shows no availability.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from gpulab.hub.kube import KubeClient, WatchCache, resource_path
from gpulab.hub.policy import GpuType
from gpulab.hub.workload.labels import GROUP_LABEL, JOB_ID_LABEL, MANAGED_SELECTOR, labels_of
from gpulab.hub.workload.queueing import owner_key
from gpulab.hub.workload.reservations import Reservation
from kubespawner.clients import shared_client

from .checks import GpuUsage
from .form import GpuTypeAvailability
from .quota import count_usage, gpu_availability

__all__ = ["ClusterView", "cluster_view"]

log = logging.getLogger("gpulab.spawner.cluster")

LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"
KUEUE_API = "kueue.x-k8s.io/v1beta2"
LIST_TIMEOUT = 60.0


class ClusterView:
    """Pods, nodes and jobs for quotas and GPU availability (see the module docstring)."""

    def __init__(self, namespace: str, *, cluster_wide: bool = True) -> None:
        self.namespace = namespace
        self.cluster_wide = cluster_wide
        self.pods: WatchCache | None = None
        self.nodes: WatchCache | None = None
        self.jobs: WatchCache | None = None
        self.workloads: WatchCache | None = None
        self._started: asyncio.Task[None] | None = None
        self._workloads_started: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        # KubeSpawner's shared ApiClient, borrowed: its configuration and user agent are the hub's.
        kube = KubeClient.of(shared_client("CoreV1Api").api_client, timeout=LIST_TIMEOUT)
        if self.cluster_wide:
            pods = WatchCache(
                kube, resource_path("v1", "pods"), name="pods", field_selector=LIVE_PODS
            )
            nodes = WatchCache(kube, resource_path("v1", "nodes"), name="nodes")
            try:
                await asyncio.gather(pods.start_synced(), nodes.start_synced())
                self.pods, self.nodes = pods, nodes
            except Exception as exc:
                log.warning(
                    "cannot watch pods and nodes cluster-wide (%s): GPU availability is off; "
                    "quotas use the namespace %s",
                    exc,
                    self.namespace,
                )
                await pods.stop()
                await nodes.stop()
                self.nodes = None
        if self.pods is None:
            pods = WatchCache(
                kube,
                resource_path("v1", "pods", self.namespace),
                name="pods",
                field_selector=LIVE_PODS,
            )
            await pods.start_synced()
            self.pods = pods
        jobs = WatchCache(
            kube,
            resource_path("batch/v1", "jobs", self.namespace),
            name="jobs",
            label_selector=MANAGED_SELECTOR,
        )
        try:
            await jobs.start_synced()
            self.jobs = jobs
        except Exception as exc:
            log.warning(
                "cannot watch jobs in %s (%s): quotas count job pods only", self.namespace, exc
            )

    async def _start_workloads(self) -> None:
        kube = KubeClient.of(shared_client("CoreV1Api").api_client, timeout=LIST_TIMEOUT)
        workloads = WatchCache(
            kube, resource_path(KUEUE_API, "workloads", self.namespace), name="workloads"
        )
        await workloads.start_synced()
        self.workloads = workloads

    async def queue_ready(self) -> ClusterView:
        """Also watch Kueue's Workloads (started once, by the first start that queues)."""
        await self.ready()
        task = self._workloads_started
        if task is None or (task.done() and task.exception()):
            task = self._workloads_started = asyncio.get_running_loop().create_task(
                self._start_workloads()
            )
        await asyncio.shield(task)
        return self

    def group_of_workload(self, workload: Mapping[str, object]) -> str | None:
        """The quota group of a Workload's owner (a server's Pod, a job's Job), from the
        owner's ``gpulab.io/group`` label; None when the owner is not in the view."""
        key = owner_key(workload)
        if key is None:
            return None
        kind, namespace, name = key
        cache = self.pods if kind == "Pod" else self.jobs if kind == "Job" else None
        owner = cache.objects.get(f"{namespace}/{name}") if cache else None
        return labels_of(owner).get(GROUP_LABEL) if owner else None

    async def ready(self) -> ClusterView:
        """Start the watches once (concurrent callers wait for the same start)."""
        if self._started is None or (self._started.done() and self._started.exception()):
            self._started = asyncio.get_running_loop().create_task(self._start())
        await asyncio.shield(self._started)
        return self

    def usage(self, user_label: str, group: str) -> GpuUsage:
        pods = list(self.pods.objects.values()) if self.pods else []
        jobs = list(self.jobs.objects.values()) if self.jobs else []
        return count_usage(pods, jobs, user=user_label, group=group)

    def availability(
        self, gpu_types: Mapping[str, GpuType]
    ) -> dict[str, GpuTypeAvailability] | None:
        if self.nodes is None or self.pods is None:
            return None
        return gpu_availability(
            list(self.nodes.objects.values()), list(self.pods.objects.values()), gpu_types
        )

    def has_pod(self, namespace: str, name: str) -> bool:
        return bool(self.pods and f"{namespace}/{name}" in self.pods.objects)

    def holds(self, entry: Reservation) -> bool:
        """Whether the view holds a quota reservation's object (then :meth:`usage` counts it):
        its pod, or for a job its Job or one of its pods (the jobs watch may be off)."""
        if entry.kind == "pod":
            return self.has_pod(self.namespace, entry.name)
        if self.jobs and f"{self.namespace}/{entry.name}" in self.jobs.objects:
            return True
        pods = self.pods.objects.values() if self.pods else ()
        return any(labels_of(p).get(JOB_ID_LABEL) == entry.name for p in pods)

    async def stop(self) -> None:
        for cache in (self.pods, self.nodes, self.jobs, self.workloads):
            if cache is not None:
                await cache.stop()


_views: dict[tuple[int, str, bool], ClusterView] = {}


def cluster_view(namespace: str, *, cluster_wide: bool = True) -> ClusterView:
    """The hub-wide view for this event loop and namespace (created on first use)."""
    key = (id(asyncio.get_running_loop()), namespace, cluster_wide)
    view = _views.get(key)
    if view is None:
        view = _views[key] = ClusterView(namespace, cluster_wide=cluster_wide)
    return view
