"""Users' homes are never lost: snapshots, safe reset and restore, and what happens to the home
of a deleted user (policy ``storage.on_user_delete``). See docs/homes.md.

``manifest`` holds the pure builders, ``ops`` the operations (:class:`Homes`, over
:class:`gpulab.hub.kube.KubeClient`), ``hub_users`` the sweep's question to the hub.
"""

from gpulab.hub.homes.hub_users import HubUsers
from gpulab.hub.homes.manifest import HomeError, HomeUnavailable, SnapshotInfo
from gpulab.hub.homes.ops import (
    DEFAULT_GRACE_SECONDS,
    DeletionResult,
    Homes,
    ResetResult,
    RestoreResult,
    SweepResult,
)

__all__ = [
    "DEFAULT_GRACE_SECONDS",
    "DeletionResult",
    "HomeError",
    "Homes",
    "HomeUnavailable",
    "HubUsers",
    "ResetResult",
    "RestoreResult",
    "SnapshotInfo",
    "SweepResult",
]
