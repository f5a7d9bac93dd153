"""Wire :class:`gpulab.extensions.kernel_reaper.KernelReaper` into the server.

Rules come from the culler's status answer (``kernels: {gpu_idle_after_seconds, action,
warn_before_seconds}``) when it carries them, else from the environment
(``GPULAB_KERNEL_GPU_IDLE_AFTER``, ``GPULAB_KERNEL_ACTION``, ``GPULAB_KERNEL_WARN_BEFORE``;
durations as seconds or ``90s``/``30m``/``2h``/``1d``). Unknown: off. The reaper reuses the
reporter's sample instead of sampling twice.
"""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gpulab.extensions.activity import ActivityReport, ActivitySampler
from gpulab.extensions.kernel_reaper import KernelAction, KernelReaper, ReapRules

__all__ = ["KernelReaping", "parse_seconds", "rules_from"]

log = logging.getLogger("gpulab.extensions.server")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ACTIONS = ("warn", "shutdown", "restart")


def parse_seconds(value: str) -> int | None:
    m = _DURATION.match(value or "")
    return None if m is None else int(float(m.group(1)) * _UNIT[m.group(2)])


def rules_from(status: Mapping[str, Any] | None, env: Mapping[str, str]) -> ReapRules | None:
    """The rules in force, or None (reaper off)."""
    kernels = (status or {}).get("kernels")
    if isinstance(kernels, Mapping) and "gpu_idle_after_seconds" in kernels:
        action = str(kernels.get("action", "shutdown"))
        return ReapRules(
            gpu_idle_after_seconds=int(kernels.get("gpu_idle_after_seconds") or 0),
            action=action if action in _ACTIONS else "warn",  # type: ignore[arg-type]
            warn_before_seconds=int(kernels.get("warn_before_seconds", 600)),
        )
    after = parse_seconds(env.get("GPULAB_KERNEL_GPU_IDLE_AFTER", ""))
    if after is None:
        return None
    action = env.get("GPULAB_KERNEL_ACTION", "shutdown").strip()
    warn = parse_seconds(env.get("GPULAB_KERNEL_WARN_BEFORE", "600"))
    return ReapRules(
        gpu_idle_after_seconds=after,
        action=action if action in _ACTIONS else "warn",  # type: ignore[arg-type]
        warn_before_seconds=600 if warn is None else warn,
    )


class _ReplaySampler(ActivitySampler):
    """Hands the reaper the report the reporter just took."""

    def __init__(self, kernel_manager: Any) -> None:
        super().__init__(kernel_manager)
        self.report: ActivityReport | None = None

    async def sample(self, now: datetime | None = None) -> ActivityReport:
        if self.report is None:
            return await super().sample(now)
        return self.report


class KernelReaping:
    """Runs the reaper after each report; keeps its recent warnings and actions for the UI."""

    def __init__(
        self, kernel_manager: Any, env: Mapping[str, str] | None = None, keep: int = 20
    ) -> None:
        self.env = os.environ if env is None else env
        self._sampler = _ReplaySampler(kernel_manager)
        self.reaper = KernelReaper(
            kernel_manager, ReapRules(gpu_idle_after_seconds=0), self._sampler, self._record
        )
        self.events: deque[dict[str, Any]] = deque(maxlen=keep)
        self.rules: ReapRules | None = None

    def _record(self, action: KernelAction) -> None:
        self.events.append(
            {
                "kernel_id": action.kernel_id,
                "action": action.action,
                "reason": action.reason,
                "at": action.at.isoformat(),
                "noted": datetime.now(UTC).isoformat(),
            }
        )

    async def run(self, report: ActivityReport, status: Mapping[str, Any] | None) -> None:
        rules = rules_from(status, self.env)
        self.rules = rules
        if rules is None or rules.gpu_idle_after_seconds <= 0:
            self.reaper.warned = {}
            return
        self.reaper.rules = rules
        self._sampler.report = report
        try:
            await self.reaper.run_once()
        finally:
            self._sampler.report = None

    def pending_warnings(self) -> list[dict[str, Any]]:
        """Kernels warned and not yet acted on."""
        return [{"kernel_id": kid, "at": at.isoformat()} for kid, at in self.reaper.warned.items()]

    def to_json(self) -> dict[str, Any]:
        r = self.rules
        return {
            "rules": None
            if r is None
            else {
                "gpu_idle_after_seconds": r.gpu_idle_after_seconds,
                "action": r.action,
                "warn_before_seconds": r.warn_before_seconds,
            },
            "warned": self.pending_warnings(),
            "events": list(self.events),
        }
