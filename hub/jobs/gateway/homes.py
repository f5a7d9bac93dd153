"""Which home claims exist, from a watch of the namespace's claims: a submit creates its owner's
home claim only when it is missing.

A researcher may submit a job before ever starting a server; the job mounts the same home claim
the spawner makes, so the gateway makes it then (the same body, :func:`home_claim`). Asking the
API server every time (a create answered 409 almost always) cost a write per submit; the watch
makes it one write per user, once. Until the first list is in, or when a create finds the claim
there after all (made by someone else in between), 409 still means "it exists": never replaced.

The watch has no label selector: a claim an admin made by hand, without gpulab's labels, is a
home all the same, and its deletion must be seen too (a deleted user's home may be made again).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ...kube import WatchCache, object_key
from ...policy import Policy
from ...workload.pod import home_claim
from .errors import from_kube
from .kube import Kube, KubeError

__all__ = ["HomeClaims"]


class HomeClaims:
    """The namespace's PersistentVolumeClaims, listed then watched; :meth:`ensure` makes a
    user's home claim when it is not among them."""

    def __init__(self, kube: Kube, page_size: int = 500) -> None:
        self.kube = kube
        self.watch = WatchCache(kube, kube.pvcs_path(), name="home-claims", page_size=page_size)
        # One create per claim at a time: simultaneous first submits of a user share it.
        self._creating: dict[str, asyncio.Future[None]] = {}

    def start(self) -> None:
        self.watch.start()

    async def stop(self) -> None:
        await self.watch.stop()

    async def wait_synced(self, seconds: float | None = None) -> bool:
        return await self.watch.wait_synced(seconds)

    def exists(self, name: str) -> bool:
        """Whether the cache holds claim ``name`` (False also before the first list)."""
        return f"{self.kube.namespace}/{name}" in self.watch.objects

    async def ensure(self, policy: Policy, user: str) -> bool:
        """Make ``user``'s home claim unless it exists; True when this call created it.
        ApiError when the API server refuses or cannot be reached."""
        claim = home_claim(policy, user, self.kube.namespace)
        name = claim["metadata"]["name"]
        if self.exists(name):
            return False
        pending = self._creating.get(name)
        if pending is not None:
            await asyncio.shield(pending)
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._creating[name] = future
        try:
            created = await self._create(claim)
            future.set_result(None)
            return created
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: the waiters re-raise it themselves
            raise
        finally:
            self._creating.pop(name, None)

    async def _create(self, claim: dict[str, Any]) -> bool:
        try:
            made = await self.kube.request("POST", self.kube.pvcs_path(), body=claim)
        except KubeError as exc:
            if exc.status != 409:
                raise from_kube(exc, "creating your home volume") from None
            made = claim  # made by someone else in between: it exists, never replaced
            created = False
        else:
            created = True
        # Read our own write: the next submit of this user needs no call, even before the
        # watch event arrives (the watch replaces it with the API server's version).
        self.watch.objects.setdefault(object_key(made), made)
        return created
