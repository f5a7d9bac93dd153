"""The object store: every API object, one global resourceVersion, watches and GC.

The store is the single source of truth for the HTTP API and for the in-process
controllers (scheduler, kubelet, job controller). It is deliberately single-threaded:
every method runs on the one asyncio loop, so a change and the events it produces are
atomic without locks, and "list, then watch from the list's resourceVersion" never loses
an event (both are answered from the same in-memory state in one synchronous step).

Committed objects are never mutated in place: each change stores a fresh dict. That lets
the history window and watchers share snapshots safely; callers get deep copies.

With a :class:`~gpulab.kubesim.persist.Journal` the store starts from what an earlier run
committed and appends every commit to it, so its objects outlive the process.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from gpulab.kubesim import defaults
from gpulab.kubesim.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    expired,
    invalid,
    not_found,
)
from gpulab.kubesim.persist import Journal, resource_key
from gpulab.kubesim.selectors import (
    FieldSelector,
    LabelSelector,
    parse_field_selector,
    parse_label_selector,
)

__all__ = [
    "KUEUE_GROUP",
    "RESOURCES",
    "ApiError",
    "ResourceType",
    "Store",
    "Watch",
    "WatchEvent",
    "clone",
    "now_rfc3339",
    "resource",
]


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    kind: str
    plural: str
    namespaced: bool
    subresources: frozenset[str] = frozenset()
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _rt(
    group: str,
    kind: str,
    plural: str,
    namespaced: bool = True,
    sub: Iterable[str] = (),
    short: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    version: str = "v1",
) -> ResourceType:
    return ResourceType(group, version, kind, plural, namespaced, frozenset(sub), short, categories)


_ALL = ("all",)
KUEUE_GROUP = "kueue.x-k8s.io"
RESOURCES: dict[tuple[str, str], ResourceType] = {
    (rt.group, rt.plural): rt
    for rt in (
        _rt("", "Namespace", "namespaces", False, ["status"], ("ns",)),
        _rt("", "Pod", "pods", True, ["status", "log"], ("po",), _ALL),
        _rt("", "PersistentVolumeClaim", "persistentvolumeclaims", True, ["status"], ("pvc",)),
        _rt("", "Service", "services", True, ["status"], ("svc",), _ALL),
        _rt("", "Secret", "secrets"),
        _rt("", "ConfigMap", "configmaps", short=("cm",)),
        _rt("", "ServiceAccount", "serviceaccounts", short=("sa",)),
        _rt("", "Event", "events", short=("ev",)),
        _rt("", "ResourceQuota", "resourcequotas", True, ["status"], ("quota",)),
        _rt("", "LimitRange", "limitranges", short=("limits",)),
        _rt("", "Node", "nodes", False, ["status"], ("no",)),
        _rt("batch", "Job", "jobs", True, ["status"], (), _ALL),
        _rt("batch", "CronJob", "cronjobs", True, ["status"], ("cj",), _ALL),
        _rt("networking.k8s.io", "NetworkPolicy", "networkpolicies", short=("netpol",)),
        _rt("rbac.authorization.k8s.io", "Role", "roles"),
        _rt("rbac.authorization.k8s.io", "ClusterRole", "clusterroles", False),
        _rt("rbac.authorization.k8s.io", "RoleBinding", "rolebindings"),
        _rt("rbac.authorization.k8s.io", "ClusterRoleBinding", "clusterrolebindings", False),
        _rt(
            "snapshot.storage.k8s.io",
            "VolumeSnapshot",
            "volumesnapshots",
            True,
            ["status"],
            ("vs",),
        ),
        _rt(
            "snapshot.storage.k8s.io",
            "VolumeSnapshotClass",
            "volumesnapshotclasses",
            False,
            (),
            ("vsclass", "vsclasses"),
        ),
        _rt("scheduling.k8s.io", "PriorityClass", "priorityclasses", False, (), ("pc",)),
        # Kueue (served only when kubesim runs with --kueue; see gpulab.kubesim.kueue).
        *(
            _rt(KUEUE_GROUP, kind, plural, namespaced, sub, short, version="v1beta2")
            for kind, plural, namespaced, sub, short in (
                ("ResourceFlavor", "resourceflavors", False, (), ("flavor", "flavors", "rf")),
                ("ClusterQueue", "clusterqueues", False, ["status"], ("cq",)),
                ("Cohort", "cohorts", False, ["status"], ("co",)),
                ("LocalQueue", "localqueues", True, ["status"], ("queue", "queues", "lq")),
                ("WorkloadPriorityClass", "workloadpriorityclasses", False, (), ("wpc",)),
                ("Workload", "workloads", True, ["status"], ("kwl",)),
            )
        ),
    )
}


def resource(plural: str, group: str = "") -> ResourceType:
    """The registered type for ``plural`` in ``group`` (KeyError if kubesim does not serve it)."""
    return RESOURCES[(group, plural)]


class WatchEvent(NamedTuple):
    type: str  # ADDED | MODIFIED | DELETED | BOOKMARK | ERROR
    object: dict[str, Any]


def clone(obj: Any) -> Any:
    """Deep copy of a JSON tree (dicts, lists, scalars).

    API objects are plain JSON, so this skips ``copy.deepcopy``'s memo and dispatch; copying
    is the store's main cost (every read and every subscriber gets its own copy), and this is
    several times faster.
    """
    if type(obj) is dict:
        return {k: clone(v) for k, v in obj.items()}
    if type(obj) is list:
        return [clone(v) for v in obj]
    return obj


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class _Change:
    """One committed change, kept in the history window for watch replay."""

    rv: int
    rt: ResourceType
    type: str  # ADDED | MODIFIED | DELETED
    obj: dict[str, Any]  # the object after the change (for DELETED: its last state)
    old: dict[str, Any] | None  # the object before (None for ADDED)


_Key = tuple[str, str]  # (namespace or "", name)


def _key_of(obj: dict[str, Any]) -> _Key:
    md = obj["metadata"]
    return (md.get("namespace") or "", md["name"])


class Watch:
    """An async iterator of :class:`WatchEvent` for one resource type and filter.

    Events are queued synchronously when the store commits, so a watch registered in the
    same loop step as a list misses nothing. A consumer too slow to keep up (more queued
    events than the history window) gets a 410 ERROR and the watch ends, as the real
    apiserver drops slow watchers.
    """

    def __init__(
        self,
        store: Store,
        rt: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        bookmarks: bool,
        copy_objects: bool,
    ) -> None:
        self._store = store
        self.rt = rt
        self.namespace = namespace
        self._labels = labels
        self._fields = fields
        self._bookmarks = bookmarks
        self._copy = copy_objects
        self._queue: deque[WatchEvent] = deque()
        self._wakeup = asyncio.Event()
        self._closed = False
        self._finished = False

    # -- filtering -------------------------------------------------------------------
    def _matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        if self.namespace is not None and obj["metadata"].get("namespace") != self.namespace:
            return False
        return self._labels.matches(obj) and self._fields.matches(obj)

    def _translate(self, change: _Change) -> WatchEvent | None:
        """The event this watcher sees: label/field changes become ADDED or DELETED."""
        if change.rt is not self.rt:
            return None
        new_ok = change.type != "DELETED" and self._matches(change.obj)
        old_ok = self._matches(change.old if change.type != "DELETED" else change.obj)
        if change.type == "DELETED":
            return WatchEvent("DELETED", change.obj) if old_ok else None
        if new_ok and old_ok:
            return WatchEvent("MODIFIED", change.obj)
        if new_ok:
            return WatchEvent("ADDED", change.obj)
        if old_ok and change.old is not None:
            # Like the apiserver's cacher: the previous object, stamped with this event's RV.
            gone = dict(change.old)
            gone["metadata"] = {**change.old["metadata"], "resourceVersion": str(change.rv)}
            return WatchEvent("DELETED", gone)
        return None

    def _push(self, event: WatchEvent) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._store.history_window:
            self._queue.clear()
            self._queue.append(_expired_event("watch consumer too slow; events dropped"))
            self._closed = True
            self._store._watches.discard(self)
        else:
            self._queue.append(event)
        self._wakeup.set()

    # -- iteration -------------------------------------------------------------------
    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> WatchEvent:
        while True:
            if self._queue:
                event = self._queue.popleft()
                if event.type == "ERROR":
                    self._finished = True
                    self.close()
                if self._copy and event.type in ("ADDED", "MODIFIED", "DELETED"):
                    return WatchEvent(event.type, clone(event.object))
                return event
            if self._closed or self._finished:
                raise StopAsyncIteration
            self._wakeup.clear()
            if self._bookmarks:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), self._store.bookmark_interval)
                except TimeoutError:
                    if not self._queue and not self._closed:
                        return self.bookmark()
            else:
                await self._wakeup.wait()

    def bookmark(self) -> WatchEvent:
        """A BOOKMARK at the store's current RV: valid whenever this watch's queue is empty."""
        return WatchEvent(
            "BOOKMARK",
            {
                "kind": self.rt.kind,
                "apiVersion": self.rt.api_version,
                "metadata": {
                    "resourceVersion": str(self._store.resource_version),
                    "annotations": {"k8s.io/initial-events-end": "true"},
                },
            },
        )

    def close(self) -> None:
        self._closed = True
        self._store._watches.discard(self)
        self._wakeup.set()


def _expired_event(message: str) -> WatchEvent:
    return WatchEvent("ERROR", expired(message).status())


@dataclass
class _Pending:
    callbacks: deque[tuple[ResourceType, WatchEvent]] = field(default_factory=deque)
    draining: bool = False


class Store:
    """All objects of all served types, with a global resourceVersion."""

    def __init__(
        self,
        history_window: int = 5000,
        bookmark_interval: float = 1.0,
        journal: Journal | None = None,
    ) -> None:
        self.resource_version = 1
        self.history_window = history_window
        self.bookmark_interval = bookmark_interval
        self._data: dict[ResourceType, dict[str, dict[str, dict[str, Any]]]] = {
            rt: {} for rt in RESOURCES.values()
        }
        self._history: deque[_Change] = deque(maxlen=history_window)
        # Every event with rv > _history_floor is still in _history.
        self._history_floor = self.resource_version
        self._watches: set[Watch] = set()
        # (callback, read_only): see subscribe()
        self._subscribers: list[tuple[Callable[[ResourceType, WatchEvent], None], bool]] = []
        self._pending = _Pending()
        # owner uid -> keys of dependents, for garbage collection.
        self._dependents: dict[str, set[tuple[ResourceType, str, str]]] = {}
        self._journal: Journal | None = None
        if journal is not None and self._restore(journal):
            return
        # The namespaces every cluster starts with (tools such as helm expect kube-system).
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self.create(resource("namespaces"), None, {"metadata": {"name": ns}})

    # -- persistence -----------------------------------------------------------------
    def _restore(self, journal: Journal) -> bool:
        """Load what an earlier run committed, then record every change from here on.

        Returns whether there was earlier state. The resourceVersion goes on from the last
        one committed; the history window starts empty, so a watch from an older
        resourceVersion gets 410 Gone and its client relists, as after an apiserver restart.
        """
        by_key = {resource_key(rt.group, rt.plural): rt for rt in RESOURCES.values()}
        restored = journal.load()
        for key, obj in restored.items():
            rt = by_key.get(key)
            if rt is None:
                continue  # a type this kubesim no longer serves
            ns, name = _key_of(obj)
            self._bucket(rt, ns)[name] = obj
            self._index_owners(rt, None, obj)
        self.resource_version = max(self.resource_version, restored.resource_version)
        self._history_floor = self.resource_version
        self._journal = journal
        self.compact()
        return bool(restored.objects)

    def compact(self) -> None:
        """Fold the journal into a fresh snapshot (at start and at a clean stop)."""
        if self._journal is None:
            return
        objects = (
            (resource_key(rt.group, rt.plural), obj)
            for rt in self._data
            for obj in self._iter(rt, None)
        )
        self._journal.compact(self.resource_version, objects)

    # -- reads -----------------------------------------------------------------------
    def _bucket(self, rt: ResourceType, namespace: str | None) -> dict[str, dict[str, Any]]:
        return self._data[rt].setdefault(namespace or "", {})

    def _get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._data[rt].get((namespace or "") if rt.namespaced else "", {}).get(name)

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = self._get(rt, namespace, name)
        return clone(obj) if obj is not None else None

    def _iter(self, rt: ResourceType, namespace: str | None) -> Iterable[dict[str, Any]]:
        if rt.namespaced and namespace:
            yield from self._data[rt].get(namespace, {}).values()
        else:
            for bucket in self._data[rt].values():
                yield from bucket.values()

    def list(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        copy_objects: bool = True,
    ) -> tuple[list[dict[str, Any]], str]:
        """Matching objects sorted by namespace/name, and the list's resourceVersion.

        ``copy_objects=False`` returns the stored snapshots for read-only use (the HTTP layer
        only serialises them), which avoids a deep copy per item.
        """
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt.kind)
        items = [o for o in self._iter(rt, namespace) if labels.matches(o) and fields.matches(o)]
        items.sort(key=_key_of)
        if copy_objects:
            items = clone(items)
        return items, str(self.resource_version)

    # -- writes ----------------------------------------------------------------------
    def _require_namespace(self, rt: ResourceType, namespace: str | None) -> None:
        if not rt.namespaced:
            return
        if not namespace:
            raise bad_request("the namespace of the object must be set")
        ns = self._get(resource("namespaces"), None, namespace)
        if ns is None:
            raise not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f'{rt.plural} "{namespace}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                {"name": namespace, "kind": rt.plural},
            )

    def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        obj: dict[str, Any],
        *,
        copy_objects: bool = True,
    ) -> dict[str, Any]:
        """Commit a new object; a copy of it as stored. ``copy_objects=False``: the caller
        hands ``obj`` over (nothing else holds it: a request body just parsed) and gets the
        stored snapshot back for read-only use (the HTTP layer only serialises it), which
        saves two deep copies per create."""
        if copy_objects:
            obj = clone(obj)
        md = obj.setdefault("metadata", {})
        if md is None:
            md = obj["metadata"] = {}
        if rt.namespaced:
            namespace = namespace or md.get("namespace")
            self._require_namespace(rt, namespace)
            md["namespace"] = namespace
        else:
            md.pop("namespace", None)
        if not md.get("name"):
            prefix = md.get("generateName")
            if not prefix:
                raise invalid(
                    rt.kind,
                    "",
                    [
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value: name or generateName is required",
                            "field": "metadata.name",
                        }
                    ],
                )
            md["name"] = self._generate_name(rt, namespace, prefix)
        if self._get(rt, namespace, md["name"]) is not None:
            raise already_exists(rt.plural, md["name"], rt.group)
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        for transient in ("deletionTimestamp", "deletionGracePeriodSeconds"):
            md.pop(transient, None)
        md["uid"] = str(uuid.uuid4())
        md["creationTimestamp"] = now_rfc3339()
        md["generation"] = 1
        defaults.on_create(rt, obj)
        self._commit(rt, "ADDED", obj, None)
        if rt.kind == "Namespace":
            # The real service-account controller creates "default" in every namespace.
            sa = {"metadata": {"name": "default", "namespace": md["name"]}}
            self.create(resource("serviceaccounts"), md["name"], sa)
        return clone(obj) if copy_objects else obj

    def _generate_name(self, rt: ResourceType, namespace: str | None, prefix: str) -> str:
        alphabet = "bcdfghjklmnpqrstvwxz2456789"  # the apiserver's: no vowels, no 0/1/3
        prefix = prefix[: 63 - 5]
        for _ in range(8):
            name = prefix + "".join(secrets.choice(alphabet) for _ in range(5))
            if self._get(rt, namespace, name) is None:
                return name
        raise ApiError(500, "ServerTimeout", "could not generate a unique name")

    def replace(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        obj: dict[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """PUT semantics: optimistic concurrency, status subresource split, generation."""
        current = self._get(rt, namespace, name)
        if current is None:
            raise not_found(rt.plural, name, rt.group)
        md_in = obj.get("metadata") or {}
        want_rv = md_in.get("resourceVersion")
        if want_rv and str(want_rv) != current["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, name, rt.group)
        if md_in.get("uid") and md_in["uid"] != current["metadata"]["uid"]:
            raise conflict(rt.plural, name, rt.group)
        if subresource == "status":
            new = clone(current)
            if "status" in obj:
                new["status"] = clone(obj["status"])
            else:
                new.pop("status", None)
        else:
            new = clone(obj)
            new["apiVersion"], new["kind"] = rt.api_version, rt.kind
            md = new.setdefault("metadata", {})
            # System-owned metadata cannot be changed by an update.
            for k in (
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "name",
                "namespace",
            ):
                if k in current["metadata"]:
                    md[k] = current["metadata"][k]
                else:
                    md.pop(k, None)
            if "status" in rt.subresources:
                if "status" in current:
                    new["status"] = clone(current["status"])
                else:
                    new.pop("status", None)
        return self._update(rt, current, new)

    def mutate(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        fn: Callable[[dict[str, Any]], None],
    ) -> dict[str, Any]:
        """Read-modify-write without a conflict check, for controllers (no event if unchanged)."""
        current = self._get(rt, namespace, name)
        if current is None:
            raise not_found(rt.plural, name, rt.group)
        new = clone(current)
        fn(new)
        # Identity and bookkeeping stay the store's, whatever fn did.
        for k in ("uid", "creationTimestamp", "name", "namespace", "resourceVersion"):
            if k in current["metadata"]:
                new["metadata"][k] = current["metadata"][k]
        return self._update(rt, current, new)

    def _update(
        self, rt: ResourceType, current: dict[str, Any], new: dict[str, Any]
    ) -> dict[str, Any]:
        md = new["metadata"]
        md["resourceVersion"] = current["metadata"]["resourceVersion"]
        if new.get("spec") != current.get("spec"):
            md["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if new == current:
            return clone(current)  # a no-op update commits nothing, like the apiserver
        self._commit(rt, "MODIFIED", new, current)
        if (
            md.get("deletionTimestamp")
            and not md.get("finalizers")
            and not self._awaits_kubelet(rt, new)
        ):
            self._remove(rt, new)
        return clone(new)

    # -- deletion and garbage collection ---------------------------------------------
    @staticmethod
    def _awaits_kubelet(rt: ResourceType, obj: dict[str, Any]) -> bool:
        """A bound pod being deleted gracefully: the kubelet ends it with finalize_delete."""
        return (
            rt.kind == "Pod"
            and bool((obj.get("spec") or {}).get("nodeName"))
            and (obj["metadata"].get("deletionGracePeriodSeconds", 0) > 0)
        )

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        grace_period_seconds: int | None = None,
        propagation_policy: str | None = None,
        preconditions: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Delete with the apiserver's graceful-deletion, finalizer and GC semantics.

        Default propagation is Background, except batch/v1 Jobs which default to Orphan (the
        real JobStrategy keeps that legacy default; kubectl sends Background explicitly).
        """
        current = self._get(rt, namespace, name)
        if current is None:
            raise not_found(rt.plural, name, rt.group)
        if preconditions:
            if preconditions.get("uid") and preconditions["uid"] != current["metadata"]["uid"]:
                raise conflict(rt.plural, name, rt.group)
            want = preconditions.get("resourceVersion")
            if want and str(want) != current["metadata"]["resourceVersion"]:
                raise conflict(rt.plural, name, rt.group)
        if propagation_policy is None:
            propagation_policy = "Orphan" if rt.kind == "Job" else "Background"
        if propagation_policy not in ("Background", "Foreground", "Orphan"):
            raise bad_request(
                f'propagationPolicy: Unsupported value: "{propagation_policy}": supported '
                'values: "Foreground", "Background", "Orphan"'
            )
        if propagation_policy == "Orphan":
            self._orphan_dependents(current)
        grace = self._grace(rt, current, grace_period_seconds)
        md = current["metadata"]
        finalizers = list(md.get("finalizers") or [])
        if propagation_policy == "Foreground" and self._dependents.get(md["uid"]):
            if "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
        if rt.kind == "Namespace":
            return self._delete_namespace(current)
        if grace > 0 or finalizers:

            def mark(o: dict[str, Any]) -> None:
                m = o["metadata"]
                if not m.get("deletionTimestamp"):
                    m["deletionTimestamp"] = now_rfc3339()
                    m["deletionGracePeriodSeconds"] = grace
                elif grace < m.get("deletionGracePeriodSeconds", grace):
                    m["deletionGracePeriodSeconds"] = grace  # a shorter grace shortens it
                m["finalizers"] = finalizers
                if not finalizers:
                    m.pop("finalizers")

            marked = self.mutate(rt, namespace, name, mark)
            if "foregroundDeletion" in finalizers:
                self._collect_dependents(md["uid"], "Foreground")
            return marked
        self._remove(rt, current)
        return clone(current)

    @staticmethod
    def _grace(rt: ResourceType, obj: dict[str, Any], requested: int | None) -> int:
        if rt.kind != "Pod":
            return 0
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        # Pod strategy: unscheduled or terminal pods are deleted immediately.
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        if requested is None:
            requested = spec.get("terminationGracePeriodSeconds", 30)
        return max(0, int(requested))

    def finalize_delete(self, rt: ResourceType, namespace: str | None, name: str) -> None:
        """Remove now and emit DELETED (the kubelet's final step for a terminated pod)."""
        current = self._get(rt, namespace, name)
        if current is not None:
            self._remove(rt, current)

    def _remove(self, rt: ResourceType, obj: dict[str, Any]) -> None:
        current = self._get(rt, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if current is None:
            return
        self._commit(rt, "DELETED", current, current)
        uid = current["metadata"]["uid"]
        if self._dependents.get(uid):
            self._collect_dependents(uid, "Background")
        self._release_owners(current)
        self._finish_namespace(current)

    def _orphan_dependents(self, owner: dict[str, Any]) -> None:
        uid = owner["metadata"]["uid"]
        for rt, ns, name in list(self._dependents.get(uid, ())):
            self.mutate(
                rt,
                ns,
                name,
                lambda o: _drop_owner(o, uid),
            )

    def _collect_dependents(self, owner_uid: str, policy: str) -> None:
        """Delete dependents whose every owner is gone or going (the GC controller's job)."""
        for rt, ns, name in sorted(self._dependents.get(owner_uid, ()), key=str):
            dep = self._get(rt, ns, name)
            if dep is None or dep["metadata"].get("deletionTimestamp"):
                continue
            others = [
                r["uid"]
                for r in dep["metadata"].get("ownerReferences") or []
                if r.get("uid") != owner_uid and self._owner_alive(r["uid"])
            ]
            if others:
                if policy == "Background":
                    self.mutate(rt, ns, name, lambda o: _drop_owner(o, owner_uid))
                continue
            try:
                self.delete(rt, ns, name, propagation_policy=policy)
            except ApiError:
                pass

    def _owner_alive(self, uid: str) -> bool:
        return any(
            o["metadata"]["uid"] == uid and not o["metadata"].get("deletionTimestamp")
            for rt in self._data
            for o in self._iter(rt, None)
        )

    def _release_owners(self, removed: dict[str, Any]) -> None:
        """A dependent went away: an owner in foreground deletion may now be removable."""
        for ref in removed["metadata"].get("ownerReferences") or []:
            uid = ref.get("uid")
            if self._dependents.get(uid):
                continue
            for rt in self._data:
                if rt.kind != ref.get("kind"):
                    continue
                owner = self._get(rt, removed["metadata"].get("namespace"), ref.get("name", ""))
                if owner is None or owner["metadata"]["uid"] != uid:
                    continue
                if "foregroundDeletion" in (owner["metadata"].get("finalizers") or []):
                    self.mutate(
                        rt,
                        owner["metadata"].get("namespace"),
                        owner["metadata"]["name"],
                        lambda o: _drop_finalizer(o, "foregroundDeletion"),
                    )

    def _delete_namespace(self, ns: dict[str, Any]) -> dict[str, Any]:
        name = ns["metadata"]["name"]

        def terminating(o: dict[str, Any]) -> None:
            o["metadata"].setdefault("deletionTimestamp", now_rfc3339())
            o.setdefault("status", {})["phase"] = "Terminating"

        marked = self.mutate(resource("namespaces"), None, name, terminating)
        for rt in self._data:
            if rt.namespaced:
                for obj in list(self._data[rt].get(name, {}).values()):
                    if not obj["metadata"].get("deletionTimestamp"):
                        self.delete(
                            rt, name, obj["metadata"]["name"], propagation_policy="Background"
                        )
        self._finish_namespace(marked)
        return self.get(resource("namespaces"), None, name) or marked

    def _finish_namespace(self, removed_or_ns: dict[str, Any]) -> None:
        """Remove a terminating namespace once nothing is left in it."""
        name = removed_or_ns["metadata"].get("namespace") or (
            removed_or_ns["metadata"]["name"] if removed_or_ns.get("kind") == "Namespace" else None
        )
        if not name:
            return
        ns = self._get(resource("namespaces"), None, name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if any(self._data[rt].get(name) for rt in self._data if rt.namespaced):
            return
        self._commit(resource("namespaces"), "DELETED", ns, ns)

    # -- commit, history, fan-out ------------------------------------------------------
    def _commit(
        self, rt: ResourceType, type_: str, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> None:
        self.resource_version += 1
        rv = self.resource_version
        key = _key_of(obj)
        if type_ == "DELETED":
            obj = dict(obj)
            obj["metadata"] = {**obj["metadata"], "resourceVersion": str(rv)}
            self._bucket(rt, key[0]).pop(key[1], None)
            if not self._data[rt].get(key[0]):
                self._data[rt].pop(key[0], None)
        else:
            obj["metadata"]["resourceVersion"] = str(rv)
            self._bucket(rt, key[0])[key[1]] = obj
        self._index_owners(rt, old, obj if type_ != "DELETED" else None)
        if self._journal is not None:
            self._journal.record(rv, resource_key(rt.group, rt.plural), type_, obj)
        change = _Change(rv, rt, type_, obj, old)
        if len(self._history) == self._history.maxlen:
            self._history_floor = self._history[0].rv
        self._history.append(change)
        for watch in list(self._watches):
            event = watch._translate(change)
            if event is not None:
                watch._push(event)
        self._dispatch(rt, WatchEvent(type_, obj))

    def _index_owners(
        self, rt: ResourceType, old: dict[str, Any] | None, new: dict[str, Any] | None
    ) -> None:
        for obj, add in ((old, False), (new, True)):
            if obj is None:
                continue
            key = (rt, obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
            for ref in obj["metadata"].get("ownerReferences") or []:
                uid = ref.get("uid")
                if not uid:
                    continue
                deps = self._dependents.setdefault(uid, set())
                if add:
                    deps.add(key)
                else:
                    deps.discard(key)
                    if not deps:
                        del self._dependents[uid]

    def _dispatch(self, rt: ResourceType, event: WatchEvent) -> None:
        """Call subscribers in commit order, even when a subscriber itself writes."""
        self._pending.callbacks.append((rt, event))
        if self._pending.draining:
            return
        self._pending.draining = True
        try:
            while self._pending.callbacks:
                item_rt, item = self._pending.callbacks.popleft()
                for callback, read_only in list(self._subscribers):
                    callback(
                        item_rt, item if read_only else WatchEvent(item.type, clone(item.object))
                    )
        finally:
            self._pending.draining = False

    def subscribe(
        self, callback: Callable[[ResourceType, WatchEvent], None], *, read_only: bool = False
    ) -> Callable[[], None]:
        """In-process hook called synchronously after every committed change, with a copy of
        the object. ``read_only``: the callback only reads the object during the call and keeps
        no reference to it, so it gets the committed object itself (never mutated, as watchers
        do): a copy per subscriber per change was the store's main cost under a write burst."""
        entry = (callback, read_only)
        self._subscribers.append(entry)

        def unsubscribe() -> None:
            if entry in self._subscribers:
                self._subscribers.remove(entry)

        return unsubscribe

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        *,
        resource_version: str | None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        bookmarks: bool = False,
        copy_objects: bool = True,
    ) -> Watch:
        labels = parse_label_selector(label_selector)
        fields = parse_field_selector(field_selector, rt.kind)
        w = Watch(self, rt, namespace or None, labels, fields, bookmarks, copy_objects)
        if resource_version in (None, "", "0"):
            for obj in sorted(self._iter(rt, namespace), key=_key_of):
                if w._matches(obj):
                    w._queue.append(WatchEvent("ADDED", obj))
        else:
            try:
                since = int(resource_version)
            except ValueError:
                raise bad_request(f'invalid resource version "{resource_version}"') from None
            if since < self._history_floor:
                w._queue.append(
                    _expired_event(f"too old resource version: {since} ({self._history_floor + 1})")
                )
                w._finished = True
                return w
            for change in self._history:
                if change.rv > since and (event := w._translate(change)) is not None:
                    w._queue.append(event)
        self._watches.add(w)
        return w

    def expired_watch(self, rt: ResourceType, message: str) -> Watch:
        """A watch whose only event is a 410 ERROR (fault injection: a forced relist)."""
        w = Watch(
            self,
            rt,
            None,
            parse_label_selector(None),
            parse_field_selector(None, rt.kind),
            False,
            False,
        )
        w._queue.append(_expired_event(message))
        w._finished = True
        return w

    def check_list_resource_version(self, resource_version: str | None, match: str | None) -> None:
        """Validate a list's resourceVersion/resourceVersionMatch (we always serve the latest)."""
        if match and match not in ("NotOlderThan", "Exact"):
            raise bad_request(f'resourceVersionMatch: Unsupported value: "{match}"')
        if match and not resource_version:
            raise bad_request(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless "
                "resourceVersion is provided"
            )
        if resource_version not in (None, "", "0"):
            try:
                rv = int(resource_version)
            except ValueError:
                raise bad_request(f'invalid resource version "{resource_version}"') from None
            if match == "Exact" and rv != self.resource_version:
                raise expired(f"too old resource version: {rv} ({self.resource_version})")

    def close(self) -> None:
        """End every watch (on shutdown)."""
        for w in list(self._watches):
            w.close()


def _drop_owner(obj: dict[str, Any], uid: str) -> None:
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
    if refs:
        obj["metadata"]["ownerReferences"] = refs
    else:
        obj["metadata"].pop("ownerReferences", None)


def _drop_finalizer(obj: dict[str, Any], finalizer: str) -> None:
    fins = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
    if fins:
        obj["metadata"]["finalizers"] = fins
    else:
        obj["metadata"].pop("finalizers", None)
