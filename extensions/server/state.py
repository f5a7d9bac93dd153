"""What the extension's handlers share, kept in ``web_app.settings["gpulab"]``."""

from __future__ import annotations

from dataclasses import dataclass

from .config import GPULabExtension
from .reaping import KernelReaping
from .reporter import ActivityReporter
from .upstream import Upstream

__all__ = ["ExtensionState", "SETTINGS_KEY"]

SETTINGS_KEY = "gpulab"


@dataclass
class ExtensionState:
    config: GPULabExtension
    gateway: Upstream
    culler: Upstream
    reporter: ActivityReporter
    reaping: KernelReaping
    root_dir: str
    home: str
    image: str
    gpus: int

    async def close(self) -> None:
        await self.reporter.stop()
        await self.gateway.aclose()
        await self.culler.aclose()
