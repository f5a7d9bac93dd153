"""Activity sampler for a running jupyter_server: what the culler needs to judge idleness.

Reads (on the event loop, cheap attribute reads):

* kernels from jupyter_server's ``MappingKernelManager``: each kernel's ``execution_state``;
  when it last did work for its user from :class:`KernelOutputMonitor` (gpulab's own reading
  of its IOPub traffic, in which widget messages do not count: the jobs panel's refresh never
  keeps a server alive), else jupyter_server's ``last_activity`` and
  ``kernel_manager.last_kernel_activity``; the kernel's pid from its provisioner
  (``provisioner.process.pid`` / ``provisioner.pid`` for local kernels);
* terminals from ``jupyter_server_terminals``' ``TerminalManager.terminals`` (name →
  ``PtyWithClients``; ``last_activity`` is set on create, on websocket input and output).

Then, in a worker thread (never blocking the event loop): the GPU probe (NVML calls) and a
/proc scan that maps each kernel to its process tree, so GPU memory held by a kernel's child
processes (DataLoader workers, subprocess training) is charged to the kernel.

When NVML reports PIDs of another PID namespace (a container without host PIDs), no pid
matches; each kernel then still reports whether its processes have ``/dev/nvidiaN`` open
(``gpu_devices_open``).

The report itself (:class:`ActivityReport`, :class:`KernelActivity`) is a wire type the culler
reads too: it lives in :mod:`gpulab.wire.activity` and is re-exported here for the sampler's
callers.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpulab.wire.activity import ActivityReport, GpuSample, KernelActivity

from .gpu_probe import GpuProbe, NullProbe
from .kernel_activity import KernelOutputMonitor

__all__ = [
    "ActivityReport",
    "ActivitySampler",
    "KernelActivity",
    "kernel_pid",
    "process_tree",
]

_NVIDIA_DEV = re.compile(r"^/dev/nvidia\d+$")


def _aware(t: Any) -> datetime | None:
    if not isinstance(t, datetime):
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


# ----------------------------------------------------------------------------- processes


def kernel_pid(kernel_manager: Any, kernel_id: str) -> int | None:
    """The pid of a local kernel (None for remote/gateway kernels or if not started)."""
    try:
        km = kernel_manager.get_kernel(kernel_id)
    except KeyError:
        return None
    prov = getattr(km, "provisioner", None)
    proc = getattr(prov, "process", None)
    pid = getattr(proc, "pid", None) or getattr(prov, "pid", None)
    return int(pid) if pid else None


def _children_map(proc_root: Path) -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir(proc_root)
    except OSError:
        return children
    for name in entries:
        if not name.isdigit():
            continue
        try:
            stat = (proc_root / name / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        rest = stat[stat.rfind(")") + 2 :].split()
        if len(rest) >= 2:
            children.setdefault(int(rest[1]), []).append(int(name))
    return children


def process_tree(
    roots: Iterable[int], proc_root: str | os.PathLike[str] = "/proc"
) -> dict[int, list[int]]:
    """root pid -> [root, descendants...], from one scan of /proc."""
    children = _children_map(Path(proc_root))
    out: dict[int, list[int]] = {}
    for root in roots:
        seen = [root]
        todo = [root]
        while todo:
            for c in children.get(todo.pop(), ()):
                if c not in seen:
                    seen.append(c)
                    todo.append(c)
        out[root] = seen
    return out


def _has_gpu_device_open(pid: int, proc_root: Path) -> bool:
    fd_dir = proc_root / str(pid) / "fd"
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            if _NVIDIA_DEV.match(os.readlink(fd_dir / fd)):
                return True
        except OSError:
            continue
    return False


# ----------------------------------------------------------------------------- sampler


@dataclass
class _KernelSnapshot:
    id: str
    name: str
    execution_state: str
    last_activity: datetime | None
    pid: int | None


class ActivitySampler:
    """Samples a jupyter_server's kernels, terminals and GPUs.

    ``kernel_manager``: the server's ``MappingKernelManager``; ``terminal_manager``: its
    ``TerminalManager`` (``serverapp.web_app.settings["terminal_manager"]``) or None;
    ``activity``: the watch that says when kernels last worked (None: jupyter_server's
    ``last_activity``, which widget traffic moves too).
    """

    def __init__(
        self,
        kernel_manager: Any,
        terminal_manager: Any | None = None,
        probe: GpuProbe | None = None,
        *,
        proc_root: str | os.PathLike[str] = "/proc",
        activity: KernelOutputMonitor | None = None,
    ) -> None:
        self.activity = activity
        self.kernel_manager = kernel_manager
        self.terminal_manager = terminal_manager
        self.probe: GpuProbe = probe if probe is not None else NullProbe()
        self.proc_root = Path(proc_root)

    def _kernels(self) -> list[_KernelSnapshot]:
        km = self.kernel_manager
        out = []
        for kid in list(km.list_kernel_ids()):
            try:
                k = km.get_kernel(kid)
            except KeyError:
                continue
            last = _aware(getattr(k, "last_activity", None))
            if self.activity is not None:
                self.activity.watch(kid, k, last)
                last = self.activity.last(kid) or last
            out.append(
                _KernelSnapshot(
                    id=kid,
                    name=str(getattr(k, "kernel_name", "")),
                    execution_state=str(getattr(k, "execution_state", "unknown")),
                    last_activity=last,
                    pid=kernel_pid(km, kid),
                )
            )
        if self.activity is not None:
            self.activity.keep_only({k.id for k in out})
        return out

    def _terminals(self) -> tuple[int, datetime | None]:
        tm = self.terminal_manager
        terms: Mapping[str, Any] = getattr(tm, "terminals", None) or {}
        stamps = [_aware(getattr(t, "last_activity", None)) for t in list(terms.values())]
        return len(terms), max((s for s in stamps if s is not None), default=None)

    def _gpu_and_procs(
        self, kernels: list[_KernelSnapshot]
    ) -> tuple[list[GpuSample], dict[str, tuple[list[int], int, bool]]]:
        gpus = self.probe.sample()
        roots = [k.pid for k in kernels if k.pid is not None]
        trees = process_tree(roots, self.proc_root) if roots else {}
        mem_by_pid: dict[int, int] = {}
        for g in gpus:
            for p in g.processes:
                mem_by_pid[p.pid] = mem_by_pid.get(p.pid, 0) + p.used_memory_bytes
        per_kernel: dict[str, tuple[list[int], int, bool]] = {}
        for k in kernels:
            pids = trees.get(k.pid, []) if k.pid is not None else []
            mem = sum(mem_by_pid.get(p, 0) for p in pids)
            devices = bool(gpus) and any(_has_gpu_device_open(p, self.proc_root) for p in pids)
            per_kernel[k.id] = (pids, mem, devices)
        return gpus, per_kernel

    async def sample(self, now: datetime | None = None) -> ActivityReport:
        """One report. NVML and /proc work runs in a thread."""
        kernels = self._kernels()
        n_terms, last_term = self._terminals()
        gpus, per_kernel = await asyncio.to_thread(self._gpu_and_procs, kernels)
        stamps = [k.last_activity for k in kernels if k.last_activity is not None]
        if self.activity is not None:
            km_last = self.activity.latest  # kernels shut down since included
        else:
            km_last = _aware(getattr(self.kernel_manager, "last_kernel_activity", None))
        if km_last is not None:
            stamps.append(km_last)
        return ActivityReport(
            sampled_at=now or datetime.now(UTC),
            last_kernel_activity=max(stamps, default=None),
            kernels_busy=any(k.execution_state == "busy" for k in kernels),
            last_terminal_activity=last_term,
            kernels=[
                KernelActivity(
                    id=k.id,
                    name=k.name,
                    execution_state=k.execution_state,
                    last_activity=k.last_activity,
                    pid=k.pid,
                    pids=per_kernel[k.id][0],
                    gpu_memory_bytes=per_kernel[k.id][1],
                    gpu_devices_open=per_kernel[k.id][2],
                )
                for k in kernels
            ],
            terminals=n_terms,
            gpus=gpus,
            probe=getattr(self.probe, "name", type(self.probe).__name__),
        )
