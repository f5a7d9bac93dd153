"""Keeping the cluster's Kueue objects what the policy renders (I/O through ``hub/kube``).

* :func:`apply_objects` creates what is missing and rewrites what the policy changed. Each
  object carries a digest of what gpulab rendered (``gpulab.io/rendered-digest``): an object
  whose digest matches is left alone (the API server fills in defaults, so its spec never
  equals the rendered one), one whose digest differs is replaced. A LocalQueue that must point
  at another ClusterQueue is deleted and made again (Kueue makes ``spec.clusterQueue``
  immutable). An object of the same name that gpulab did not make is never touched: it is
  reported as a conflict.
* :func:`ensure_user_queues` makes one user's queues on demand (the spawner and the gateway
  call it before a spawn or a submit) and returns the LocalQueue to name in the
  ``kueue.x-k8s.io/queue-name`` label. It remembers, per client, what it made: a repeated call
  with the same rendering makes no API call for :data:`ENSURE_TTL` seconds.
* :func:`sync_policy` (at the hub's start and on every policy reload) applies the policy's
  objects and every existing user's queues as the new policy renders them, then deletes the
  gpulab objects the policy no longer renders (a removed group's cohort and queues, a removed
  GPU type's flavor).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ..kube.client import KubeClient, KubeError
from ..kube.paths import resource_path
from ..names import username_label
from ..policy.document import Policy
from ..workload.labels import (
    APP,
    COMPONENT_LABEL,
    GROUP_LABEL,
    KUEUE_COMPONENT,
    MANAGED_BY_LABEL,
    RENDERED_DIGEST_ANNOTATION,
    USER_LABEL,
    USERNAME_ANNOTATION,
    labels_of,
)
from . import names
from .render import KINDS, render_policy, render_user

__all__ = [
    "ENSURE_TTL",
    "OWNED_SELECTOR",
    "KueueConflict",
    "SyncReport",
    "apply_object",
    "apply_objects",
    "ensure_user_queues",
    "object_path",
    "rendered_digest",
    "sync_policy",
]

log = logging.getLogger("gpulab.kueue")

Obj = dict[str, Any]
Outcome = Literal["created", "updated", "replaced", "unchanged", "conflict"]

OWNED_SELECTOR: Final = f"{MANAGED_BY_LABEL}={APP},{COMPONENT_LABEL}={KUEUE_COMPONENT}"
ENSURE_TTL: Final = 300.0  # seconds a user's queues count as made without looking again
_WRITE_TRIES: Final = 3  # a replace that meets a newer resourceVersion reads and tries again
# Deleted in this order: what names another kind goes first.
_DELETE_ORDER: Final = ("LocalQueue", "ClusterQueue", "Cohort", "ResourceFlavor")


class KueueConflict(Exception):
    """An object of a name gpulab renders exists but is not gpulab's (or another user's)."""


@dataclass
class SyncReport:
    """What one apply or sync did, by ``Kind/name``."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deleted)

    def summary(self) -> str:
        parts = [
            f"{len(getattr(self, key))} {key}"
            for key in ("created", "updated", "deleted", "unchanged", "conflicts")
            if getattr(self, key)
        ]
        return ", ".join(parts) or "nothing to do"


# ----------------------------------------------------------------------------- one object


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj['kind']}/{ns + '/' if ns else ''}{meta.get('name')}"


def object_path(obj: Obj, *, collection: bool = False) -> str:
    """The REST path of a rendered object (or of its collection)."""
    plural, namespaced = KINDS[obj["kind"]]
    meta = obj["metadata"]
    return resource_path(
        names.GROUP_VERSION,
        plural,
        meta.get("namespace") if namespaced else None,
        None if collection else meta["name"],
    )


def rendered_digest(obj: Obj) -> str:
    """A digest of a rendered object (its digest annotation left out)."""
    body = copy.deepcopy(obj)
    annotations = body.get("metadata", {}).get("annotations") or {}
    annotations.pop(RENDERED_DIGEST_ANNOTATION, None)
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def _with_digest(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    meta = out["metadata"]
    meta["annotations"] = {
        **(meta.get("annotations") or {}),
        RENDERED_DIGEST_ANNOTATION: rendered_digest(obj),
    }
    return out


def _ours(live: Obj, desired: Obj) -> bool:
    """Whether ``live`` is gpulab's object for ``desired``: gpulab's component labels, and the
    same user (a user's queues are never another user's to take over)."""
    labels = labels_of(live)
    if labels.get(MANAGED_BY_LABEL) != APP or labels.get(COMPONENT_LABEL) != KUEUE_COMPONENT:
        return False
    return labels.get(USER_LABEL) == labels_of(desired).get(USER_LABEL)


async def apply_object(client: KubeClient, obj: Obj, known: Obj | None = None) -> Outcome:
    """Make the cluster's object what ``obj`` renders; what was done. ``known``: the object as
    a list just read it (saves the first GET; None: read it)."""
    desired = _with_digest(obj)
    path = object_path(obj)
    for attempt in range(_WRITE_TRIES):
        live = known if attempt == 0 and known is not None else await client.get(path)
        if live is None:
            try:
                await client.create(object_path(obj, collection=True), desired)
                return "created"
            except KubeError as exc:
                if exc.status != 409:  # 409: another process made it meanwhile
                    raise
                continue
        if not _ours(live, desired):
            return "conflict"
        annotations = (live.get("metadata") or {}).get("annotations") or {}
        if annotations.get(RENDERED_DIGEST_ANNOTATION) == rendered_digest(obj):
            return "unchanged"
        if obj["kind"] == "LocalQueue" and (live.get("spec") or {}).get("clusterQueue") != desired[
            "spec"
        ].get("clusterQueue"):
            await client.delete(path)
            await client.create(object_path(obj, collection=True), desired)
            return "replaced"
        body = copy.deepcopy(desired)
        body["metadata"]["resourceVersion"] = live["metadata"].get("resourceVersion")
        try:
            await client.request("PUT", path, body=body)
            return "updated"
        except KubeError as exc:
            if exc.status not in (404, 409):  # changed or deleted meanwhile: look again
                raise
    raise KubeError(409, "Conflict", f"{_key(obj)} kept changing while gpulab updated it")


async def apply_objects(
    client: KubeClient, objects: Iterable[Obj], known: dict[str, Obj] | None = None
) -> SyncReport:
    """Apply each object in order (the order of :func:`.render.render_policy`). ``known``:
    live objects by ``Kind/[namespace/]name``, as lists just read them."""
    report = SyncReport()
    for obj in objects:
        key = _key(obj)
        outcome = await apply_object(client, obj, (known or {}).get(key))
        if outcome == "conflict":
            log.warning(
                "Kueue: %s exists but was not made by gpulab; left as it is (rename or delete "
                "it so that gpulab can manage it)",
                key,
            )
            report.conflicts.append(key)
        elif outcome in ("updated", "replaced"):
            report.updated.append(key)
        else:
            getattr(report, outcome).append(key)
    return report


# ----------------------------------------------------------------------------- a user

_ENSURED: weakref.WeakKeyDictionary[KubeClient, dict[str, float]] = weakref.WeakKeyDictionary()


async def ensure_user_queues(
    client: KubeClient, policy: Policy, user: str, group: str, *, namespace: str
) -> str:
    """Make (or update) the queues of hub user ``user`` in quota group ``group``; the
    LocalQueue their ordinary work names. Cheap when nothing changed: no API call when this
    client made the same rendering less than :data:`ENSURE_TTL` seconds ago. Raises
    :class:`KueueConflict` when one of the names is taken by an object that is not this
    user's, KeyError for a group the policy lacks, KubeError when the API fails."""
    objects = render_user(policy, user, group, namespace)
    key = rendered_digest({"kind": "List", "metadata": {}, "items": objects})
    made = _ENSURED.setdefault(client, {})
    now = time.monotonic()
    if now - made.get(key, -ENSURE_TTL) < ENSURE_TTL:
        return names.user_local_queue(user)
    report = await apply_objects(client, objects)
    if report.conflicts:
        raise KueueConflict(
            f"Kueue objects named for user {user!r} belong to someone else: "
            + ", ".join(report.conflicts)
        )
    if report.created:
        # A user whose quota group changed leaves a queue in the old group's cohort.
        await _delete_other_user_queues(client, user, names.user_cluster_queue(group, user))
    made[key] = now
    return names.user_local_queue(user)


async def _delete_other_user_queues(client: KubeClient, user: str, keep: str) -> None:
    selector = f"{OWNED_SELECTOR},{USER_LABEL}={username_label(user)}"
    path = resource_path(names.GROUP_VERSION, KINDS["ClusterQueue"][0])
    items, _ = await client.list(path, labelSelector=selector)
    for item in items:
        name = item["metadata"]["name"]
        if name != keep:
            await client.delete(f"{path}/{name}")


# ----------------------------------------------------------------------------- the policy


async def _owned(client: KubeClient, kind: str, namespace: str) -> list[Obj]:
    plural, namespaced = KINDS[kind]
    path = resource_path(names.GROUP_VERSION, plural, namespace if namespaced else None)
    items, _ = await client.list(path, labelSelector=OWNED_SELECTOR)
    for item in items:  # list items carry no kind
        item.setdefault("kind", kind)
    return items


def _users_of(cluster_queues: Iterable[Obj]) -> list[tuple[str, str]]:
    """(hub user, group) of every user ClusterQueue gpulab made."""
    out = []
    for cq in cluster_queues:
        labels = labels_of(cq)
        annotations = (cq.get("metadata") or {}).get("annotations") or {}
        user, group = annotations.get(USERNAME_ANNOTATION), labels.get(GROUP_LABEL)
        if labels.get(USER_LABEL) and user and group:
            out.append((user, group))
    return out


async def sync_policy(client: KubeClient, policy: Policy, namespace: str) -> SyncReport:
    """Make the cluster's gpulab Kueue objects what ``policy`` renders: the policy's objects,
    each existing user's queues (in the group recorded on their ClusterQueue; a user of a
    group the policy no longer has loses their queues until their next spawn or submit), and
    nothing else of gpulab's."""
    live: dict[str, list[Obj]] = {k: await _owned(client, k, namespace) for k in KINDS}
    desired = render_policy(policy, namespace)
    for user, group in _users_of(live["ClusterQueue"]):
        if group in policy.groups:
            desired.extend(render_user(policy, user, group, namespace))
    # Objects gpulab made are known from the lists (a sync with nothing to do reads nothing
    # else); others of the same names are read and left alone.
    known = {_key(obj): obj for items in live.values() for obj in items}
    report = await apply_objects(client, desired, known)
    wanted = {_key(obj) for obj in desired}
    for kind in (*_DELETE_ORDER, *(k for k in KINDS if k not in _DELETE_ORDER)):
        for obj in live[kind]:
            if _key(obj) not in wanted:
                await client.delete(object_path(obj))
                report.deleted.append(_key(obj))
    _ENSURED.pop(client, None)  # what it remembered may just have been deleted
    return report
