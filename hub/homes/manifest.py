"""Pure builders for home snapshots and home claims (no I/O).

A home snapshot is a ``snapshot.storage.k8s.io/v1`` VolumeSnapshot of the user's home PVC,
labelled so that it can be listed per user and never mistaken for anything else:

* ``app.kubernetes.io/name: gpulab``, ``app.kubernetes.io/managed-by: gpulab``,
  ``app.kubernetes.io/component: home-snapshot``
* ``gpulab.io/user: <escaped username>``, ``gpulab.io/home-claim: <claim>``,
  ``gpulab.io/snapshot-reason: manual | reset | restore | deleted``
* annotation ``gpulab.io/username`` (the username as JupyterHub spells it).

A new home claim is built by :func:`gpulab.hub.workload.pod.home_claim` (the one builder the
spawner and the jobs gateway use too). A home claim is recreated with the same name, storage class, access modes, size, labels and
annotations as the one it replaces (server-set annotations dropped); restored from a snapshot
it gets ``spec.dataSource`` (and the mirrored ``dataSourceRef``) naming the VolumeSnapshot.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gpulab.hub.names import escape_username
from gpulab.hub.policy import Policy
from gpulab.hub.policy.quantities import parse_quantity
from gpulab.hub.workload.labels import (
    DELETE_AFTER_LABEL,
    DELETION_SNAPSHOT_ANNOTATION,
    HOME_CLAIM_LABEL,
    HOME_SNAPSHOT_COMPONENT,
    SNAPSHOT_REASON_LABEL,
    USER_LABEL,
    USERNAME_ANNOTATION,
    base_labels,
)
from gpulab.hub.workload.pod import home_of

SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
SNAPSHOT_VERSION = "v1"
SNAPSHOT_PLURAL = "volumesnapshots"
REASONS = ("manual", "reset", "restore", "deleted")
MAX_NAME = 63  # snapshot names stay DNS labels (usable as label values)

# Annotations the control plane sets on a claim; a recreated claim must not carry them.
_SERVER_ANNOTATION_PREFIXES = (
    "pv.kubernetes.io/",
    "volume.kubernetes.io/",
    "volume.beta.kubernetes.io/storage-provisioner",
    "kubectl.kubernetes.io/last-applied-configuration",
)


class HomeError(Exception):
    """A home operation that was refused or failed; the message says why, for people."""


class HomeUnavailable(HomeError):
    """The user's home claim is being deleted: a server started now would wait on it forever."""


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    claim: str
    user: str  # escaped username label
    reason: str
    created: str  # metadata.creationTimestamp
    ready: bool
    restore_size: str | None
    error: str | None

    @classmethod
    def from_object(cls, obj: dict[str, Any]) -> SnapshotInfo:
        md = obj.get("metadata") or {}
        labels = md.get("labels") or {}
        status = obj.get("status") or {}
        source = (obj.get("spec") or {}).get("source") or {}
        error = status.get("error") or {}
        return cls(
            name=md.get("name", ""),
            claim=source.get("persistentVolumeClaimName") or labels.get(HOME_CLAIM_LABEL, ""),
            user=labels.get(USER_LABEL, ""),
            reason=labels.get(SNAPSHOT_REASON_LABEL, ""),
            created=md.get("creationTimestamp", ""),
            ready=bool(status.get("readyToUse")),
            restore_size=status.get("restoreSize"),
            error=error.get("message") if isinstance(error, dict) else None,
        )


def user_label(username: str) -> str:
    return escape_username(username)


def home_claim_name(policy: Policy, username: str) -> str:
    """The home PVC of ``username`` (policy ``storage.home.claim_name_template``)."""
    return home_of(policy, username).name


def dataset_claims(policy: Policy) -> frozenset[str]:
    return frozenset(ds.claim for ds in policy.storage.datasets)


def check_home_claim(policy: Policy, claim: str) -> None:
    """Refuse to treat a dataset claim as a home (a template that renders to one)."""
    if claim in dataset_claims(policy):
        raise HomeError(
            f"claim {claim!r} is a shared dataset in the policy (storage.datasets); gpulab never "
            "snapshots-and-replaces, resets or deletes dataset claims"
        )


def snapshot_name(claim: str, reason: str, now: datetime, attempt: int = 0) -> str:
    """``<claim>-<reason>-<YYYYmmdd-HHMMSS>[-<n>]``, the claim part shortened to fit 63."""
    if reason not in REASONS:
        raise ValueError(f"reason {reason!r}: use one of {', '.join(REASONS)}")
    suffix = f"-{reason}-{now.astimezone(UTC):%Y%m%d-%H%M%S}" + (f"-{attempt}" if attempt else "")
    return claim[: MAX_NAME - len(suffix)].rstrip("-") + suffix


def snapshot_labels(username: str, claim: str, reason: str) -> dict[str, str]:
    return {
        **base_labels(HOME_SNAPSHOT_COMPONENT),
        USER_LABEL: user_label(username),
        HOME_CLAIM_LABEL: claim,
        SNAPSHOT_REASON_LABEL: reason,
    }


def snapshot_manifest(
    *,
    name: str,
    namespace: str,
    username: str,
    claim: str,
    reason: str,
    snapshot_class: str | None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": claim}}
    if snapshot_class:
        spec["volumeSnapshotClassName"] = snapshot_class
    return {
        "apiVersion": f"{SNAPSHOT_GROUP}/{SNAPSHOT_VERSION}",
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": snapshot_labels(username, claim, reason),
            "annotations": {USERNAME_ANNOTATION: username},
        },
        "spec": spec,
    }


def _kept_annotations(annotations: dict[str, str] | None) -> dict[str, str]:
    return {
        k: v
        for k, v in (annotations or {}).items()
        if not any(k.startswith(p) for p in _SERVER_ANNOTATION_PREFIXES)
    }


def empty_claim_manifest(old: dict[str, Any]) -> dict[str, Any]:
    """A fresh claim like ``old`` (same name, class, modes, size, labels): an empty home.
    The deletion mark (``gpulab.io/delete-after``) is not carried over."""
    md, spec = old.get("metadata") or {}, old.get("spec") or {}
    labels = {k: v for k, v in (md.get("labels") or {}).items() if k != DELETE_AFTER_LABEL}
    new_spec: dict[str, Any] = {
        k: copy.deepcopy(spec[k])
        for k in ("accessModes", "resources", "storageClassName", "volumeMode", "selector")
        if spec.get(k) is not None
    }
    out: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": md["name"], "namespace": md.get("namespace"), "labels": labels},
        "spec": new_spec,
    }
    annotations = _kept_annotations(md.get("annotations"))
    if annotations:
        out["metadata"]["annotations"] = annotations
    return out


def restored_claim_manifest(base: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
    """``base`` (a claim manifest) restored from ``snapshot``: ``dataSource`` set, and the size
    raised to the snapshot's ``restoreSize`` if that is larger."""
    out = empty_claim_manifest(base)
    ref = {
        "apiGroup": SNAPSHOT_GROUP,
        "kind": "VolumeSnapshot",
        "name": snapshot["metadata"]["name"],
    }
    out["spec"]["dataSource"] = dict(ref)
    out["spec"]["dataSourceRef"] = dict(ref)
    restore = (snapshot.get("status") or {}).get("restoreSize")
    requests = out["spec"].setdefault("resources", {}).setdefault("requests", {})
    current = requests.get("storage")
    if restore and (current is None or parse_quantity(str(restore)) > parse_quantity(str(current))):
        requests["storage"] = str(restore)
    return out


def deletion_mark_patch(when: int, snapshot: str, username: str) -> dict[str, Any]:
    """Merge patch that marks a claim for deletion after ``when`` (epoch seconds). The mark
    names the snapshot taken at deletion and the owner as JupyterHub spells them, so the sweep
    can ask the hub whether the owner is still deleted and tell this mark from a later one."""
    return {
        "metadata": {
            "labels": {DELETE_AFTER_LABEL: str(when)},
            "annotations": {DELETION_SNAPSHOT_ANNOTATION: snapshot, USERNAME_ANNOTATION: username},
        }
    }


def unmark_patch() -> dict[str, Any]:
    """Merge patch that removes the deletion mark (the owner annotation stays harmless)."""
    return {
        "metadata": {
            "labels": {DELETE_AFTER_LABEL: None},
            "annotations": {DELETION_SNAPSHOT_ANNOTATION: None},
        }
    }


def claim_owner(pvc: dict[str, Any], snapshot: dict[str, Any] | None) -> str | None:
    """The username (as JupyterHub spells it) of a marked home: from the claim's mark, else
    from its deletion snapshot (marks made before the claim carried the owner)."""
    for obj in (pvc, snapshot or {}):
        name = ((obj.get("metadata") or {}).get("annotations") or {}).get(USERNAME_ANNOTATION)
        if name:
            return str(name)
    return None


def delete_after(pvc: dict[str, Any]) -> int | None:
    raw = ((pvc.get("metadata") or {}).get("labels") or {}).get(DELETE_AFTER_LABEL)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def mounting_pods(pods: list[dict[str, Any]], claim: str) -> list[str]:
    """Names of the pods that are not finished and mount ``claim`` (servers and jobs alike)."""
    out = []
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            if (volume.get("persistentVolumeClaim") or {}).get("claimName") == claim:
                out.append(pod["metadata"]["name"])
                break
    return sorted(out)
