"""Whether the cluster runs Kueue in the API version gpulab speaks (asked once, at start).

The API server's discovery document of the group (``GET /apis/kueue.x-k8s.io``) lists the
versions it serves. gpulab needs :data:`.names.API_VERSION` (``v1beta2``, served from Kueue
v0.15 on; docs/scheduling.md says why): without it gpulab admits servers and jobs itself, as
before Kueue, and says so (:attr:`KueueStatus.message`) in the hub's log and on the dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..kube.client import KubeClient, KubeError
from . import names

__all__ = ["KueueStatus", "detect_kueue"]


@dataclass(frozen=True)
class KueueStatus:
    """``available``: gpulab schedules through Kueue. ``message``: one sentence for admins
    (why not, when not)."""

    available: bool
    served_versions: tuple[str, ...] = ()
    message: str = ""


async def detect_kueue(client: KubeClient) -> KueueStatus:
    """Ask the API server which Kueue versions it serves."""
    try:
        group = await client.get(f"/apis/{names.API_GROUP}")
    except KubeError as exc:
        return KueueStatus(
            False,
            message=(
                f"could not ask the Kubernetes API whether Kueue is installed ({exc}); "
                "gpulab admits servers and jobs itself (quotas enforced by gpulab, no queueing)"
            ),
        )
    versions = tuple(str(v.get("version") or "") for v in (group or {}).get("versions") or [] if v)
    if names.API_VERSION in versions:
        return KueueStatus(
            True,
            versions,
            f"Kueue serves {names.GROUP_VERSION}: servers and jobs are queued by Kueue",
        )
    if not versions:
        found = "Kueue is not installed (the API group kueue.x-k8s.io is not served)"
    else:
        found = (
            f"Kueue serves only {', '.join(versions)} of kueue.x-k8s.io; gpulab needs "
            f"{names.API_VERSION} (Kueue v0.15 or later)"
        )
    return KueueStatus(
        False,
        versions,
        f"{found}; gpulab admits servers and jobs itself (quotas enforced by gpulab, "
        "no queueing, no borrowing)",
    )
