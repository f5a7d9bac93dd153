"""The activity report a server's extension posts to the culler (``POST /activity``).

The extension samples it (:mod:`gpulab.extensions.activity`); the culler service reads it
(``ActivityReport.from_json``) to judge idleness. Plain dataclasses with explicit JSON, so
both sides agree without sharing anything else.

A report comes from code its user controls, so ``from_json`` trusts nothing in it: every value
is checked for its JSON type and range (finite numbers, bounded lists and strings, dates with a
known offset, normalised to UTC) and the first one that is not acceptable raises
:class:`ReportError`, which names the field and says what is allowed. A report that passes can
be compared, ordered and added to durations without raising. :meth:`ActivityReport.received`
then places the report on the receiver's clock (see :data:`MAX_CLOCK_SKEW`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "MAX_CLOCK_SKEW",
    "ActivityReport",
    "GpuProcess",
    "GpuSample",
    "KernelActivity",
    "ReportError",
]

# How far ahead of the receiver's clock a report's dates may be: a node's clock a little fast
# is normal (its dates count as "now"); further ahead, the report is refused, because a date
# in the future would make every later true report look older than it.
MAX_CLOCK_SKEW = timedelta(seconds=60)
# Bounds that keep a report small and its numbers meaningful (the body is capped too).
MAX_KERNELS = 1024
MAX_GPUS = 64
MAX_PROCESSES = 4096  # per GPU
MAX_PIDS = 4096  # per kernel
MAX_TEXT = 256
MAX_COUNT = 2**31 - 1  # pids, indices, terminal counts
MAX_BYTES = 2**63 - 1
# Nothing gpulab reports happened before this; earlier dates are garbage (and too close to
# datetime's own limits for date arithmetic).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


class ReportError(ValueError):
    """One value of a report that is not acceptable: ``field`` (``kernels[2].pid``) and what is
    allowed there."""

    def __init__(self, field: str, allowed: str) -> None:
        super().__init__(f"{field}: {allowed}")
        self.field = field
        self.allowed = allowed


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


# ----------------------------------------------------------------------------- reading


_REQUIRED: Any = object()


class _Fields:
    """Typed reads of one JSON object of a report, each naming its field in errors."""

    def __init__(self, data: Any, path: str = "") -> None:
        if not isinstance(data, Mapping):
            raise ReportError(path or "body", "a JSON object")
        self.data = data
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, default: Any) -> Any:
        value = self.data.get(key, default)
        return default if value is None else value

    def whole(self, key: str, top: int, default: Any = _REQUIRED) -> Any:
        """A whole number from 0 to ``top``; absent or null: ``default`` (if there is one)."""
        value = self.data.get(key)
        if value is None and default is not _REQUIRED:
            return default
        return _whole(value, self.name(key), top)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise ReportError(self.name(key), "true or false")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        value = self.get(key, default)
        if not isinstance(value, str) or len(value) > MAX_TEXT:
            raise ReportError(self.name(key), f"a string of at most {MAX_TEXT} characters")
        return value

    def percent(self, key: str) -> float:
        value = self.data.get(key)
        # The range test refuses NaN and the infinities too, and never converts a huge int.
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
            raise ReportError(self.name(key), "a number from 0 to 100")
        return float(value)

    def time(self, key: str) -> datetime | None:
        value = self.data.get(key)
        return None if value is None else _time(value, self.name(key))

    def items(self, key: str, most: int) -> list[tuple[str, Any]]:
        """``(field name, item)`` of a list (absent or null: empty)."""
        value = self.get(key, [])
        if not isinstance(value, list) or len(value) > most:
            raise ReportError(self.name(key), f"a list of at most {most} items")
        return [(f"{self.name(key)}[{i}]", item) for i, item in enumerate(value)]


def _whole(value: Any, name: str, top: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
        raise ReportError(name, f"a whole number from 0 to {top}")
    return value


def _time(value: Any, name: str) -> datetime:
    allowed = "an ISO 8601 date and time (UTC if it has no offset) from 1970 on"
    if not isinstance(value, str) or len(value) > 64:
        raise ReportError(name, allowed)
    try:
        t = datetime.fromisoformat(value)
        t = t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    except (ValueError, OverflowError):
        raise ReportError(name, allowed) from None
    if t < EARLIEST:
        raise ReportError(name, allowed)
    return t


# ----------------------------------------------------------------------------- the types


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_memory_bytes: int

    @classmethod
    def from_json(cls, data: Any, path: str = "") -> GpuProcess:
        f = _Fields(data, path)
        return cls(
            pid=f.whole("pid", MAX_COUNT),
            used_memory_bytes=f.whole("used_memory_bytes", MAX_BYTES),
        )


@dataclass(frozen=True)
class GpuSample:
    index: int
    uuid: str
    utilization_pct: float
    memory_used_bytes: int
    memory_total_bytes: int
    processes: list[GpuProcess] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any, path: str = "") -> GpuSample:
        f = _Fields(data, path)
        return cls(
            index=f.whole("index", MAX_COUNT),
            uuid=f.text("uuid"),
            utilization_pct=f.percent("utilization_pct"),
            memory_used_bytes=f.whole("memory_used_bytes", MAX_BYTES),
            memory_total_bytes=f.whole("memory_total_bytes", MAX_BYTES),
            processes=[
                GpuProcess.from_json(p, name) for name, p in f.items("processes", MAX_PROCESSES)
            ],
        )


@dataclass
class KernelActivity:
    id: str
    name: str
    execution_state: str
    last_activity: datetime | None
    pid: int | None
    pids: list[int] = field(default_factory=list)  # the kernel and its descendants
    gpu_memory_bytes: int = 0  # NVML-reported memory of those pids, all GPUs
    gpu_devices_open: bool = False  # some process of the kernel has /dev/nvidiaN open

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "execution_state": self.execution_state,
            "last_activity": _iso(self.last_activity),
            "pid": self.pid,
            "pids": list(self.pids),
            "gpu_memory_bytes": self.gpu_memory_bytes,
            "gpu_devices_open": self.gpu_devices_open,
        }

    @classmethod
    def from_json(cls, data: Any, path: str = "") -> KernelActivity:
        f = _Fields(data, path)
        return cls(
            id=f.text("id"),
            name=f.text("name", ""),
            execution_state=f.text("execution_state", "unknown"),
            last_activity=f.time("last_activity"),
            pid=f.whole("pid", MAX_COUNT, None),
            pids=[_whole(p, name, MAX_COUNT) for name, p in f.items("pids", MAX_PIDS)],
            gpu_memory_bytes=f.whole("gpu_memory_bytes", MAX_BYTES, 0),
            gpu_devices_open=f.boolean("gpu_devices_open", False),
        )


@dataclass
class ActivityReport:
    """One sample of a server's activity; ``to_json()`` is the body of ``POST /activity``."""

    sampled_at: datetime
    last_kernel_activity: datetime | None
    kernels_busy: bool
    last_terminal_activity: datetime | None
    kernels: list[KernelActivity] = field(default_factory=list)
    terminals: int = 0
    gpus: list[GpuSample] = field(default_factory=list)
    probe: str = "none"

    @property
    def gpu_max_utilization_pct(self) -> float | None:
        return max((g.utilization_pct for g in self.gpus), default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "sampled_at": _iso(self.sampled_at),
            "last_kernel_activity": _iso(self.last_kernel_activity),
            "kernels_busy": self.kernels_busy,
            "last_terminal_activity": _iso(self.last_terminal_activity),
            "kernels": [k.to_json() for k in self.kernels],
            "terminals": self.terminals,
            "gpus": [g.to_json() for g in self.gpus],
            "gpu_max_utilization_pct": self.gpu_max_utilization_pct,
            "probe": self.probe,
        }

    @classmethod
    def from_json(cls, data: Any) -> ActivityReport:
        """The report in ``data`` (parsed JSON), or :class:`ReportError` naming the first field
        that is not acceptable. Unknown keys are ignored (a newer extension may send more)."""
        f = _Fields(data)
        return cls(
            sampled_at=_time(f.data.get("sampled_at"), "sampled_at"),
            last_kernel_activity=f.time("last_kernel_activity"),
            kernels_busy=f.boolean("kernels_busy", False),
            last_terminal_activity=f.time("last_terminal_activity"),
            kernels=[
                KernelActivity.from_json(k, name) for name, k in f.items("kernels", MAX_KERNELS)
            ],
            terminals=f.whole("terminals", MAX_COUNT, 0),
            gpus=[GpuSample.from_json(g, name) for name, g in f.items("gpus", MAX_GPUS)],
            probe=f.text("probe", "none"),
        )

    def received(self, now: datetime, max_skew: timedelta = MAX_CLOCK_SKEW) -> ActivityReport:
        """This report placed on the receiver's clock: dates up to ``max_skew`` ahead of
        ``now`` count as ``now``; a date further ahead raises :class:`ReportError`. So no
        accepted report is dated after its arrival, and the next true report is never taken
        for an older one."""
        latest = now + max_skew

        def placed(name: str, t: datetime | None) -> datetime | None:
            if t is None or t <= now:
                return t
            if t > latest:
                raise ReportError(
                    name,
                    f"a date no later than the culler's clock ({now.isoformat(timespec='seconds')}"
                    f") plus {int(max_skew.total_seconds())} s; check the server's clock",
                )
            return now

        kernels = [
            replace(k, last_activity=placed(f"kernels[{i}].last_activity", k.last_activity))
            for i, k in enumerate(self.kernels)
        ]
        return replace(
            self,
            sampled_at=placed("sampled_at", self.sampled_at),
            last_kernel_activity=placed("last_kernel_activity", self.last_kernel_activity),
            last_terminal_activity=placed("last_terminal_activity", self.last_terminal_activity),
            kernels=kernels,
        )
