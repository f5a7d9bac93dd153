"""Free GPU memory held by idle kernels, without stopping the server.

A kernel keeps its GPU memory until it is restarted or shut down. A kernel that holds GPU
memory (its process tree, per NVML) and has been idle (not executing, no IOPub activity) for
the policy's ``kernels.gpu_idle_after`` is warned; ``warn_before`` later, if it is still idle,
it is shut down or restarted (policy ``kernels.action``; ``warn`` only warns).

:func:`idle_gpu_kernels` is the pure decision; :class:`KernelReaper` samples and applies it
through the server's ``MappingKernelManager``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .activity import ActivitySampler, KernelActivity

__all__ = [
    "KernelAction",
    "KernelInfo",
    "KernelReaper",
    "ReapRules",
    "idle_gpu_kernels",
]

log = logging.getLogger(__name__)

ReapAction = Literal["warn", "shutdown", "restart"]


def _dur(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m = rem // 60
    if h:
        return f"{h}h{m:02d}m" if m else f"{h}h"
    return f"{m}m" if m else f"{s}s"


def _gib(n: int) -> str:
    return f"{n / 1024**3:.1f} GiB"


@dataclass(frozen=True)
class ReapRules:
    """Mirrors policy ``kernels`` (+ ``idle.warn_before``). ``gpu_idle_after_seconds`` 0 = off."""

    gpu_idle_after_seconds: int = 7200
    action: ReapAction = "shutdown"
    warn_before_seconds: int = 600

    @classmethod
    def from_entitlement(cls, ent: Any) -> ReapRules:
        return cls(
            gpu_idle_after_seconds=int(ent.kernels.gpu_idle_after_seconds),
            action=ent.kernels.action,
            warn_before_seconds=int(ent.idle.warn_before_seconds),
        )


@dataclass(frozen=True)
class KernelInfo:
    id: str
    name: str
    last_activity: datetime | None
    execution_state: str
    gpu_memory_bytes: int

    @classmethod
    def from_activity(cls, k: KernelActivity) -> KernelInfo:
        return cls(k.id, k.name, k.last_activity, k.execution_state, k.gpu_memory_bytes)


@dataclass(frozen=True)
class KernelAction:
    """``warn``: tell the user that the kernel will be acted on at ``at``; ``shutdown`` /
    ``restart``: do it now (``at`` is when it was due)."""

    kernel_id: str
    action: ReapAction
    reason: str
    at: datetime


def idle_gpu_kernels(
    kernels: list[KernelInfo],
    now: datetime,
    rules: ReapRules,
    warned: Mapping[str, datetime] | None = None,
) -> list[KernelAction]:
    """Actions for kernels that hold GPU memory and are idle past ``gpu_idle_after``.

    ``warned``: kernel id → the ``at`` of the warning in force (from the previous call's
    ``warn`` actions). A kernel first gets ``warn`` (``at = now + warn_before``), again ``warn``
    with the same ``at`` while it is pending, then the policy's action once ``now >= at``.
    Busy kernels, kernels holding no GPU memory and recently active kernels get nothing (and
    so lose any warning).
    """
    warned = warned or {}
    if rules.gpu_idle_after_seconds <= 0:
        return []
    out: list[KernelAction] = []
    for k in kernels:
        if k.gpu_memory_bytes <= 0 or k.execution_state in ("busy", "starting", "dead"):
            continue
        if k.last_activity is None:
            continue
        idle_for = (now - k.last_activity).total_seconds()
        if idle_for < rules.gpu_idle_after_seconds:
            continue
        reason = (
            f"kernel {k.name or k.id} holds {_gib(k.gpu_memory_bytes)} of GPU memory and has been "
            f"idle for {_dur(idle_for)} ≥ {_dur(rules.gpu_idle_after_seconds)}"
        )
        at = warned.get(k.id)
        if at is None:
            at = now + timedelta(seconds=max(0, rules.warn_before_seconds))
            if rules.warn_before_seconds <= 0 and rules.action != "warn":
                out.append(KernelAction(k.id, rules.action, reason, now))
                continue
        if now >= at and rules.action != "warn":
            out.append(KernelAction(k.id, rules.action, reason, at))
        else:
            verb = {"shutdown": "shut down", "restart": "restarted", "warn": None}[rules.action]
            what = f"; it will be {verb} at {at:%H:%M %Z}".rstrip() if verb else ""
            out.append(KernelAction(k.id, "warn", reason + what, at))
    return out


Notify = Callable[[KernelAction], Awaitable[None] | None]


class KernelReaper:
    """Samples kernels (with GPU memory per kernel) and applies :func:`idle_gpu_kernels`.

    ``notify`` is called for every new warning (once per kernel and ``at``) and every action
    taken; the server extension turns it into a notification in JupyterLab.
    """

    def __init__(
        self,
        kernel_manager: Any,
        rules: ReapRules,
        sampler: ActivitySampler,
        notify: Notify | None = None,
    ) -> None:
        self.kernel_manager = kernel_manager
        self.rules = rules
        self.sampler = sampler
        self.notify = notify
        self.warned: dict[str, datetime] = {}
        self._task: asyncio.Task[None] | None = None

    async def _notify(self, action: KernelAction) -> None:
        if self.notify is None:
            return
        try:
            r = self.notify(action)
            if inspect.isawaitable(r):
                await r
        except Exception:
            log.exception("kernel reaper: notify failed for %s", action.kernel_id)

    async def run_once(self, now: datetime | None = None) -> list[KernelAction]:
        """Sample, decide, act. Returns the actions decided (warnings included)."""
        report = await self.sampler.sample(now)
        now = report.sampled_at
        infos = [KernelInfo.from_activity(k) for k in report.kernels]
        actions = idle_gpu_kernels(infos, now, self.rules, self.warned)
        new_warned: dict[str, datetime] = {}
        for a in actions:
            if a.action == "warn":
                if self.warned.get(a.kernel_id) != a.at:
                    log.info("kernel reaper: warn %s: %s", a.kernel_id, a.reason)
                    await self._notify(a)
                new_warned[a.kernel_id] = a.at
                continue
            log.info("kernel reaper: %s %s: %s", a.action, a.kernel_id, a.reason)
            try:
                if a.action == "shutdown":
                    await self.kernel_manager.shutdown_kernel(a.kernel_id)
                else:
                    await self.kernel_manager.restart_kernel(a.kernel_id)
            except Exception:
                log.exception("kernel reaper: %s %s failed", a.action, a.kernel_id)
                continue
            await self._notify(a)
        self.warned = new_warned
        return actions

    async def run(self, interval: float = 60.0) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("kernel reaper: cycle failed")
            await asyncio.sleep(interval)

    def start(self, interval: float = 60.0) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(interval))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None


def utcnow() -> datetime:
    return datetime.now(UTC)
