"""REST paths of the Kubernetes API, built one way for every gpulab service.

``api_version`` is what an object's ``apiVersion`` says: ``"v1"`` is the core group (served under
``/api``), anything with a group (``"batch/v1"``) is served under ``/apis``.
"""

from __future__ import annotations

__all__ = ["resource_path"]


def resource_path(
    api_version: str, plural: str, namespace: str | None = None, name: str | None = None
) -> str:
    """The collection path (``name`` None) or one object's path.

    ``namespace`` None: cluster-scoped objects, or a namespaced kind across all namespaces.
    """
    root = "/api" if "/" not in api_version else "/apis"
    path = f"{root}/{api_version}"
    if namespace:
        path += f"/namespaces/{namespace}"
    path += f"/{plural}"
    return f"{path}/{name}" if name else path
