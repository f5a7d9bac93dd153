"""A spawner that starts no process: the hub records a real running server (real token, real
proxy route) that points at the hub itself, so ``wait_up`` succeeds. Tests and the culler
benchmark use it where the server's own process is not under test. Each server's env (its
``JUPYTERHUB_API_TOKEN``) is written to ``$GPULAB_NULLSPAWNER_DIR/<user>-<server>.json`` so a
test can act as the server's extension."""

from __future__ import annotations

import json
import os
from pathlib import Path

from jupyterhub.spawner import Spawner
from traitlets import Unicode


class NullSpawner(Spawner):
    target = Unicode("", config=True, help="URL every server points at")

    async def start(self) -> str:
        folder = os.environ.get("GPULAB_NULLSPAWNER_DIR")
        if folder:
            path = Path(folder) / f"{self.user.name}-{self.name}.json"
            path.write_text(json.dumps(self.get_env()))
            path.chmod(0o600)
        self._running = True
        return self.target

    async def poll(self) -> int | None:
        return None if getattr(self, "_running", False) or self.server else 0

    async def stop(self, now: bool = False) -> None:
        self._running = False

    def get_state(self) -> dict:
        return {"running": True}

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self._running = bool(state.get("running"))
