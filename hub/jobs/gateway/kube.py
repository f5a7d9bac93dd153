"""The gateway's Kubernetes client: gpulab's :class:`~gpulab.hub.kube.KubeClient` bound to the
gateway's namespace, with the paths of the four kinds the gateway uses.

Every request carries the User-Agent ``gpulab-jobs-gateway/<version>`` so that audit logs (and
tests/ship/rbac.py) can tell the gateway's calls apart.
"""

from __future__ import annotations

from typing import Any

from ...kube import KubeClient, KubeError, resource_path

__all__ = ["USER_AGENT", "Kube", "KubeError"]

USER_AGENT = "gpulab-jobs-gateway/0.1"


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
    ) -> None:
        super().__init__(api_client, timeout=timeout, user_agent=user_agent, owned=owned)
        self.namespace = namespace

    def jobs_path(self, name: str | None = None) -> str:
        return resource_path("batch/v1", "jobs", self.namespace, name)

    def pods_path(self, name: str | None = None) -> str:
        return resource_path("v1", "pods", self.namespace, name)

    def pvcs_path(self, name: str | None = None) -> str:
        return resource_path("v1", "persistentvolumeclaims", self.namespace, name)

    def secrets_path(self, name: str | None = None) -> str:
        return resource_path("v1", "secrets", self.namespace, name)
