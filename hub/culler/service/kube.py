"""The culler's Kubernetes access: an API client, GPU capacity from Nodes, cancel a job.

Cancel deletes the Job (label-checked: ``gpulab.io/job-id`` and managed by gpulab) with
background propagation, so its pods go and the job ends as cancelled. RBAC the service needs:
get/list/watch pods and nodes, list/delete jobs (helm-values).
"""

from __future__ import annotations

import os
from typing import Any

from ...workload.labels import JOB_ID_LABEL, MANAGED_SELECTOR

__all__ = ["KubeAccess"]

JOB_SELECTOR = f"{MANAGED_SELECTOR},{JOB_ID_LABEL}={{job_id}}"


class KubeAccess:
    def __init__(self, api_client: Any, namespace: str | None) -> None:
        self.api_client = api_client
        self.namespace = namespace

    @classmethod
    async def connect(cls, kubeconfig: str | None, namespace: str | None) -> KubeAccess | None:
        from kubernetes_asyncio import client, config

        if kubeconfig or os.environ.get("KUBECONFIG"):
            cfg = client.Configuration()
            await config.load_kube_config(
                config_file=kubeconfig or os.environ["KUBECONFIG"], client_configuration=cfg
            )
        elif os.environ.get("KUBERNETES_SERVICE_HOST"):
            cfg = client.Configuration()
            config.load_incluster_config(client_configuration=cfg)
        else:
            return None
        return cls(client.ApiClient(configuration=cfg), namespace)

    async def close(self) -> None:
        await self.api_client.close()

    async def gpu_capacity(self) -> dict[str, int]:
        """GPU type (``nvidia.com/gpu.product``) -> allocatable ``*/gpu`` summed over nodes."""
        from kubernetes_asyncio import client

        resp = await client.CoreV1Api(self.api_client).list_node(_preload_content=False)
        out: dict[str, int] = {}
        for node in (await resp.json()).get("items") or []:
            labels = (node.get("metadata") or {}).get("labels") or {}
            alloc = (node.get("status") or {}).get("allocatable") or {}
            for name, value in alloc.items():
                if name.endswith("/gpu") and str(value).isdigit() and int(value) > 0:
                    gpu_type = labels.get("nvidia.com/gpu.product", "")
                    out[gpu_type] = out.get(gpu_type, 0) + int(value)
        return out

    async def cancel_job(self, job_id: str) -> list[str]:
        """Delete the gpulab Job(s) with this job id; returns the names deleted."""
        from kubernetes_asyncio import client

        batch = client.BatchV1Api(self.api_client)
        selector = JOB_SELECTOR.format(job_id=job_id)
        if self.namespace is None:
            resp = await batch.list_job_for_all_namespaces(
                label_selector=selector, _preload_content=False
            )
        else:
            resp = await batch.list_namespaced_job(
                self.namespace, label_selector=selector, _preload_content=False
            )
        deleted = []
        for job in (await resp.json()).get("items") or []:
            meta = job["metadata"]
            await batch.delete_namespaced_job(
                meta["name"], meta["namespace"], propagation_policy="Background"
            )
            deleted.append(meta["name"])
        return deleted
