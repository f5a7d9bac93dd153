"""GPU probe: per-GPU utilisation and memory, and which processes hold GPU memory.

``probe_from_env()`` picks the probe from ``GPULAB_GPU_PROBE``:

* ``nvml``: NVIDIA's NVML through ``nvidia-ml-py`` (``import pynvml``); no library or no
  driver → :class:`NullProbe` (logged once).
* ``fake:/path/to/gpus.json``: :class:`FakeProbe`, driven by a JSON file that tests and
  kubesim write ("GPU 0 busy at 80 %", "idle", "pid 1234 holds 2 GiB").
* ``none``: :class:`NullProbe` (CPU servers).
* unset: NVML if it initialises, else none.

``sample()`` never raises: a failing probe logs once and answers ``[]``.

Fake file format (``FakeProbe.write`` writes it atomically)::

    {"gpus": [{"index": 0, "uuid": "GPU-fake-0", "utilization_pct": 80,
               "memory_used_bytes": 2147483648, "memory_total_bytes": 85899345920,
               "processes": [{"pid": 1234, "used_memory_bytes": 2147483648}]}]}

``index``, ``uuid``, memory and ``processes`` may be left out. The file describes the
node's GPUs; like the NVIDIA container runtime, the probe shows only the devices listed in
``NVIDIA_VISIBLE_DEVICES`` (indexes or UUIDs, comma-separated; unset or ``all``: every one;
``none``/``void``/empty: none), renumbered from 0 in file order.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from gpulab.wire.activity import GpuProcess, GpuSample

__all__ = [
    "FakeProbe",
    "GpuProbe",
    "GpuProcess",
    "GpuSample",
    "NullProbe",
    "NvmlProbe",
    "ProbeUnavailable",
    "probe_from_env",
]

log = logging.getLogger(__name__)

ENV = "GPULAB_GPU_PROBE"
DEFAULT_MEMORY_TOTAL = 80 * 1024**3


@runtime_checkable
class GpuProbe(Protocol):
    name: str

    def sample(self) -> list[GpuSample]:
        """The GPUs this server sees, now. Never raises."""
        ...


class ProbeUnavailable(RuntimeError):
    """The probe cannot work here (no NVML library, no driver, no GPU)."""


class _LogOnce:
    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, msg: str, *args: object) -> None:
        key = msg % args if args else msg
        if key not in self._seen:
            self._seen.add(key)
            log.warning(msg, *args)


class NullProbe:
    """No GPUs (CPU servers, or no way to see them)."""

    name = "none"

    def sample(self) -> list[GpuSample]:
        return []


class NvmlProbe:
    """NVML through ``nvidia-ml-py``. Construct with :meth:`create` (None if unavailable)."""

    name = "nvml"

    def __init__(self) -> None:
        try:
            import pynvml
        except ImportError as e:  # pragma: no cover - nvidia-ml-py is a dependency
            raise ProbeUnavailable(f"nvidia-ml-py is not installed: {e}") from None
        try:
            pynvml.nvmlInit()
        except Exception as e:
            raise ProbeUnavailable(f"NVML unavailable: {e}") from None
        self._nvml = pynvml
        self._warn = _LogOnce()

    @classmethod
    def create(cls) -> NvmlProbe | None:
        try:
            return cls()
        except ProbeUnavailable as e:
            log.info("%s", e)
            return None

    def sample(self) -> list[GpuSample]:
        nv = self._nvml
        try:
            count = nv.nvmlDeviceGetCount()
        except Exception as e:
            self._warn("NVML: cannot count devices: %s", e)
            return []
        out = []
        for i in range(count):
            try:
                h = nv.nvmlDeviceGetHandleByIndex(i)
                uuid = nv.nvmlDeviceGetUUID(h)
                uuid = uuid.decode() if isinstance(uuid, bytes) else str(uuid)
                util = float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
                mem = nv.nvmlDeviceGetMemoryInfo(h)
                procs: dict[int, int] = {}
                for getter in (
                    nv.nvmlDeviceGetComputeRunningProcesses,
                    nv.nvmlDeviceGetGraphicsRunningProcesses,
                ):
                    try:
                        for p in getter(h):
                            used = getattr(p, "usedGpuMemory", None) or 0
                            procs[int(p.pid)] = max(procs.get(int(p.pid), 0), int(used))
                    except Exception as e:  # not supported on some devices/drivers
                        self._warn("NVML: process list unavailable on GPU %s: %s", i, e)
                out.append(
                    GpuSample(
                        index=i,
                        uuid=uuid,
                        utilization_pct=util,
                        memory_used_bytes=int(mem.used),
                        memory_total_bytes=int(mem.total),
                        processes=[GpuProcess(pid, used) for pid, used in sorted(procs.items())],
                    )
                )
            except Exception as e:
                self._warn("NVML: cannot read GPU %s: %s", i, e)
        return out


def _visible(spec: str | None) -> tuple[bool, set[str]]:
    """(all visible?, selectors) from NVIDIA_VISIBLE_DEVICES."""
    if spec is None or spec.strip().lower() == "all":
        return True, set()
    if spec.strip().lower() in ("", "none", "void"):
        return False, set()
    return False, {s.strip() for s in spec.split(",") if s.strip()}


class FakeProbe:
    """File-driven probe for tests and kubesim (see the module docstring for the format)."""

    name = "fake"

    def __init__(self, path: str | os.PathLike[str], visible_devices: str | None = None, *,
                 use_env: bool = True) -> None:  # fmt: skip
        self.path = Path(path)
        if visible_devices is None and use_env:
            visible_devices = os.environ.get("NVIDIA_VISIBLE_DEVICES")
        self.visible_devices = visible_devices
        self._warn = _LogOnce()

    def sample(self) -> list[GpuSample]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        except OSError as e:
            self._warn("fake GPU probe: cannot read %s: %s", self.path, e)
            return []
        try:
            doc = json.loads(text) if text.strip() else {}
            gpus = doc.get("gpus", []) if isinstance(doc, dict) else []
            every, wanted = _visible(self.visible_devices)
            out = []
            for pos, g in enumerate(gpus):
                index = int(g.get("index", pos))
                uuid = str(g.get("uuid", f"GPU-fake-{index}"))
                if not every and str(index) not in wanted and uuid not in wanted:
                    continue
                procs = [
                    GpuProcess(int(p["pid"]), int(p.get("used_memory_bytes", 0)))
                    for p in g.get("processes", ())
                ]
                used = g.get("memory_used_bytes")
                out.append(
                    GpuSample(
                        index=len(out),
                        uuid=uuid,
                        utilization_pct=float(g.get("utilization_pct", 0)),
                        memory_used_bytes=int(
                            used if used is not None else sum(p.used_memory_bytes for p in procs)
                        ),
                        memory_total_bytes=int(g.get("memory_total_bytes", DEFAULT_MEMORY_TOTAL)),
                        processes=procs,
                    )
                )
            return out
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            self._warn("fake GPU probe: bad file %s: %s", self.path, e)
            return []

    @staticmethod
    def write(path: str | os.PathLike[str], gpus: list[Mapping[str, Any]]) -> None:
        """Atomically replace the fake file (readers never see half a file)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
        with os.fdopen(fd, "w") as f:
            json.dump({"gpus": list(gpus)}, f)
        os.replace(tmp, p)

    @staticmethod
    def gpus(
        count: int,
        utilization_pct: float = 0,
        *,
        uuid_prefix: str = "GPU-fake-",
        processes: Mapping[int, list[tuple[int, int]]] | None = None,
    ) -> list[dict[str, Any]]:
        """``count`` GPUs all at ``utilization_pct`` ("busy at 80 %", or 0 for idle);
        ``processes``: GPU index -> [(pid, used bytes)]."""
        processes = processes or {}
        return [
            {
                "index": i,
                "uuid": f"{uuid_prefix}{i}",
                "utilization_pct": utilization_pct,
                "memory_total_bytes": DEFAULT_MEMORY_TOTAL,
                "processes": [
                    {"pid": pid, "used_memory_bytes": used} for pid, used in processes.get(i, [])
                ],
            }
            for i in range(count)
        ]


def probe_from_env(env: Mapping[str, str] | None = None) -> GpuProbe:
    """The probe ``GPULAB_GPU_PROBE`` asks for (see the module docstring)."""
    env = os.environ if env is None else env
    choice = env.get(ENV, "").strip()
    if choice.startswith("fake:"):
        return FakeProbe(choice[len("fake:") :], env.get("NVIDIA_VISIBLE_DEVICES"), use_env=False)
    if choice == "none":
        return NullProbe()
    if choice not in ("", "nvml"):
        log.warning("%s=%r is not nvml, fake:/path or none: using none", ENV, choice)
        return NullProbe()
    probe = NvmlProbe.create()
    if probe is None:
        if choice == "nvml":
            log.warning("%s=nvml but NVML is unavailable: reporting no GPUs", ENV)
        return NullProbe()
    return probe
