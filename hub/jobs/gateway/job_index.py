"""The jobs list's indexes: every listable job (live Jobs and tombstones) in creation order, by
owner, group and state (pure, no I/O).

The gateway's cache (:mod:`.cache`) keeps one :class:`JobIndex` current from its watch events;
a list request then reads one page of it. Each index is a list of ``(created, id)`` keys kept
sorted, so a page is a binary search plus a walk of the page, whatever the number of jobs: the
newest first, from an exclusive cursor (the last key of the previous page), within an optional
creation range. A new Job is inserted where its key sorts (at the end, being the newest), so
the pages behind a cursor do not move when jobs are submitted.

Sorted Python lists rather than a tree: an insert or a removal is a binary search and one
``memmove`` of the list's tail, a few microseconds at 20,000 jobs, and needs no dependency.

A filter by owner, group and state reads the smallest of the indexes that can serve it (the
owner-and-state and group-and-state indexes included) and checks the other filters on each
entry it walks.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ...names import escape_username
from ...workload.labels import GROUP_LABEL, OWNER_ANNOTATION, USER_LABEL
from .state import job_state

__all__ = ["Entry", "JobIndex", "Key", "entry_of"]

Key = tuple[str, str]  # (creationTimestamp, job id): the list's order, newest last


@dataclass(frozen=True, slots=True)
class Entry:
    """What the list filters on, for one job."""

    id: str
    created: str  # creationTimestamp as the API server wrote it (RFC 3339, UTC, seconds)
    owner: str  # the hub username; "" when the owner annotation and user label disagree
    group: str
    state: str

    @property
    def key(self) -> Key:
        return (self.created, self.id)

    def indexes(self) -> tuple[tuple[str, ...], ...]:
        return (
            ("all",),
            ("owner", self.owner),
            ("group", self.group),
            ("state", self.state),
            ("owner+state", self.owner, self.state),
            ("group+state", self.group, self.state),
        )


def entry_of(job_id: str, job: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> Entry:
    """The index entry of a Job (or a tombstone's last copy of one) and its pods."""
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    owner = (meta.get("annotations") or {}).get(OWNER_ANNOTATION) or ""
    # A job is its owner's only when the label the API server selects on says so too (the
    # gateway's ownership rule for a single job, applied to lists).
    if labels.get(USER_LABEL) != escape_username(owner):
        owner = ""
    return Entry(
        id=job_id,
        created=str(meta.get("creationTimestamp") or ""),
        owner=owner,
        group=str(labels.get(GROUP_LABEL) or ""),
        state=job_state(job, pods)[0],
    )


class _SortedKeys:
    """Keys in ascending order."""

    __slots__ = ("keys",)

    def __init__(self, keys: list[Key] | None = None) -> None:
        self.keys: list[Key] = keys if keys is not None else []

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: Key) -> None:
        keys = self.keys
        if not keys or keys[-1] < key:  # the usual case: a new job is the newest
            keys.append(key)
            return
        i = bisect_left(keys, key)
        if i == len(keys) or keys[i] != key:
            keys.insert(i, key)

    def discard(self, key: Key) -> None:
        i = bisect_left(self.keys, key)
        if i < len(self.keys) and self.keys[i] == key:
            del self.keys[i]

    def newest_first(self, below: Key | None, lowest: Key | None) -> Iterator[Key]:
        """Keys ``lowest <= key < below``, newest first."""
        keys = self.keys
        hi = len(keys) if below is None else bisect_left(keys, below)
        lo = 0 if lowest is None else bisect_left(keys, lowest)
        for i in range(hi - 1, lo - 1, -1):
            yield keys[i]


class JobIndex:
    """Every listable job, by creation time, owner, group and state."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}
        self._lists: dict[tuple[str, ...], _SortedKeys] = {}

    def __len__(self) -> int:
        return len(self.entries)

    # ------------------------------------------------------------------ updates
    def put(self, entry: Entry) -> None:
        """Add or replace a job's entry."""
        old = self.entries.get(entry.id)
        if old == entry:
            return
        if old is not None:
            self._unlist(old, keep=entry.indexes() if old.key == entry.key else ())
        self.entries[entry.id] = entry
        for name in entry.indexes():
            if old is None or old.key != entry.key or name not in old.indexes():
                self._lists.setdefault(name, _SortedKeys()).add(entry.key)

    def remove(self, job_id: str) -> None:
        old = self.entries.pop(job_id, None)
        if old is not None:
            self._unlist(old, keep=())

    def reset(self, entries: Iterable[Entry]) -> None:
        """Replace everything (after a relist): one sort per index, not one insert per job."""
        self.entries = {e.id: e for e in entries}
        grouped: dict[tuple[str, ...], list[Key]] = {}
        for entry in self.entries.values():
            for name in entry.indexes():
                grouped.setdefault(name, []).append(entry.key)
        self._lists = {name: _SortedKeys(sorted(keys)) for name, keys in grouped.items()}

    def _unlist(self, entry: Entry, keep: tuple[tuple[str, ...], ...]) -> None:
        for name in entry.indexes():
            if name in keep:
                continue
            keys = self._lists.get(name)
            if keys is None:
                continue
            keys.discard(entry.key)
            if not keys:
                del self._lists[name]

    # ------------------------------------------------------------------ reading
    def counts_by_group_and_state(self) -> dict[tuple[str, str], int]:
        """How many listable jobs each (group, state) has, read off the index's lists (for
        metrics: no walk over the jobs)."""
        return {
            (name[1], name[2]): len(keys)
            for name, keys in self._lists.items()
            if name[0] == "group+state"
        }

    def _smallest(
        self, owner: str | None, group: str | None, state: str | None
    ) -> _SortedKeys | None:
        names: list[tuple[str, ...]] = []
        if owner is not None:
            names.append(("owner", owner))
            if state is not None:
                names.append(("owner+state", owner, state))
        if group is not None:
            names.append(("group", group))
            if state is not None:
                names.append(("group+state", group, state))
        if state is not None:
            names.append(("state", state))
        if not names:
            names.append(("all",))
        lists = [self._lists.get(name) for name in names]
        if any(keys is None for keys in lists):
            return None  # some filter matches no job at all
        return min((k for k in lists if k is not None), key=len)

    def page(
        self,
        *,
        limit: int,
        owner: str | None = None,
        group: str | None = None,
        state: str | None = None,
        created_since: str | None = None,
        created_before: str | None = None,
        after: Key | None = None,
        accept: Callable[[Entry], bool] | None = None,
    ) -> tuple[list[Entry], Key | None]:
        """Up to ``limit`` entries matching every filter, newest first, from below ``after``
        (the last key of the previous page); and the key to continue from, or None when no
        match is left. ``created_since`` is inclusive, ``created_before`` exclusive, both in
        the API server's timestamp format. ``accept`` is a last check on each match."""
        keys = self._smallest(owner, group, state)
        if keys is None:
            return [], None
        below = after
        if created_before is not None and (below is None or (created_before, "") < below):
            below = (created_before, "")
        lowest = (created_since, "") if created_since is not None else None
        out: list[Entry] = []
        for key in keys.newest_first(below, lowest):
            entry = self.entries[key[1]]
            if (
                (owner is not None and entry.owner != owner)
                or (group is not None and entry.group != group)
                or (state is not None and entry.state != state)
                or (accept is not None and not accept(entry))
            ):
                continue
            if len(out) == limit:
                return out, out[-1].key  # one more matches: there is a next page
            out.append(entry)
        return out, None
