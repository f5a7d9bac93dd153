"""A user added to the hub (re-created after a deletion, or logging in for the first time again)
keeps their home: the deletion mark a previous deletion left on it is cleared at once, not only
at their next server start, so the sweep never deletes the home of a live user.

:class:`HomeMarks` is what the hub's authenticator calls from ``add_user`` (``hub/auth.py``):
one read of the claim, a patch only when it is marked (:meth:`Homes.cancel_deletion`). It has
its own Kubernetes client (the authenticator runs before any spawner, so KubeSpawner's client
may not be configured yet), made on first use and kept for the hub's life. RBAC: the hub's
``persistentvolumeclaims`` get (the chart's Role) and patch (``rbac-hub.yaml``).

JupyterHub also calls ``add_user`` at every start for every user it already has; those users
were handled when they were added, so only users created since this hub started are checked
(:func:`added_since`), and a hub start costs no API call per user.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime

from gpulab.hub.homes.manifest import HomeUnavailable
from gpulab.hub.homes.ops import Homes
from gpulab.hub.kube import KubeClient
from gpulab.hub.shared_policy import shared_policy_file

__all__ = ["HomeMarks", "added_since", "hub_namespace"]

log = logging.getLogger("gpulab.homes")

USER_AGENT = "gpulab-hub-users/0.1"


def hub_namespace() -> str:
    """The users' namespace: ``$GPULAB_NAMESPACE``, else ``$POD_NAMESPACE``, else default."""
    for var in ("GPULAB_NAMESPACE", "POD_NAMESPACE"):
        if os.environ.get(var):
            return os.environ[var]
    return "default"


def added_since(created: datetime | None, since: datetime) -> bool:
    """Whether a user created at ``created`` (JupyterHub stores naive UTC) is new since
    ``since`` (aware UTC). Unknown: treated as new."""
    if created is None:
        return True
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return created >= since


class HomeMarks:
    """Clears a returning user's home deletion mark (see the module docstring)."""

    def __init__(self, policy_path: str, namespace: str, kubeconfig: str | None = None) -> None:
        self.policy_path = policy_path
        self.namespace = namespace
        self.kubeconfig = kubeconfig
        self._kube: KubeClient | None = None
        self._connecting = asyncio.Lock()

    async def _homes(self) -> Homes:
        async with self._connecting:
            if self._kube is None:
                self._kube = await KubeClient.connect(
                    self.kubeconfig, user_agent=USER_AGENT, request_timeout=30.0
                )
        return Homes(self._kube, self.namespace, shared_policy_file(self.policy_path).policy)

    async def clear(self, username: str) -> bool:
        """Unmark ``username``'s home; True if it was marked. Never raises: a failure is
        logged, and the next server start and the sweep check again."""
        try:
            cleared = await (await self._homes()).cancel_deletion(username)
        except HomeUnavailable as exc:  # being deleted already: only a restore brings it back
            log.warning("home of re-created user %s: %s", username, exc)
            return False
        except Exception:
            log.exception("home of %s: could not check for a pending deletion", username)
            return False
        if cleared:
            log.info("home of %s: pending deletion cancelled (user added)", username)
        return cleared

    async def close(self) -> None:
        if self._kube is not None:
            await self._kube.close()
