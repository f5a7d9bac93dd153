"""Keep the store's objects on disk: a snapshot plus an append-only journal of changes.

Layout of the store folder (``kubesim serve --store-dir DIR``):

- ``snapshot.json``: ``{"resourceVersion": N, "objects": [{"r": "group/plural", "o": {...}}]}``,
  replaced atomically (write a temporary file, fsync, rename).
- ``journal.jsonl``: one JSON line per committed change after the snapshot,
  ``{"rv": N, "r": "group/plural", "t": "PUT"|"DELETED", "o": {...}}``
  (a deletion carries only the object's ``metadata.namespace``/``name``).

Each line is written with one ``write`` call as the change commits, so a SIGKILL of kubesim
loses nothing it has answered (the kernel keeps the page cache; only a machine crash could lose
the last writes, which is acceptable for a local platform). A line cut short by a crash is the
last one and is ignored. At start and at a clean stop the journal is folded into a fresh
snapshot, so it never grows beyond one run's changes.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["Journal", "Restored"]

log = logging.getLogger(__name__)

SNAPSHOT = "snapshot.json"
JOURNAL = "journal.jsonl"

# (resource key "group/plural", namespace or "", name) -> object
_Objects = dict[tuple[str, str, str], dict[str, Any]]


def resource_key(group: str, plural: str) -> str:
    return f"{group}/{plural}"


@dataclass
class Restored:
    """What an earlier run left: the last resourceVersion and every object, by resource key."""

    resource_version: int = 0
    objects: _Objects = field(default_factory=dict)

    def items(self) -> Iterable[tuple[str, dict[str, Any]]]:
        for (key, _ns, _name), obj in self.objects.items():
            yield key, obj


def _object_key(key: str, obj: dict[str, Any]) -> tuple[str, str, str]:
    md = obj["metadata"]
    return key, md.get("namespace") or "", md["name"]


class Journal:
    """The on-disk copy of one store; ``record`` is called for every committed change."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._snapshot = self.folder / SNAPSHOT
        self._journal = self.folder / JOURNAL
        self._out: IO[bytes] | None = None

    # -- reading -------------------------------------------------------------------------
    def load(self) -> Restored:
        """The state an earlier run committed (empty for a new folder)."""
        state = Restored()
        if self._snapshot.exists():
            data = json.loads(self._snapshot.read_text())
            state.resource_version = int(data["resourceVersion"])
            for item in data["objects"]:
                state.objects[_object_key(item["r"], item["o"])] = item["o"]
        if self._journal.exists():
            with self._journal.open() as lines:
                for number, line in enumerate(lines, 1):
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        # Only the last line can be cut short (a kill mid-write): stop there.
                        log.warning("kubesim store: ignoring a torn journal line %d", number)
                        break
                    self._apply(state, entry)
        return state

    @staticmethod
    def _apply(state: Restored, entry: dict[str, Any]) -> None:
        state.resource_version = max(state.resource_version, int(entry["rv"]))
        key = _object_key(entry["r"], entry["o"])
        if entry["t"] == "DELETED":
            state.objects.pop(key, None)
        else:
            state.objects[key] = entry["o"]

    # -- writing -------------------------------------------------------------------------
    def compact(self, resource_version: int, objects: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Replace snapshot and journal with one snapshot of ``objects`` (start, clean stop)."""
        self.close()
        tmp = self._snapshot.with_suffix(".tmp")
        with tmp.open("w") as out:
            json.dump(
                {
                    "resourceVersion": resource_version,
                    "objects": [{"r": key, "o": obj} for key, obj in objects],
                },
                out,
                separators=(",", ":"),
            )
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self._snapshot)
        # The snapshot holds everything the journal did; start a new one.
        self._journal.write_text("")

    def record(self, resource_version: int, key: str, type_: str, obj: dict[str, Any]) -> None:
        """Append one committed change (``type_`` ADDED/MODIFIED/DELETED)."""
        if type_ == "DELETED":
            md = obj["metadata"]
            body: dict[str, Any] = {
                "metadata": {"namespace": md.get("namespace") or "", "name": md["name"]}
            }
            entry = {"rv": resource_version, "r": key, "t": "DELETED", "o": body}
        else:
            entry = {"rv": resource_version, "r": key, "t": "PUT", "o": obj}
        if self._out is None:
            self._out = self._journal.open("ab", buffering=0)  # noqa: SIM115 - kept open
        # Unbuffered: the whole line goes to the kernel in one write before the commit returns.
        self._out.write((json.dumps(entry, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
