"""The activity report a server's extension posts to the culler (``POST /activity``).

The extension samples it (:mod:`gpulab.extensions.activity`); the culler service reads it
(``ActivityReport.from_json``) to judge idleness. Plain dataclasses with explicit JSON, so
both sides agree without sharing anything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["ActivityReport", "GpuProcess", "GpuSample", "KernelActivity"]


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _parse(t: str | None) -> datetime | None:
    return None if t is None else datetime.fromisoformat(t)


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_memory_bytes: int


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
    def from_json(cls, d: Mapping[str, Any]) -> GpuSample:
        return cls(
            index=int(d["index"]),
            uuid=str(d["uuid"]),
            utilization_pct=float(d["utilization_pct"]),
            memory_used_bytes=int(d["memory_used_bytes"]),
            memory_total_bytes=int(d["memory_total_bytes"]),
            processes=[
                GpuProcess(int(p["pid"]), int(p["used_memory_bytes"]))
                for p in d.get("processes", ())
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
    def from_json(cls, d: Mapping[str, Any]) -> KernelActivity:
        return cls(
            id=str(d["id"]),
            name=str(d.get("name", "")),
            execution_state=str(d.get("execution_state", "unknown")),
            last_activity=_parse(d.get("last_activity")),
            pid=d.get("pid"),
            pids=[int(p) for p in d.get("pids", ())],
            gpu_memory_bytes=int(d.get("gpu_memory_bytes", 0)),
            gpu_devices_open=bool(d.get("gpu_devices_open", False)),
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
    def from_json(cls, d: Mapping[str, Any]) -> ActivityReport:
        sampled = _parse(d["sampled_at"])
        assert sampled is not None
        return cls(
            sampled_at=sampled,
            last_kernel_activity=_parse(d.get("last_kernel_activity")),
            kernels_busy=bool(d.get("kernels_busy", False)),
            last_terminal_activity=_parse(d.get("last_terminal_activity")),
            kernels=[KernelActivity.from_json(k) for k in d.get("kernels", ())],
            terminals=int(d.get("terminals", 0)),
            gpus=[GpuSample.from_json(g) for g in d.get("gpus", ())],
            probe=str(d.get("probe", "none")),
        )
