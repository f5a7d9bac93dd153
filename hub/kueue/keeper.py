"""The hub's keeper of the Kueue objects: at start it asks whether the cluster serves Kueue
(and says clearly in the hub's log when not: gpulab then admits servers and jobs itself), applies
the policy's objects, and applies them again after every policy reload and every
:data:`RESYNC_SECONDS` (an object deleted by hand comes back).

One keeper per hub process (:func:`start_in_hub`, called by ``hub/config.py::configure``);
:func:`hub_kueue_status` is what the hub's own code (the spawner) asks: ``None`` until the keeper
has asked the cluster. Other processes (the jobs gateway, the culler and its dashboard) ask the
cluster themselves with :func:`.detect.detect_kueue`: one GET.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from ..kube.client import KubeClient, KubeError
from ..policy.document import Policy
from ..policy.watch import PolicyFile
from .detect import KueueStatus, detect_kueue
from .sync import SyncReport, sync_policy

__all__ = ["KueueKeeper", "hub_kueue_status", "start_in_hub"]

USER_AGENT = "gpulab-hub/kueue"
POLICY_CHECK_SECONDS = 5.0  # how often the policy file is looked at (the spawner's default)
# How often the objects are checked without a policy change: one deleted by hand comes back.
# A check that finds nothing to do costs five list calls.
RESYNC_SECONDS = 600.0

Connect = Callable[[], Awaitable[KubeClient]]


async def _connect() -> KubeClient:
    """The hub's own client: ``$KUBECONFIG``, else the in-cluster service account."""
    return await KubeClient.connect(user_agent=USER_AGENT)


class KueueKeeper:
    """Keeps the cluster's gpulab Kueue objects what ``policy_file`` renders."""

    def __init__(
        self,
        policy_file: PolicyFile,
        namespace: str,
        *,
        connect: Connect = _connect,
        log: logging.Logger | None = None,
        resync_seconds: float = RESYNC_SECONDS,
    ) -> None:
        self.policy_file = policy_file
        self.namespace = namespace
        self.log = log or logging.getLogger("gpulab.kueue")
        self.status: KueueStatus | None = None
        self.last_report: SyncReport | None = None
        self.last_error: str | None = None  # the last sync's failure, None once one succeeds
        self._connect = connect
        self._client: KubeClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._again = False  # a reload came while a sync ran: sync once more after it
        self._resync_seconds = resync_seconds
        self._resync: asyncio.Task[None] | None = None

    async def start(self) -> KueueStatus:
        """Ask the cluster, log what gpulab will do, and (with Kueue) sync and follow reloads."""
        try:
            self._client = await self._connect()
        except KubeError as exc:
            self.status = KueueStatus(
                False,
                message=f"no Kubernetes API to ask for Kueue ({exc}); gpulab admits servers "
                "and jobs itself",
            )
        else:
            self.status = await detect_kueue(self._client)
        if not self.status.available:
            self.log.warning("Kueue: %s", self.status.message)
            return self.status
        self.log.info("Kueue: %s", self.status.message)
        self.policy_file.add_listener(self._on_reload)
        self.policy_file.start(POLICY_CHECK_SECONDS)
        await self.sync()
        self._resync = asyncio.get_running_loop().create_task(self._resync_forever())
        return self.status

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self._resync_seconds)
            self._on_reload(self.policy_file.policy)

    async def sync(self) -> SyncReport | None:
        """Apply the policy in force now; failures are logged (the next reload tries again)."""
        if self._client is None or not (self.status and self.status.available):
            return None
        policy = self.policy_file.policy
        try:
            report = await sync_policy(self._client, policy, self.namespace)
        except KubeError as exc:
            self.last_error = str(exc)
            self.log.error("Kueue: applying policy version %d failed: %s", self.version, exc)
            return None
        self.last_report, self.last_error = report, None
        if report.changed or report.conflicts:
            self.log.info("Kueue: policy version %d applied: %s", self.version, report.summary())
        return report

    @property
    def version(self) -> int:
        return self.policy_file.version

    def _on_reload(self, policy: Policy) -> None:
        """A new policy is in force: sync (once more after a sync already running)."""
        del policy  # the keeper reads the policy in force when it syncs
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._sync_until_settled())

    async def _sync_until_settled(self) -> None:
        while True:
            self._again = False
            await self.sync()
            if not self._again:
                return

    async def settled(self) -> None:
        """Wait for the sync a reload started, if any (tests, shutdown)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        for task in (self._resync, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._client is not None:
            await self._client.close()
            self._client = None


# ----------------------------------------------------------------------------- the hub's one

_keeper: KueueKeeper | None = None


def start_in_hub(policy_file: PolicyFile, namespace: str) -> KueueKeeper | None:
    """Start the hub's keeper on the running event loop (JupyterHub loads its configuration
    inside the loop it then serves on); None, doing nothing, when no loop runs (the
    configuration loaded by a tool or a test)."""
    global _keeper
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    if _keeper is None:
        # JupyterHub's own logger: the lines land in the hub's log with its format.
        from traitlets.log import get_logger  # noqa: PLC0415

        _keeper = KueueKeeper(policy_file, namespace, log=get_logger())
        keeper = _keeper
        loop.create_task(_start_logged(keeper))
    return _keeper


async def _start_logged(keeper: KueueKeeper) -> None:
    try:
        await keeper.start()
    except Exception:  # the hub runs on without Kueue's objects rather than not at all
        keeper.log.exception(
            "Kueue: the keeper did not start; gpulab admits servers and jobs itself"
        )


def hub_kueue_status() -> KueueStatus | None:
    """What the hub's keeper found: ``available`` (schedule through Kueue) and ``message``;
    None before it asked (or outside the hub)."""
    return _keeper.status if _keeper is not None else None
