"""Pod volumes as local folders, and the PersistentVolumeClaim folders' lifecycle.

Backing on the host (``{data_dir}`` is kubesim's data folder):

- ``persistentVolumeClaim`` -> ``{data_dir}/volumes/{namespace}/{claimName}``. The folder is
  made when the claim is created (or first used) and removed when the claim is deleted, so it
  outlives pods like a real volume. A new claim folder is root's, mode 0700; the first pod
  that mounts it writable as a non-root ``runAsUser`` gets it (owner ``runAsUser``, group
  ``runAsGroup``), and ``fsGroup`` makes it group-owned, group-writable and setgid (2770), as
  a CSI driver honouring ``fsGroup`` does: never world-writable. A ``subPath`` folder kubesim
  creates takes its volume root's owner, group and mode.
- ``emptyDir`` -> ``{pod_dir}/volumes/{name}`` (0777, removed with the pod); with
  ``medium: Memory`` a tmpfs sized by ``sizeLimit`` when the pod runs in its own mount
  namespace.
- ``secret`` / ``configMap`` / ``downwardAPI`` / ``projected`` -> files written in
  ``{pod_dir}/volumes/{name}`` (secrets base64-decoded; ``defaultMode``/``items[].mode``,
  0644 by default), mounted read-only.
- ``hostPath`` -> the host path itself.

Missing objects (claim, secret, config map not ``optional``) raise :class:`MountError`, which
the kubelet reports as a ``FailedMount`` event and retries, as a real kubelet does.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from gpulab.kubesim.quantity import parse_quantity
from gpulab.kubesim.store import ResourceType, Store, WatchEvent, resource

log = logging.getLogger(__name__)
DEFAULT_MODE = 0o644


class MountError(Exception):
    """A volume cannot be set up yet (the message is the FailedMount event's)."""


@dataclass
class Volume:
    name: str
    path: Path  # host folder (or file for a hostPath file)
    read_only: bool = False  # forced read-only (secret, configMap, ...)
    tmpfs_size: int | None = None  # emptyDir medium Memory: size in bytes (0 = unlimited)


class Volumes:
    def __init__(self, store: Store, data_dir: Path) -> None:
        self._store = store
        self._root = data_dir / "volumes"
        # Claim folders are made and removed in order (one worker), so a claim recreated under
        # the same name never races the removal of the old folder; settled() awaits that.
        self._folder_ops = ThreadPoolExecutor(1, thread_name_prefix="kubesim-claims")
        self._pending: dict[Path, asyncio.Future[None]] = {}
        self._unsubscribe = store.subscribe(self._on_event, read_only=True)
        for pvc in store.list(resource("persistentvolumeclaims"))[0]:
            _make_claim_dir(self.claim_dir(pvc["metadata"]["namespace"], pvc["metadata"]["name"]))

    def close(self) -> None:
        self._unsubscribe()
        self._folder_ops.shutdown(wait=False)

    async def settled(self, namespace: str, claim: str) -> None:
        """Wait until the claim folder's queued make/remove operations are done."""
        pending = self._pending.get(self.claim_dir(namespace, claim))
        if pending is not None:
            await asyncio.shield(pending)

    def claim_dir(self, namespace: str, claim: str) -> Path:
        return self._root / namespace / claim

    def _on_event(self, rt: ResourceType, event: WatchEvent) -> None:
        if rt.kind != "PersistentVolumeClaim":
            return
        md = event.object["metadata"]
        path = self.claim_dir(md["namespace"], md["name"])
        if event.type in ("ADDED", "DELETED"):
            op = _make_claim_dir if event.type == "ADDED" else _remove
            fut = asyncio.get_running_loop().run_in_executor(self._folder_ops, op, path)
            self._pending[path] = fut
            fut.add_done_callback(
                lambda f: self._pending.pop(path, None) if self._pending.get(path) is f else None
            )

    async def prepare(self, pod: dict[str, Any], pod_dir: Path) -> dict[str, Volume]:
        """Set up every volume of ``pod``; returns them by name."""
        md, spec = pod["metadata"], pod.get("spec") or {}
        ns = md["namespace"]
        sc = spec.get("securityContext") or {}
        fs_group = sc.get("fsGroup")
        owner = _claim_owner(spec)
        volumes: dict[str, Volume] = {}
        for v in spec.get("volumes") or []:
            name = v["name"]
            local = pod_dir / "volumes" / name
            if (claim := v.get("persistentVolumeClaim")) is not None:
                pvc = self._store.get(resource("persistentvolumeclaims"), ns, claim["claimName"])
                if pvc is None or pvc["metadata"].get("deletionTimestamp"):
                    raise MountError(
                        f'persistentvolumeclaim "{claim["claimName"]}" not found'
                        if pvc is None
                        else f'persistentvolumeclaim "{claim["claimName"]}" is being deleted'
                    )
                if (pvc.get("status") or {}).get("phase") == "Pending":  # e.g. being restored
                    raise MountError(f'persistentvolumeclaim "{claim["claimName"]}" is not bound')
                await self.settled(ns, claim["claimName"])
                path = self.claim_dir(ns, claim["claimName"])
                read_only = bool(claim.get("readOnly"))
                writer = None if read_only or _only_read(spec, name) else owner
                await asyncio.to_thread(_make_claim_dir, path, writer)
                volumes[name] = Volume(name, path, read_only=read_only)
            elif (empty := v.get("emptyDir")) is not None:
                size = None
                if (empty or {}).get("medium") == "Memory":
                    limit = (empty or {}).get("sizeLimit")
                    size = int(parse_quantity(limit)) if limit else 0
                await asyncio.to_thread(_make_dir, local, 0o777, fs_group)
                volumes[name] = Volume(name, local, tmpfs_size=size)
            elif (host := v.get("hostPath")) is not None:
                path = Path(host["path"])
                if host.get("type") in ("DirectoryOrCreate",) and not path.exists():
                    await asyncio.to_thread(_make_dir, path, 0o755, None)
                if not path.exists():
                    raise MountError(f"hostPath type check failed: {path} does not exist")
                volumes[name] = Volume(name, path)
            elif any(k in v for k in ("secret", "configMap", "downwardAPI", "projected")):
                files = self._projected_files(pod, v)
                await asyncio.to_thread(_write_files, local, files, fs_group)
                volumes[name] = Volume(name, local, read_only=True)
            else:
                kinds = [k for k in v if k != "name"]
                raise MountError(f"kubesim does not support volume {name!r} of type {kinds}")
        return volumes

    # -- file contents ------------------------------------------------------------------
    def _projected_files(
        self, pod: dict[str, Any], v: dict[str, Any]
    ) -> dict[str, tuple[bytes, int]]:
        """relative path -> (content, mode) for a secret/configMap/downwardAPI/projected volume."""
        if "projected" in v:
            default = v["projected"].get("defaultMode", DEFAULT_MODE)
            files: dict[str, tuple[bytes, int]] = {}
            for source in v["projected"].get("sources") or []:
                for kind, src in source.items():
                    files.update(self._source_files(pod, kind, src, default))
            return files
        for kind in ("secret", "configMap", "downwardAPI"):
            if kind in v:
                src = v[kind] or {}
                return self._source_files(pod, kind, src, src.get("defaultMode", DEFAULT_MODE))
        return {}

    def _source_files(
        self, pod: dict[str, Any], kind: str, src: dict[str, Any], default_mode: int
    ) -> dict[str, tuple[bytes, int]]:
        ns = pod["metadata"]["namespace"]
        if kind in ("secret", "configMap"):
            name = src.get("secretName") if kind == "secret" else src.get("name")
            name = name or src.get("name")
            rt = resource("secrets" if kind == "secret" else "configmaps")
            obj = self._store.get(rt, ns, name or "")
            if obj is None:
                if src.get("optional"):
                    return {}
                raise MountError(
                    f'{kind.lower() if kind == "secret" else "configmap"} "{name}" not found'
                )
            data = data_of(obj)
            items = src.get("items")
            if not items:
                return {k: (val, default_mode) for k, val in data.items()}
            out = {}
            for item in items:
                if item["key"] not in data:
                    if src.get("optional"):
                        continue
                    raise MountError(f'key "{item["key"]}" not found in {kind} "{name}"')
                out[item["path"]] = (data[item["key"]], item.get("mode", default_mode))
            return out
        if kind == "downwardAPI":
            out = {}
            for item in src.get("items") or []:
                ref = item.get("fieldRef") or {}
                if ref:
                    value = field_value(pod, ref.get("fieldPath", ""))
                else:
                    value = ""
                out[item["path"]] = (value.encode(), item.get("mode", default_mode))
            return out
        return {}  # serviceAccountToken and others: not provided by kubesim

    async def cleanup_pod(self, pod_dir: Path) -> None:
        await asyncio.to_thread(_remove, pod_dir)


def data_of(obj: dict[str, Any]) -> dict[str, bytes]:
    """A Secret's or ConfigMap's data as bytes (secrets are stored base64-encoded)."""
    out: dict[str, bytes] = {}
    if obj.get("kind") == "Secret":
        for k, v in (obj.get("data") or {}).items():
            out[k] = base64.b64decode(v or "")
        for k, v in (obj.get("stringData") or {}).items():
            out[k] = str(v).encode()
    else:
        for k, v in (obj.get("data") or {}).items():
            out[k] = str(v).encode()
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(v or "")
    return out


def field_value(pod: dict[str, Any], path: str) -> str:
    """A downward-API ``fieldPath`` of the pod (as far as kubesim knows it)."""
    md, spec, status = pod["metadata"], pod.get("spec") or {}, pod.get("status") or {}
    simple = {
        "metadata.name": md.get("name", ""),
        "metadata.namespace": md.get("namespace", ""),
        "metadata.uid": md.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": status.get("podIP", ""),
        "status.podIPs": ",".join(p["ip"] for p in status.get("podIPs") or []),
        "status.hostIP": status.get("hostIP", ""),
        "status.hostIPs": ",".join(p["ip"] for p in status.get("hostIPs") or []),
    }
    if path in simple:
        return simple[path]
    for prefix, key in (("metadata.labels", "labels"), ("metadata.annotations", "annotations")):
        values = md.get(key) or {}
        if path == prefix:
            return "\n".join(f"{k}={json.dumps(v)}" for k, v in sorted(values.items()))
        if path.startswith(prefix + "[") and path.endswith("]"):
            return values.get(path[len(prefix) + 1 : -1].strip("'\""), "")
    return ""


def safe_join(base: Path, sub: str) -> Path:
    """``base/sub`` for a subPath, refusing absolute paths and ``..`` like the API does."""
    p = PurePosixPath(sub)
    if p.is_absolute() or ".." in p.parts:
        raise MountError(f"subPath {sub!r} must be a relative path without '..'")
    return base / p


@dataclass(frozen=True)
class ClaimOwner:
    """Who a pod writes a claim as: its ``runAsUser``/``runAsGroup`` and ``fsGroup``."""

    uid: int | None
    gid: int | None
    fs_group: int | None


def _claim_owner(spec: dict[str, Any]) -> ClaimOwner:
    """The pod's ids (pod-level, else its first container's), as a CSI driver sees them."""
    pod_sc = spec.get("securityContext") or {}
    first = ((spec.get("containers") or [{}])[0].get("securityContext")) or {}

    def pick(key: str) -> int | None:
        value = pod_sc.get(key, first.get(key))
        return None if value is None else int(value)

    fs_group = pod_sc.get("fsGroup")
    return ClaimOwner(
        pick("runAsUser"), pick("runAsGroup"), None if fs_group is None else int(fs_group)
    )


def _only_read(spec: dict[str, Any], volume: str) -> bool:
    """Every container mounts ``volume`` read-only: the pod must not take the folder over."""
    containers = (spec.get("initContainers") or []) + (spec.get("containers") or [])
    mounts = [m for c in containers for m in c.get("volumeMounts") or [] if m["name"] == volume]
    return all(m.get("readOnly") for m in mounts)


# -- blocking helpers (run in threads) ------------------------------------------------
def _make_claim_dir(path: Path, owner: ClaimOwner | None = None) -> None:
    """The claim's folder: made root's and 0700; given to ``owner`` while no one else has it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        pass  # kept as it is: an admin may have provisioned it (a shared dataset, 0755)
    else:
        os.chmod(path, 0o700)
    if owner is None:
        return
    if owner.uid and os.stat(path).st_uid == 0:
        with contextlib.suppress(PermissionError):
            os.chown(path, owner.uid, -1 if owner.gid is None else owner.gid)
    if owner.fs_group is not None:
        _own(path, owner.fs_group)


def make_sub_dir(root: Path, sub: Path) -> None:
    """A subPath folder (and its missing parents) made as the volume root is: same owner,
    group and mode, so the pod that owns the volume can write in it."""
    st = os.stat(root)
    missing = [p for p in [sub, *sub.parents] if p.is_relative_to(root) and not p.exists()]
    for p in reversed(missing):
        p.mkdir(exist_ok=True)
        with contextlib.suppress(PermissionError):
            os.chown(p, st.st_uid, st.st_gid)
        os.chmod(p, stat.S_IMODE(st.st_mode))


def _make_dir(path: Path, mode: int, fs_group: int | None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if fs_group is not None:
        _own(path, fs_group)


def _own(path: Path, fs_group: int) -> None:
    """fsGroup: the volume root belongs to the group, which may write, and new files inherit it."""
    with contextlib.suppress(PermissionError):
        os.chown(path, -1, int(fs_group))
        os.chmod(path, (os.stat(path).st_mode & 0o7777) | 0o2070)


def _write_files(root: Path, files: dict[str, tuple[bytes, int]], fs_group: int | None) -> None:
    _remove(root)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755 if fs_group is None else 0o2755)
    for rel, (content, mode) in files.items():
        target = safe_join(root, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        os.chmod(target, mode)
        if fs_group is not None:
            with contextlib.suppress(PermissionError):
                os.chown(target, -1, int(fs_group))
    if fs_group is not None:
        with contextlib.suppress(PermissionError):
            os.chown(root, -1, int(fs_group))


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
