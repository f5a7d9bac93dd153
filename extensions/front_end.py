"""Whether a front end shows this kernel's output: the panel refreshes only while one does.

A browser tab with the notebook open holds a websocket to the kernel; jupyter_server counts
them. The kernel asks its own server's extension (``gpulab/api/kernels/<id>/front-ends``, a
question that, unlike ``api/kernels/<id>``, is not counted as the server's browser activity,
which the culler names in its reasons), with the server's token; which kernel it is comes
from its connection file. With no tab open
nothing would see a refresh, so the panel makes none (and sends nothing a culler could mistake
for work; widget traffic does not count anyway: :mod:`gpulab.extensions.kernel_activity`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import httpx

from .client import server_api_url

__all__ = ["front_end_attached", "this_kernel_id"]

_KERNEL_FILE = re.compile(r"kernel-(?P<id>[0-9a-f-]{8,64})\.json$")


def this_kernel_id() -> str | None:
    """The id of the kernel this code runs in (None outside a Jupyter kernel)."""
    try:
        from ipykernel.connect import get_connection_file

        path = get_connection_file()
    except Exception:  # noqa: BLE001 - not in a kernel
        return None
    match = _KERNEL_FILE.search(os.path.basename(path))
    return match.group("id") if match else None


def front_end_attached(
    env: Mapping[str, str], kernel_id: str | None, timeout: float = 5.0
) -> bool | None:
    """Whether any front end is connected to kernel ``kernel_id`` of this server; None when
    that cannot be told (not in a server, or it did not answer): the caller decides."""
    base = server_api_url(env)
    token = env.get("JUPYTERHUB_API_TOKEN", "")
    if not base or not kernel_id:
        return None
    try:
        response = httpx.get(
            f"{base}/kernels/{kernel_id}/front-ends",
            headers={"Authorization": f"token {token}"} if token else {},
            timeout=timeout,
        )
        if response.status_code != 200:
            return None
        connections = response.json().get("connections")
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
    return connections > 0 if isinstance(connections, int) else None
