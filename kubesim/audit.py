"""Request accounting: counters served at ``GET /kubesim/requests`` and an optional
JSON-lines audit log, so other tests can count API calls per spawn and check who did what.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any


@dataclass(frozen=True)
class AuditRecord:
    verb: str  # get list watch create update patch delete deletecollection
    apiGroup: str  # noqa: N815 - field names as in the Kubernetes audit event
    resource: str
    subresource: str
    namespace: str
    name: str
    userAgent: str  # noqa: N815
    code: int
    path: str


class Audit:
    def __init__(self, log_path: Path | None = None, keep: int = 10000) -> None:
        self.counts: Counter[str] = Counter()
        self.total = 0
        self.recent: deque[AuditRecord] = deque(maxlen=keep)
        self._file: IO[str] | None = None
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            # Line-buffered: each record is one small write, cheap enough on the loop.
            self._file = log_path.open("a", buffering=1)

    def record(self, rec: AuditRecord) -> None:
        self.total += 1
        key = f"{rec.verb} {rec.resource}{'/' + rec.subresource if rec.subresource else ''}"
        self.counts[key] += 1
        self.recent.append(rec)
        if self._file is not None:
            self._file.write(json.dumps(asdict(rec)) + "\n")

    def snapshot(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "counts": dict(sorted(self.counts.items())),
            "recent": [asdict(r) for r in self.recent],
        }

    def reset(self) -> None:
        self.counts.clear()
        self.total = 0
        self.recent.clear()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
