"""Home operations against the cluster: snapshot, reset, restore, list, user deletion, sweep.

Rules these keep (see docs/homes.md):

* Only the user's home claim (policy ``storage.home.claim_name_template``) is ever replaced or
  deleted; a dataset claim (``storage.datasets``) never is, whatever the template says.
* Nothing destructive happens while a pod (the user's server or one of their jobs) mounts the
  home: reset and restore are refused, and the sweeper skips the claim.
* A home is deleted only after a snapshot of it is ``readyToUse``: reset and restore
  snapshot first and wait; a deleted user's home is deleted by :meth:`Homes.sweep_expired`
  only after its grace period and only when its deletion snapshot is ready.
* A deleted user who comes back keeps their home: the sweep asks the hub whether the owner
  still is deleted (and unmarks the home if not), and deletes a claim only as it was when the
  sweep read it (a claim unmarked or marked again meanwhile is left alone).
* A home being deleted makes a start fail at once with the snapshot to restore, instead of a
  server waiting on the volume forever (:class:`HomeUnavailable` from :meth:`cancel_deletion`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gpulab.hub.homes.manifest import (
    DELETE_AFTER_LABEL,
    SNAPSHOT_GROUP,
    SNAPSHOT_PLURAL,
    SNAPSHOT_VERSION,
    USER_LABEL,
    HomeError,
    HomeUnavailable,
    SnapshotInfo,
    check_home_claim,
    claim_owner,
    dataset_claims,
    delete_after,
    deletion_mark_patch,
    empty_claim_manifest,
    home_claim_name,
    mounting_pods,
    restored_claim_manifest,
    snapshot_manifest,
    snapshot_name,
    unmark_patch,
    user_label,
)
from gpulab.hub.kube import KubeClient, KubeError, Obj, resource_path
from gpulab.hub.policy import Policy
from gpulab.hub.workload.labels import (
    COMPONENT_LABEL,
    DATASET_COMPONENT,
    DELETION_SNAPSHOT_ANNOTATION,
    HOME_SNAPSHOT_COMPONENT,
    labels_of,
)
from gpulab.hub.workload.pod import home_claim

log = logging.getLogger(__name__)

USER_AGENT = "gpulab-homes/0.1"  # the admin CLI's own client; the spawner's keeps the hub's

DEFAULT_GRACE_SECONDS = 30 * 86400


@dataclass(frozen=True)
class ResetResult:
    claim: str
    snapshot: str  # holds the files the home had before the reset


@dataclass(frozen=True)
class RestoreResult:
    claim: str
    restored_from: str
    previous: str | None  # snapshot of the home as it was before the restore (None: no home)


@dataclass(frozen=True)
class DeletionResult:
    claim: str
    action: str  # "none" (no home) | "kept" | "snapshot"
    snapshot: str | None = None
    delete_after: int | None = None  # epoch seconds


@dataclass(frozen=True)
class SweepResult:
    claim: str
    deleted: bool
    reason: str
    unmarked: bool = False  # the owner exists again in the hub: the mark was removed


# Whether a user exists in the hub now (``GET /hub/api/users/<name>``: 200 or 404).
OwnerExists = Callable[[str], Awaitable[bool]]


def _epoch(now: float | datetime | None) -> float:
    if now is None:
        return time.time()
    return now.timestamp() if isinstance(now, datetime) else float(now)


class Homes:
    """Home operations in one namespace. ``api`` is a kubernetes_asyncio ``ApiClient`` (e.g.
    KubeSpawner's ``self.api.api_client``, borrowed as it is) or a :class:`KubeClient`."""

    def __init__(
        self,
        api: Any,
        namespace: str,
        policy: Policy,
        *,
        wait_seconds: float = 600.0,
    ) -> None:
        self.kube = KubeClient.of(api)
        self.namespace = namespace
        self.policy = policy
        self.wait_seconds = wait_seconds

    @classmethod
    async def connect(
        cls, kubeconfig: str | None, namespace: str, policy: Policy, **kw: Any
    ) -> Homes:
        """Own client from a kubeconfig (or in-cluster); close with :meth:`close`."""
        kube = await KubeClient.connect(kubeconfig, user_agent=USER_AGENT, request_timeout=30.0)
        return cls(kube, namespace, policy, **kw)

    async def close(self) -> None:
        await self.kube.close()

    # ------------------------------------------------------------------ paths
    def _pvcs(self, name: str | None = None) -> str:
        return resource_path("v1", "persistentvolumeclaims", self.namespace, name)

    def _snaps(self, name: str | None = None) -> str:
        snapshots = f"{SNAPSHOT_GROUP}/{SNAPSHOT_VERSION}"
        return resource_path(snapshots, SNAPSHOT_PLURAL, self.namespace, name)

    # ------------------------------------------------------------------ helpers
    def claim_name(self, user: str) -> str:
        claim = home_claim_name(self.policy, user)
        check_home_claim(self.policy, claim)
        return claim

    async def _claim(self, claim: str) -> Obj | None:
        pvc = await self.kube.get(self._pvcs(claim))
        if pvc is not None:
            if labels_of(pvc).get(COMPONENT_LABEL) == DATASET_COMPONENT:
                raise HomeError(f"claim {claim!r} is labelled as a dataset; gpulab leaves it alone")
        return pvc

    async def _users_of(self, claim: str) -> list[str]:
        pods, _ = await self.kube.list(resource_path("v1", "pods", self.namespace))
        return mounting_pods(pods, claim)

    async def _refuse_if_in_use(self, user: str, claim: str, action: str) -> None:
        pods = await self._users_of(claim)
        if pods:
            raise HomeError(
                f"{action} refused: {user}'s home {claim} is in use by pod(s) "
                f"{', '.join(pods)} (their server or jobs). Stop the server (hub admin page, or "
                f"DELETE /hub/api/users/{user}/server) and let or make their jobs finish, "
                "then try again."
            )

    async def _wait_ready(self, name: str) -> Obj:
        def done(obj: Obj | None) -> bool:
            status = (obj or {}).get("status") or {}
            return obj is None or bool(status.get("readyToUse")) or bool(status.get("error"))

        try:
            snap = await self.kube.wait_for(self._snaps(), name, done, self.wait_seconds)
        except TimeoutError:
            raise HomeError(
                f"snapshot {name} is not ready after {self.wait_seconds:.0f}s; nothing was "
                "changed. Check `kubectl describe volumesnapshot "
                f"{name} -n {self.namespace}` and the CSI snapshotter."
            ) from None
        if snap is None:
            raise HomeError(f"snapshot {name} was deleted before it became ready")
        error = ((snap.get("status") or {}).get("error") or {}).get("message")
        if error and not (snap.get("status") or {}).get("readyToUse"):
            raise HomeError(f"snapshot {name} failed: {error}")
        return snap

    async def _wait_gone(self, claim: str) -> None:
        try:
            await self.kube.wait_for(self._pvcs(), claim, lambda o: o is None, self.wait_seconds)
        except TimeoutError:
            raise HomeError(
                f"claim {claim} is still being deleted after {self.wait_seconds:.0f}s "
                "(a finalizer such as kubernetes.io/pvc-protection holds it while a pod uses it)"
            ) from None

    async def _binding_mode(self, pvc: Obj) -> str:
        cls = (pvc.get("spec") or {}).get("storageClassName")
        if not cls:
            return "Immediate"
        try:
            sc = await self.kube.get(
                resource_path("storage.k8s.io/v1", "storageclasses", None, cls)
            )
        except KubeError:
            sc = None
        return str((sc or {}).get("volumeBindingMode") or "Immediate")

    async def _wait_bound(self, pvc: Obj) -> None:
        if await self._binding_mode(pvc) == "WaitForFirstConsumer":
            return  # binds (and is restored) when the user's next server starts
        claim = pvc["metadata"]["name"]

        def done(obj: Obj | None) -> bool:
            return obj is None or (obj.get("status") or {}).get("phase") == "Bound"

        try:
            got = await self.kube.wait_for(self._pvcs(), claim, done, self.wait_seconds)
        except TimeoutError:
            raise HomeError(
                f"claim {claim} is not Bound after {self.wait_seconds:.0f}s; see `kubectl "
                f"describe pvc {claim} -n {self.namespace}` (ProvisioningFailed events)"
            ) from None
        if got is None:
            raise HomeError(f"claim {claim} was deleted while it was being provisioned")

    async def _create_snapshot(self, user: str, claim: str, reason: str) -> str:
        now = datetime.now(UTC)
        for attempt in range(10):
            name = snapshot_name(claim, reason, now, attempt)
            body = snapshot_manifest(
                name=name,
                namespace=self.namespace,
                username=user,
                claim=claim,
                reason=reason,
                snapshot_class=self.policy.storage.snapshot_class,
            )
            try:
                await self.kube.create(self._snaps(), body)
                return name
            except KubeError as e:
                if e.status == 404 and "volumesnapshots" in e.message:
                    raise HomeError(
                        "this cluster does not serve snapshot.storage.k8s.io/v1 "
                        "VolumeSnapshots: install the CSI snapshot CRDs and controller "
                        "(see docs/homes.md)"
                    ) from None
                if e.status != 409:
                    raise HomeError(f"could not create snapshot {name}: {e.message}") from None
        raise HomeError(f"could not find a free snapshot name for {claim}")

    # ------------------------------------------------------------------ operations
    async def snapshot_home(self, user: str, reason: str = "manual", *, wait: bool = True) -> str:
        """Snapshot the user's home; with ``wait``, return once it is ``readyToUse``."""
        claim = self.claim_name(user)
        if await self._claim(claim) is None:
            raise HomeError(f"{user} has no home: claim {claim} not found in {self.namespace}")
        name = await self._create_snapshot(user, claim, reason)
        if wait:
            await self._wait_ready(name)
        log.info("home %s of %s: snapshot %s (%s)", claim, user, name, reason)
        return name

    async def list_snapshots(self, user: str) -> list[SnapshotInfo]:
        """The user's home snapshots, newest first (gpulab's, and any other of the home claim)."""
        claim = self.claim_name(user)
        items, _ = await self.kube.list(self._snaps())
        mine = []
        for obj in items:
            labels = (obj.get("metadata") or {}).get("labels") or {}
            source = ((obj.get("spec") or {}).get("source") or {}).get("persistentVolumeClaimName")
            if source == claim or (
                labels.get(COMPONENT_LABEL) == HOME_SNAPSHOT_COMPONENT
                and labels.get(USER_LABEL) == user_label(user)
            ):
                mine.append(SnapshotInfo.from_object(obj))
        return sorted(mine, key=lambda s: (s.created, s.name), reverse=True)

    async def reset_home(self, user: str) -> ResetResult:
        """Snapshot the home, then replace it with an empty claim of the same name, class,
        size and labels. Refused while a pod mounts it."""
        claim = self.claim_name(user)
        pvc = await self._claim(claim)
        if pvc is None:
            raise HomeError(f"{user} has no home to reset: claim {claim} not found")
        await self._refuse_if_in_use(user, claim, "reset")
        snap = await self.snapshot_home(user, "reset")
        await self._refuse_if_in_use(user, claim, "reset")  # a server started meanwhile
        await self._replace(user, claim, empty_claim_manifest(pvc), snap)
        log.info("home %s of %s reset; old files in snapshot %s", claim, user, snap)
        return ResetResult(claim, snap)

    async def restore_home(self, user: str, snapshot: str) -> RestoreResult:
        """Replace the home with the contents of ``snapshot`` (one of this home's). The home
        as it is now is snapshotted first. Refused while a pod mounts it."""
        claim = self.claim_name(user)
        snap = await self.kube.get(self._snaps(snapshot))
        if snap is None:
            raise HomeError(
                f"no snapshot {snapshot!r} in {self.namespace}; "
                f"`gpulab admin home list {user}` shows the user's snapshots"
            )
        source = ((snap.get("spec") or {}).get("source") or {}).get("persistentVolumeClaimName")
        if source != claim:
            raise HomeError(
                f"snapshot {snapshot} is of claim {source!r}, not of {user}'s home {claim}"
            )
        if not (snap.get("status") or {}).get("readyToUse"):
            raise HomeError(f"snapshot {snapshot} is not ready to use")
        await self._refuse_if_in_use(user, claim, "restore")
        pvc = await self._claim(claim)
        previous = None
        if pvc is not None:
            previous = await self.snapshot_home(user, "restore")
            await self._refuse_if_in_use(user, claim, "restore")
        base = pvc or home_claim(self.policy, user, self.namespace)
        await self._replace(user, claim, restored_claim_manifest(base, snap), previous)
        log.info("home %s of %s restored from %s (before: %s)", claim, user, snapshot, previous)
        return RestoreResult(claim, snapshot, previous)

    async def _replace(self, user: str, claim: str, new: Obj, kept_in: str | None) -> None:
        """Delete the claim (if any) and create ``new`` in its place, waiting for each step."""
        hint = (
            f" The previous files are in snapshot {kept_in}: `gpulab admin home restore "
            f"{user} {kept_in}`."
            if kept_in
            else ""
        )
        new["metadata"]["namespace"] = self.namespace
        try:
            await self.kube.delete(self._pvcs(claim))
            await self._wait_gone(claim)
            await self.kube.create(self._pvcs(), new)
            await self._wait_bound(new)
        except KubeError as e:
            raise HomeError(f"replacing claim {claim} failed: {e.message}.{hint}") from None
        except HomeError as e:
            raise HomeError(f"{e}.{hint}") from None

    async def on_user_deleted(
        self,
        user: str,
        policy: Policy | None = None,
        *,
        grace_seconds: int = DEFAULT_GRACE_SECONDS,
        now: float | datetime | None = None,
    ) -> DeletionResult:
        """What happens to a deleted user's home. ``keep``: nothing. ``snapshot``: take a
        snapshot (not waited for) and label the claim ``gpulab.io/delete-after=<epoch>``;
        :meth:`sweep_expired` deletes it after that time if the snapshot is ready."""
        policy = policy or self.policy
        claim = home_claim_name(policy, user)
        check_home_claim(policy, claim)
        if await self._claim(claim) is None:
            return DeletionResult(claim, "none")
        if policy.storage.on_user_delete != "snapshot":
            log.info("user %s deleted; home %s kept (policy: keep)", user, claim)
            return DeletionResult(claim, "kept")
        snap = await self._create_snapshot(user, claim, "deleted")
        when = int(_epoch(now)) + int(grace_seconds)
        await self.kube.patch(self._pvcs(claim), deletion_mark_patch(when, snap, user))
        log.info(
            "user %s deleted; home %s snapshotted (%s), deleted after %s", user, claim, snap, when
        )
        return DeletionResult(claim, "snapshot", snap, when)

    async def cancel_deletion(self, user: str) -> bool:
        """Unmark the user's home (e.g. the user came back); True if it was marked.

        Raises :class:`HomeUnavailable` when the claim is being deleted (it has a
        ``deletionTimestamp``): a server would wait on it forever. One read of the claim; the
        snapshots are listed only then, to name the one to restore."""
        claim = self.claim_name(user)
        pvc = await self._claim(claim)
        if pvc is None:
            return False
        if pvc["metadata"].get("deletionTimestamp"):
            raise HomeUnavailable(await self._being_deleted_message(user, pvc))
        if delete_after(pvc) is None:
            return False
        await self.kube.patch(self._pvcs(claim), unmark_patch())
        return True

    async def _being_deleted_message(self, user: str, pvc: Obj) -> str:
        claim = pvc["metadata"]["name"]
        snap = (pvc["metadata"].get("annotations") or {}).get(DELETION_SNAPSHOT_ANNOTATION)
        if not snap:
            try:
                snaps = await self.list_snapshots(user)
            except KubeError:  # e.g. the hub's account may only create snapshots
                snaps = []
            snap = snaps[0].name if snaps else None
        restore = (
            f"ask an admin to restore it from snapshot {snap} "
            f"(gpulab admin home restore {user} {snap})"
            if snap
            else "ask an admin to restore it (no snapshot of it was found)"
        )
        return f"your home volume {claim} is being deleted: {restore}"

    async def sweep_expired(
        self,
        now: float | datetime | None = None,
        *,
        owner_exists: OwnerExists,
        dry_run: bool = False,
    ) -> list[SweepResult]:
        """Delete the home claims whose ``gpulab.io/delete-after`` has passed, each only if
        its owner is still deleted in the hub (``owner_exists``; a returning owner's home is
        unmarked, whatever the grace period), its deletion snapshot is ready, no pod mounts it,
        and the claim is still as this sweep read it (a delete precondition)."""
        at = _epoch(now)
        pvcs, _ = await self.kube.list(self._pvcs(), labelSelector=DELETE_AFTER_LABEL)
        results = []
        for pvc in sorted(pvcs, key=lambda p: p["metadata"]["name"]):
            results.append(await self._sweep_one(pvc, at, owner_exists, dry_run))
        return results

    async def _sweep_one(
        self, pvc: Obj, at: float, owner_exists: OwnerExists, dry_run: bool
    ) -> SweepResult:
        md = pvc["metadata"]
        claim = md["name"]
        when = delete_after(pvc)
        snap_name = (md.get("annotations") or {}).get(DELETION_SNAPSHOT_ANNOTATION)
        if when is None:
            return SweepResult(claim, False, f"label {DELETE_AFTER_LABEL} is not an epoch time")
        if (
            claim in dataset_claims(self.policy)
            or (md.get("labels") or {}).get(COMPONENT_LABEL) == DATASET_COMPONENT
        ):
            return SweepResult(claim, False, "a dataset claim is never deleted")
        if not snap_name:
            return SweepResult(
                claim,
                False,
                f"no {DELETION_SNAPSHOT_ANNOTATION} annotation: no snapshot to rely on",
            )
        snap = await self.kube.get(self._snaps(snap_name))
        owner = claim_owner(pvc, snap)
        if owner is None:
            return SweepResult(claim, False, "its owner is unknown: cannot ask the hub")
        if await owner_exists(owner):
            if not dry_run:
                await self.kube.patch(self._pvcs(claim), unmark_patch())
                log.info("home %s of %s unmarked: the user exists again in the hub", claim, owner)
            verb = "would be unmarked" if dry_run else "unmarked"
            return SweepResult(claim, False, f"{owner} exists again in the hub: {verb}", True)
        if when > at:
            until = datetime.fromtimestamp(when, UTC)
            return SweepResult(claim, False, f"grace period runs until {until:%Y-%m-%d %H:%M} UTC")
        source = ((snap or {}).get("spec") or {}).get("source") or {}
        if snap is None or source.get("persistentVolumeClaimName") != claim:
            return SweepResult(claim, False, f"its deletion snapshot {snap_name} is missing")
        if not (snap.get("status") or {}).get("readyToUse"):
            return SweepResult(claim, False, f"its deletion snapshot {snap_name} is not ready")
        if pods := await self._users_of(claim):
            return SweepResult(claim, False, f"in use by {', '.join(pods)}")
        if not dry_run:
            try:
                await self._delete_unchanged(pvc)
            except KubeError as e:
                if e.status != 409:
                    raise
                return SweepResult(claim, False, "it changed since the sweep read it; next sweep")
            log.info("home %s deleted after its grace period (snapshot %s)", claim, snap_name)
        return SweepResult(claim, True, f"expired; snapshot {snap_name} kept")

    async def _delete_unchanged(self, pvc: Obj) -> None:
        """Delete the claim only if it is the object this sweep checked: a returning user's
        start (unmark) or a new deletion (a new mark) in between changes its resourceVersion,
        and the API server then answers 409 instead of deleting."""
        md = pvc["metadata"]
        preconditions = {"uid": md["uid"], "resourceVersion": md["resourceVersion"]}
        body = {"propagationPolicy": "Background", "preconditions": preconditions}
        try:
            await self.kube.request("DELETE", self._pvcs(md["name"]), body=body)
        except KubeError as e:
            if e.status != 404:
                raise
