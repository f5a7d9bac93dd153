"""kubesim's CSI snapshot controller: VolumeSnapshots of claim folders, and claims restored
from them.

What a cluster with the external snapshotter and a CSI driver with snapshot support does,
on kubesim's folder-backed volumes (``{data_dir}`` is kubesim's data folder):

* **VolumeSnapshotClass** (cluster): kubesim starts with one, ``kubesim-snapclass``
  (driver ``kubesim.gpulab.io``, ``deletionPolicy: Delete``), marked as the default class
  (annotation ``snapshot.storage.kubernetes.io/is-default-class: "true"``), as a cluster with
  a snapshot-capable CSI driver has one. Admins may create others (any driver).
* **VolumeSnapshot** create: the controller adds the
  ``snapshot.storage.kubernetes.io/volumesnapshot-bound-protection`` finalizer, fills in the
  default class when ``spec.volumeSnapshotClassName`` is unset, sets
  ``status.boundVolumeSnapshotContentName`` (``snapcontent-<uid>``) with ``readyToUse: false``,
  copies ``{data_dir}/volumes/{ns}/{claim}`` to ``{data_dir}/snapshots/{ns}/{name}`` in a
  thread (never on the event loop; file modes, times and, as root, owners are kept), then
  sets ``readyToUse: true``, ``creationTime`` and ``restoreSize`` (the claim's capacity).
  Failures (unknown class, missing or unbound claim, pre-provisioned content) set
  ``status.error`` ``{message, time}`` with the real controller's wording and a Warning
  event; a snapshot of a missing claim is taken when the claim appears, as the real
  controller retries.
* **VolumeSnapshot** delete: the finalizer holds the object until its folder is removed.
* **PersistentVolumeClaim** with ``dataSource``/``dataSourceRef`` of kind ``VolumeSnapshot``
  (``apiGroup: snapshot.storage.k8s.io``): the API half stores it ``Pending``; the controller
  populates the claim's folder from the snapshot and only then binds it (``phase: Bound``,
  ``spec.volumeName``, ``status.capacity``). Until the snapshot exists and is ready, or when
  the claim asks for less than ``restoreSize``, the claim stays ``Pending`` with a
  ``ProvisioningFailed`` event in the external provisioner's words, and is retried when the
  snapshot changes.

Not modelled: VolumeSnapshotContent objects (the content name is reported, the object is not
served), pre-provisioned snapshots, ``deletionPolicy: Retain``, cross-namespace data sources,
group snapshots. Snapshots live in memory like every kubesim object; their folders are left
behind if kubesim is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gpulab.kubesim.events import EventRecorder
from gpulab.kubesim.quantity import parse_quantity
from gpulab.kubesim.store import ApiError, ResourceType, Store, WatchEvent, now_rfc3339, resource
from gpulab.kubesim.volumes import Volumes

log = logging.getLogger(__name__)

GROUP = "snapshot.storage.k8s.io"
BOUND_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
DEFAULT_CLASS_ANNOTATION = "snapshot.storage.kubernetes.io/is-default-class"
DEFAULT_CLASS = "kubesim-snapclass"
DRIVER = "kubesim.gpulab.io"

_Key = tuple[str, str]  # (namespace, snapshot name)


def snapshot_source(pvc: dict[str, Any]) -> str | None:
    """The VolumeSnapshot a claim is to be restored from (``dataSourceRef`` wins), or None."""
    spec = pvc.get("spec") or {}
    for field in ("dataSourceRef", "dataSource"):
        ref = spec.get(field)
        if isinstance(ref, dict) and ref.get("kind") == "VolumeSnapshot":
            if ref.get("apiGroup") == GROUP and ref.get("name"):
                return str(ref["name"])
    return None


def default_class() -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {
            "name": DEFAULT_CLASS,
            "annotations": {DEFAULT_CLASS_ANNOTATION: "true"},
        },
        "driver": DRIVER,
        "deletionPolicy": "Delete",
    }


class SnapshotController:
    def __init__(
        self, store: Store, data_dir: Path, volumes: Volumes, recorder: EventRecorder
    ) -> None:
        self._store = store
        self._volumes = volumes
        self._recorder = recorder
        self._root = data_dir / "snapshots"
        self._snapshots = resource("volumesnapshots", GROUP)
        self._classes = resource("volumesnapshotclasses", GROUP)
        self._pvcs = resource("persistentvolumeclaims")
        # One lock per snapshot folder: taking, restoring from and removing it never overlap.
        self._locks: dict[_Key, asyncio.Lock] = {}
        # (operation, uid) in flight, so an event burst schedules one run.
        self._running: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        if store.get(self._classes, None, DEFAULT_CLASS) is None:
            store.create(self._classes, None, default_class())
        self._unsubscribe = store.subscribe(self._on_event)
        for snap in store.list(self._snapshots)[0]:
            self._on_snapshot(WatchEvent("ADDED", snap))
        for pvc in store.list(self._pvcs)[0]:
            self._on_claim(WatchEvent("ADDED", pvc))

    async def stop(self) -> None:
        self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def folder(self, namespace: str, name: str) -> Path:
        return self._root / namespace / name

    # -- triggers -------------------------------------------------------------------------
    def _on_event(self, rt: ResourceType, event: WatchEvent) -> None:
        if rt is self._snapshots:
            self._on_snapshot(event)
        elif rt is self._pvcs:
            self._on_claim(event)

    def _on_snapshot(self, event: WatchEvent) -> None:
        snap = event.object
        md, status = snap["metadata"], snap.get("status") or {}
        key = (md["namespace"], md["name"])
        if event.type == "DELETED":
            # Normally gone through the finalizer; if someone removed it, still clean up.
            self._spawn("remove", md["uid"], self._remove(key, md["uid"], finalize=False))
            return
        if md.get("deletionTimestamp"):
            if BOUND_FINALIZER in (md.get("finalizers") or []):
                self._spawn("remove", md["uid"], self._remove(key, md["uid"], finalize=True))
            return
        if not status.get("readyToUse") and not status.get("error"):
            self._spawn("take", md["uid"], self._take(key, md["uid"]))
        if status.get("readyToUse"):
            self._retry_claims(md["namespace"], md["name"])

    def _on_claim(self, event: WatchEvent) -> None:
        pvc = event.object
        md = pvc["metadata"]
        if event.type == "DELETED":
            return
        if (pvc.get("status") or {}).get("phase") == "Pending" and snapshot_source(pvc):
            if not md.get("deletionTimestamp"):
                self._spawn("populate", md["uid"], self._populate(md["namespace"], md["name"]))
        if event.type == "ADDED" or (pvc.get("status") or {}).get("phase") == "Bound":
            # Snapshots that failed because this claim did not exist (or was not bound yet)
            # are retried, as the real controller keeps retrying.
            for snap in self._store.list(self._snapshots, md["namespace"])[0]:
                source = (snap.get("spec") or {}).get("source") or {}
                smd, status = snap["metadata"], snap.get("status") or {}
                if (
                    source.get("persistentVolumeClaimName") == md["name"]
                    and status.get("error")
                    and not status.get("readyToUse")
                    and not smd.get("deletionTimestamp")
                ):
                    key = (smd["namespace"], smd["name"])
                    self._spawn("take", smd["uid"], self._take(key, smd["uid"]))

    def _retry_claims(self, namespace: str, snapshot: str) -> None:
        for pvc in self._store.list(self._pvcs, namespace)[0]:
            if (pvc.get("status") or {}).get("phase") == "Pending" and snapshot_source(
                pvc
            ) == snapshot:
                md = pvc["metadata"]
                self._spawn("populate", md["uid"], self._populate(namespace, md["name"]))

    def _spawn(self, op: str, uid: str, coro: Awaitable[None]) -> None:
        marker = (op, uid)
        if marker in self._running:
            coro.close()  # type: ignore[attr-defined]
            return
        self._running.add(marker)

        async def run() -> None:
            try:
                await coro
            except ApiError as e:  # the object went away meanwhile
                log.debug("snapshot controller: %s %s: %s", op, uid, e)
            except Exception:
                log.exception("snapshot controller: %s %s failed", op, uid)
            finally:
                self._running.discard(marker)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _lock(self, key: _Key) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _current(self, key: _Key, uid: str) -> dict[str, Any] | None:
        snap = self._store.get(self._snapshots, key[0], key[1])
        if snap is None or snap["metadata"]["uid"] != uid:
            return None
        return snap

    # -- taking a snapshot ----------------------------------------------------------------
    def _fail(self, key: _Key, snap: dict[str, Any], message: str) -> None:
        def set_error(o: dict[str, Any]) -> None:
            status = o.setdefault("status", {}) or {}
            o["status"] = status
            status["readyToUse"] = False
            status["error"] = {"message": message, "time": now_rfc3339()}

        self._store.mutate(self._snapshots, key[0], key[1], set_error)
        self._recorder.record(snap, "Warning", "SnapshotCreationFailed", message)

    def _resolve_class(self, snap: dict[str, Any]) -> tuple[str | None, str | None]:
        """(class name, error message)."""
        name = (snap.get("spec") or {}).get("volumeSnapshotClassName")
        if name:
            if self._store.get(self._classes, None, name) is None:
                return None, (
                    f"failed to get input parameters to create snapshot {snap['metadata']['name']}: "
                    f'"failed to retrieve snapshot class {name} from the informer: '
                    f'\\"volumesnapshotclass.snapshot.storage.k8s.io \\\\\\"{name}\\\\\\" not found\\""'
                )
            return name, None
        defaults = [
            c["metadata"]["name"]
            for c in self._store.list(self._classes)[0]
            if (c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
        ]
        if len(defaults) != 1:
            return None, (
                "cannot find default snapshot class"
                if not defaults
                else f"{len(defaults)} default snapshot classes were found"
            )
        return defaults[0], None

    async def _take(self, key: _Key, uid: str) -> None:
        snap = self._current(key, uid)
        if snap is None or snap["metadata"].get("deletionTimestamp"):
            return
        ns, name = key
        source = (snap.get("spec") or {}).get("source") or {}
        class_name, problem = self._resolve_class(snap)
        if problem:
            self._fail(key, snap, problem)
            return
        if source.get("volumeSnapshotContentName"):
            self._fail(
                key,
                snap,
                "kubesim does not serve VolumeSnapshotContents: pre-provisioned snapshots "
                "(spec.source.volumeSnapshotContentName) are not supported",
            )
            return
        claim = str(source.get("persistentVolumeClaimName") or "")
        pvc = self._store.get(self._pvcs, ns, claim)
        if pvc is None:
            self._fail(
                key,
                snap,
                f"failed to get input parameters to create snapshot {name}: "
                f'"failed to retrieve PVC {claim} from the lister: '
                f'\\"persistentvolumeclaim \\\\\\"{claim}\\\\\\" not found\\""',
            )
            return
        if (pvc.get("status") or {}).get("phase") != "Bound":
            self._fail(
                key,
                snap,
                f"the PVC {claim} is not yet bound to a PV, will not attempt to take a snapshot",
            )
            return
        content = f"snapcontent-{uid}"

        def bind(o: dict[str, Any]) -> None:
            finalizers = o["metadata"].setdefault("finalizers", [])
            if BOUND_FINALIZER not in finalizers:
                finalizers.append(BOUND_FINALIZER)
            o.setdefault("spec", {})["volumeSnapshotClassName"] = class_name
            o["status"] = {"boundVolumeSnapshotContentName": content, "readyToUse": False}

        self._store.mutate(self._snapshots, ns, name, bind)
        self._recorder.record(
            snap,
            "Normal",
            "CreatingSnapshot",
            f"Waiting for a snapshot {ns}/{name} to be created by the CSI driver.",
        )
        restore_size = _claim_size(pvc)
        async with self._lock(key):
            if self._current(key, uid) is None:
                return
            source_dir = self._volumes.claim_dir(ns, claim)
            await self._volumes_settled(ns, claim)
            await asyncio.to_thread(_snapshot_folder, source_dir, self.folder(ns, name))
        if self._current(key, uid) is None:
            return
        created = now_rfc3339()

        def ready(o: dict[str, Any]) -> None:
            status = o.get("status") or {}
            status.pop("error", None)
            status.update(
                {
                    "boundVolumeSnapshotContentName": content,
                    "creationTime": created,
                    "readyToUse": True,
                    **({"restoreSize": restore_size} if restore_size else {}),
                }
            )
            o["status"] = status

        done = self._store.mutate(self._snapshots, ns, name, ready)
        self._recorder.record(
            done,
            "Normal",
            "SnapshotCreated",
            f"Snapshot {ns}/{name} was successfully created by the CSI driver.",
        )
        self._recorder.record(
            done, "Normal", "SnapshotReady", f"Snapshot {ns}/{name} is ready to use."
        )

    async def _volumes_settled(self, namespace: str, claim: str) -> None:
        settled: Callable[[str, str], Awaitable[None]] | None = getattr(
            self._volumes, "settled", None
        )
        if settled is not None:
            await settled(namespace, claim)

    # -- deleting a snapshot --------------------------------------------------------------
    async def _remove(self, key: _Key, uid: str, *, finalize: bool) -> None:
        async with self._lock(key):
            current = self._store.get(self._snapshots, key[0], key[1])
            if current is not None and current["metadata"]["uid"] != uid:
                return  # a new snapshot of the same name owns the folder now
            await asyncio.to_thread(_remove, self.folder(*key))
        if finalize and self._current(key, uid) is not None:

            def release(o: dict[str, Any]) -> None:
                o["metadata"]["finalizers"] = [
                    f for f in o["metadata"].get("finalizers") or [] if f != BOUND_FINALIZER
                ]

            self._store.mutate(self._snapshots, key[0], key[1], release)
        if not self._lock(key).locked():
            self._locks.pop(key, None)

    # -- restoring a claim ----------------------------------------------------------------
    async def _populate(self, namespace: str, claim: str) -> None:
        pvc = self._store.get(self._pvcs, namespace, claim)
        if pvc is None or (pvc.get("status") or {}).get("phase") != "Pending":
            return
        uid = pvc["metadata"]["uid"]
        source = snapshot_source(pvc)
        if source is None:
            return
        handle = f"error getting handle for DataSource Type VolumeSnapshot by Name {source}"
        snap = self._store.get(self._snapshots, namespace, source)
        problem = None
        if snap is None:
            problem = (
                f"{handle}: error getting snapshot {source} from api server: "
                f'volumesnapshots.snapshot.storage.k8s.io "{source}" not found'
            )
        elif snap["metadata"].get("deletionTimestamp"):
            problem = f"{handle}: snapshot {source} is currently being deleted"
        elif not (snap.get("status") or {}).get("readyToUse"):
            problem = f"{handle}: snapshot {source} is not Ready"
        else:
            requested = _claim_request(pvc)
            restore = (snap.get("status") or {}).get("restoreSize")
            if requested and restore and parse_quantity(requested) < parse_quantity(restore):
                problem = (
                    f"requested volume size {int(parse_quantity(requested))} is less than the "
                    f"size {int(parse_quantity(restore))} for the source snapshot {source}"
                )
        if problem or snap is None:
            self._recorder.record(
                pvc,
                "Warning",
                "ProvisioningFailed",
                problem or "",
                component=f"{DRIVER}_external-provisioner",
            )
            return
        self._recorder.record(
            pvc,
            "Normal",
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{namespace}/{claim}"',
            component=f"{DRIVER}_external-provisioner",
        )
        key = (namespace, source)
        target = self._volumes.claim_dir(namespace, claim)
        async with self._lock(key):
            await self._volumes_settled(namespace, claim)
            await asyncio.to_thread(_copy_tree, self.folder(namespace, source), target)
        current = self._store.get(self._pvcs, namespace, claim)
        if current is None or current["metadata"]["uid"] != uid:
            if current is None:
                await asyncio.to_thread(_remove, target)
            return
        volume = f"pvc-{uid}"
        size = _claim_request(current) or (snap.get("status") or {}).get("restoreSize")

        def bind(o: dict[str, Any]) -> None:
            o.setdefault("spec", {})["volumeName"] = volume
            status: dict[str, Any] = {
                "phase": "Bound",
                "accessModes": (o.get("spec") or {}).get("accessModes") or [],
            }
            if size:
                status["capacity"] = {"storage": size}
            o["status"] = status

        bound = self._store.mutate(self._pvcs, namespace, claim, bind)
        self._recorder.record(
            bound,
            "Normal",
            "ProvisioningSucceeded",
            f"Successfully provisioned volume {volume}",
            component=f"{DRIVER}_external-provisioner",
        )


def _claim_request(pvc: dict[str, Any]) -> str | None:
    value = (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    return str(value) if value else None


def _claim_size(pvc: dict[str, Any]) -> str | None:
    capacity = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
    return str(capacity) if capacity else _claim_request(pvc)


# -- blocking helpers (run in threads) ----------------------------------------------------
def _snapshot_folder(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` through a temporary sibling, so the snapshot folder is
    either absent or complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    _remove(partial)
    if source.is_dir():
        _copy_tree(source, partial)
    else:  # a claim no pod has used yet: an empty volume, owner-only like a new claim's
        partial.mkdir(mode=0o700)
        os.chmod(partial, 0o700)
    _remove(target)
    os.rename(partial, target)


def _copy_tree(source: Path, target: Path) -> None:
    """Copy a folder's contents into ``target`` (created if missing): regular files, folders
    and symlinks with their modes and times, and their owners when running as root. Sockets,
    FIFOs and devices are skipped (a volume snapshot of a live home may hold sockets)."""
    as_root = os.geteuid() == 0
    target.mkdir(parents=True, exist_ok=True)
    for dirpath, dirnames, filenames in os.walk(source):
        rel = Path(dirpath).relative_to(source)
        out_dir = target / rel
        for name in [*dirnames, *filenames]:
            src, dst = Path(dirpath) / name, out_dir / name
            st = os.lstat(src)
            if stat.S_ISLNK(st.st_mode):
                _remove(dst)
                os.symlink(os.readlink(src), dst)
                if name in dirnames:
                    dirnames.remove(name)  # os.walk does not follow it; neither do we
            elif stat.S_ISDIR(st.st_mode):
                dst.mkdir(exist_ok=True)
            elif stat.S_ISREG(st.st_mode):
                shutil.copy2(src, dst, follow_symlinks=False)
            else:
                continue
            if as_root:
                os.lchown(dst, st.st_uid, st.st_gid)
    # Folder modes and times last: copying into a folder changes its mtime.
    for dirpath, dirnames, _ in os.walk(source, topdown=False):
        rel = Path(dirpath).relative_to(source)
        for path in [Path(dirpath) / d for d in dirnames] + [Path(dirpath)]:
            dst = target / rel / path.name if path != Path(dirpath) else target / rel
            if dst.is_symlink() or not dst.is_dir():
                continue
            st = os.stat(path)
            if as_root:
                os.chown(dst, st.st_uid, st.st_gid)
            os.chmod(dst, stat.S_IMODE(st.st_mode))
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)
