"""A watch-backed view of the cluster for quotas and the spawn page (no list call per request).

KubeSpawner's own reflectors watch only its singleuser pods (``component=singleuser-server``)
and key objects by ``namespace/name``, which cluster-scoped Nodes do not have. gpulab needs
every pod that holds GPUs (jobs included) and the nodes, so :class:`Reflector` is a small
list-then-watch cache in the same style (relist on 410 Gone or error, with backoff), built on
the same shared ``kubernetes_asyncio`` client KubeSpawner configured.

:class:`ClusterView` holds three of them, shared by every spawner of the hub process:

* pods: all namespaces when ``cluster_wide`` (GPU availability needs pods of every owner), else
  the hub's namespace; non-terminated pods only (field selector);
* nodes (``cluster_wide`` only): for GPU availability;
* jobs (``batch/v1``, the namespace, ``app.kubernetes.io/managed-by=gpulab``): for quotas.

RBAC: list/watch pods and jobs in the namespace; for the spawn page's availability, list/watch
nodes and pods cluster-wide (a ClusterRole). When the cluster-wide watch is refused (403), the
view falls back to the namespace and shows no availability.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

from gpulab.hub.policy import GpuType
from gpulab.hub.workload.labels import MANAGED_SELECTOR
from kubernetes_asyncio import client as k8s_client
from kubernetes_asyncio import watch as k8s_watch
from kubespawner.clients import shared_client

from .checks import GpuUsage
from .form import GpuTypeAvailability
from .quota import count_usage, gpu_availability

__all__ = ["ClusterView", "Reflector", "cluster_view"]

log = logging.getLogger("gpulab.spawner.cluster")

LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"


class Reflector:
    """A local copy of one kind of object, kept up to date by list + watch."""

    def __init__(
        self,
        kind: str,
        api_class: str,
        list_method: str,
        *,
        namespace: str | None = None,
        label_selector: str = "",
        field_selector: str = "",
        watch_timeout: int = 300,
    ) -> None:
        self.kind = kind
        self.api = shared_client(api_class)
        self.list_method = list_method
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.watch_timeout = watch_timeout
        self.resources: dict[str, dict[str, Any]] = {}
        self.first_load: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lists = 0  # full list calls made (the benchmark reads it)
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def key(obj: Mapping[str, Any]) -> str:
        md = obj.get("metadata") or {}
        ns = md.get("namespace")
        return f"{ns}/{md.get('name')}" if ns else str(md.get("name"))

    def _kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if self.label_selector:
            kw["label_selector"] = self.label_selector
        if self.field_selector:
            kw["field_selector"] = self.field_selector
        if self.namespace is not None:
            kw["namespace"] = self.namespace
        return kw

    async def _list(self) -> str:
        method = getattr(self.api, self.list_method)
        resp = await method(**self._kwargs(), _preload_content=False, _request_timeout=60)
        data = json.loads(await resp.read())
        self.lists += 1
        self.resources = {self.key(o): o for o in data.get("items") or []}
        if not self.first_load.done():
            self.first_load.set_result(None)
        return str((data.get("metadata") or {}).get("resourceVersion") or "")

    async def start(self) -> None:
        """First list (raises on failure, e.g. 403), then watch in the background."""
        try:
            rv = await self._list()
        except Exception as exc:
            if not self.first_load.done():
                self.first_load.set_exception(exc)
                self.first_load.exception()  # retrieved: do not warn about it
            raise
        self._task = asyncio.get_running_loop().create_task(self._run(rv))

    async def _run(self, resource_version: str) -> None:
        delay = 0.1
        method = partial(getattr(self.api, self.list_method), _preload_content=False)
        while True:
            w = k8s_watch.Watch()
            try:
                async with w.stream(
                    method,
                    **self._kwargs(),
                    resource_version=resource_version,
                    timeout_seconds=self.watch_timeout,
                    _request_timeout=self.watch_timeout + 30,
                ) as stream:
                    async for event in stream:
                        obj = event["raw_object"]
                        if event["type"] == "ERROR":
                            raise k8s_client.ApiException(status=obj.get("code", 500))
                        if event["type"] == "BOOKMARK":
                            resource_version = obj["metadata"]["resourceVersion"]
                            continue
                        key = self.key(obj)
                        if event["type"] == "DELETED":
                            self.resources.pop(key, None)
                        else:
                            self.resources[key] = obj
                        resource_version = obj["metadata"].get("resourceVersion", resource_version)
                        delay = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # 410 Gone, dropped connection, ...: relist
                log.warning("watch of %s ended (%s); relisting in %.1fs", self.kind, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
                try:
                    resource_version = await self._list()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("relist of %s failed", self.kind)
            finally:
                w.stop()
                with contextlib.suppress(Exception):
                    await w.close()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None


class ClusterView:
    """Pods, nodes and jobs for quotas and GPU availability (see the module docstring)."""

    def __init__(self, namespace: str, *, cluster_wide: bool = True) -> None:
        self.namespace = namespace
        self.cluster_wide = cluster_wide
        self.pods: Reflector | None = None
        self.nodes: Reflector | None = None
        self.jobs: Reflector | None = None
        self._started: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        if self.cluster_wide:
            pods = Reflector(
                "pods", "CoreV1Api", "list_pod_for_all_namespaces", field_selector=LIVE_PODS
            )
            nodes = Reflector("nodes", "CoreV1Api", "list_node")
            try:
                await asyncio.gather(pods.start(), nodes.start())
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
            pods = Reflector(
                "pods",
                "CoreV1Api",
                "list_namespaced_pod",
                namespace=self.namespace,
                field_selector=LIVE_PODS,
            )
            await pods.start()
            self.pods = pods
        jobs = Reflector(
            "jobs",
            "BatchV1Api",
            "list_namespaced_job",
            namespace=self.namespace,
            label_selector=MANAGED_SELECTOR,
        )
        try:
            await jobs.start()
            self.jobs = jobs
        except Exception as exc:
            log.warning(
                "cannot watch jobs in %s (%s): quotas count job pods only", self.namespace, exc
            )

    async def ready(self) -> ClusterView:
        """Start the watches once (concurrent callers wait for the same start)."""
        if self._started is None or (self._started.done() and self._started.exception()):
            self._started = asyncio.get_running_loop().create_task(self._start())
        await asyncio.shield(self._started)
        return self

    def usage(self, user_label: str, group: str) -> GpuUsage:
        pods = list(self.pods.resources.values()) if self.pods else []
        jobs = list(self.jobs.resources.values()) if self.jobs else []
        return count_usage(pods, jobs, user=user_label, group=group)

    def availability(
        self, gpu_types: Mapping[str, GpuType]
    ) -> dict[str, GpuTypeAvailability] | None:
        if self.nodes is None or self.pods is None:
            return None
        return gpu_availability(
            list(self.nodes.resources.values()), list(self.pods.resources.values()), gpu_types
        )

    def has_pod(self, namespace: str, name: str) -> bool:
        return bool(self.pods and f"{namespace}/{name}" in self.pods.resources)

    async def stop(self) -> None:
        for r in (self.pods, self.nodes, self.jobs):
            if r is not None:
                await r.stop()


_views: dict[tuple[int, str, bool], ClusterView] = {}


def cluster_view(namespace: str, *, cluster_wide: bool = True) -> ClusterView:
    """The hub-wide view for this event loop and namespace (created on first use)."""
    key = (id(asyncio.get_running_loop()), namespace, cluster_wide)
    view = _views.get(key)
    if view is None:
        view = _views[key] = ClusterView(namespace, cluster_wide=cluster_wide)
    return view
