"""Every ``report_interval`` seconds: sample activity, POST it to the culler, keep its answer.

The culler answers each report with the server's ``CullStatus``; the jobs page and the panel
read the last one through ``/gpulab/api/cull-status``. After each report the kernel reaper runs
on the same sample. Failures are logged once per kind and retried at the next tick.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from gpulab.extensions.activity import ActivitySampler

from .reaping import KernelReaping
from .upstream import Upstream, UpstreamError

__all__ = ["ActivityReporter"]

log = logging.getLogger("gpulab.extensions.server")


class ActivityReporter:
    def __init__(
        self,
        sampler: ActivitySampler,
        culler: Upstream,
        interval: float,
        server_name: str = "",
        reaping: KernelReaping | None = None,
    ) -> None:
        self.sampler = sampler
        self.culler = culler
        self.interval = max(0.1, float(interval))
        self.server_name = server_name
        self.reaping = reaping
        self.last_status: dict[str, Any] | None = None
        self.last_status_at: datetime | None = None
        self.last_report: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.reports_sent = 0
        self._task: asyncio.Task[None] | None = None
        self._logged: str | None = None

    def remember(self, status: dict[str, Any]) -> None:
        self.last_status = status
        self.last_status_at = datetime.now(UTC)

    def _failed(self, message: str) -> None:
        self.last_error = message
        if message != self._logged:
            log.warning("gpulab: activity report: %s", message)
            self._logged = message

    async def report_once(self) -> dict[str, Any] | None:
        report = await self.sampler.sample()
        body = report.to_json()
        self.last_report = body
        status: dict[str, Any] | None = None
        if self.culler.configured:
            try:
                response = await self.culler.request("POST", "api/v1/activity", json_body=body)
            except UpstreamError as exc:
                self._failed(exc.message)
            else:
                if response.status_code == 200:
                    status = response.json()
                    self.remember(status)
                    self.reports_sent += 1
                    self.last_error = self._logged = None
                else:
                    self._failed(f"culler answered {response.status_code}: {response.text[:200]}")
        if self.reaping is not None:
            try:
                await self.reaping.run(report, status or self.last_status)
            except Exception:
                log.exception("gpulab: kernel reaper failed")
        return status

    async def run(self) -> None:
        while True:
            try:
                await self.report_once()
            except Exception:
                log.exception("gpulab: activity report failed")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def to_json(self) -> dict[str, Any]:
        return {
            "interval": self.interval,
            "reports_sent": self.reports_sent,
            "last_status_at": None
            if self.last_status_at is None
            else self.last_status_at.isoformat(),
            "last_error": self.last_error,
        }
