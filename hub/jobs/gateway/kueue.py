"""The gateway's side of Kueue: whether it runs (asked once, at start) and a user's queues,
made on their first submit.

The objects and their names are ``hub/kueue``'s (rendered from the policy); the gateway only
asks for a user's queues before it creates a Job naming one of them.
"""

from __future__ import annotations

import logging

from ...kueue.detect import detect_kueue
from ...kueue.sync import KueueConflict, ensure_user_queues
from ...policy import PolicyFile
from .errors import ApiError
from .kube import Kube

__all__ = ["GatewayQueues", "kueue_queues"]

log = logging.getLogger("gpulab.jobs.gateway")


class GatewayQueues:
    """A user's Kueue queues in the gateway's namespace, made when missing (cheap when made:
    ``ensure_user_queues`` remembers what it applied)."""

    def __init__(self, kube: Kube, policy_file: PolicyFile) -> None:
        self.kube = kube
        self.policy_file = policy_file

    async def ensure(self, user: str, group: str) -> None:
        try:
            await ensure_user_queues(
                self.kube, self.policy_file.policy, user, group, namespace=self.kube.namespace
            )
        except KueueConflict as exc:
            log.error("queues of %s not made: %s", user, exc)
            raise ApiError(
                503, "your job queue cannot be made (a name is taken); ask an admin"
            ) from None
        except KeyError:
            raise ApiError(
                503, f"the policy has no group {group!r} to queue your job in; ask an admin"
            ) from None


async def kueue_queues(kube: Kube, policy_file: PolicyFile) -> GatewayQueues | None:
    """The queues to submit through when the cluster serves Kueue's API; None (and a log line
    saying why) when it does not: the gateway then admits jobs itself."""
    status = await detect_kueue(kube)
    if not status.available:
        log.warning("%s", status.message)
        return None
    log.info("%s", status.message)
    return GatewayQueues(kube, policy_file)
