"""The gateway's Kubernetes client: gpulab's :class:`~gpulab.hub.kube.KubeClient` bound to the
gateway's namespace, with the paths of the kinds the gateway uses (Kueue's Workloads where Kueue runs).

Every request carries the User-Agent ``gpulab-jobs-gateway/<version>`` so that audit logs (and
tests/ship/rbac.py) can tell the gateway's calls apart.

The gateway retries transient API failures itself (:data:`GATEWAY_RETRY`: 3 tries within 3 s,
room for two ``Retry-After: 1`` pauses), so a researcher sees 503 only when that is spent; a
retried create of a Job or Secret that finds its own object (same job id, submit key and owner
labels) takes it as made (see :class:`gpulab.hub.kube.Retry`).
"""

from __future__ import annotations

from typing import Any

from ...kube import KubeClient, KubeError, Retry, resource_path

__all__ = ["GATEWAY_RETRY", "KUEUE_API", "USER_AGENT", "Kube", "KubeError"]

USER_AGENT = "gpulab-jobs-gateway/0.1"
KUEUE_API = "kueue.x-k8s.io/v1beta2"
GATEWAY_RETRY = Retry(attempts=3, budget=3.0)


class Kube(KubeClient):
    """A client in one namespace. Create with ``Kube.connect(kubeconfig, namespace=...,
    user_agent=USER_AGENT)``; close with :meth:`close`."""

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        *,
        timeout: float = 15.0,
        user_agent: str = USER_AGENT,
        owned: bool = False,
        retry: Retry = GATEWAY_RETRY,
    ) -> None:
        super().__init__(
            api_client, timeout=timeout, user_agent=user_agent, owned=owned, retry=retry
        )
        self.namespace = namespace

    async def _created_by(self, collection: str, sent: dict[str, Any]) -> dict[str, Any] | None:
        # A home claim that exists is all a submit needs (it takes 409 as done), and the
        # gateway's Role may list and watch claims but not get one: no lookup.
        if collection == self.pvcs_path():
            return None
        return await super()._created_by(collection, sent)

    def jobs_path(self, name: str | None = None) -> str:
        return resource_path("batch/v1", "jobs", self.namespace, name)

    def cronjobs_path(self, name: str | None = None) -> str:
        """Saved job definitions (hub/jobs/definitions.py)."""
        return resource_path("batch/v1", "cronjobs", self.namespace, name)

    def pods_path(self, name: str | None = None) -> str:
        return resource_path("v1", "pods", self.namespace, name)

    def pvcs_path(self, name: str | None = None) -> str:
        return resource_path("v1", "persistentvolumeclaims", self.namespace, name)

    def workloads_path(self, name: str | None = None) -> str:
        """Kueue's Workloads (read only: Kueue makes one per queued Job)."""
        return resource_path(KUEUE_API, "workloads", self.namespace, name)

    def secrets_path(self, name: str | None = None) -> str:
        return resource_path("v1", "secrets", self.namespace, name)

    def services_path(self, name: str | None = None) -> str:
        return resource_path("v1", "services", self.namespace, name)
