"""A culler restart on the whole product: the culler process is killed, JupyterHub starts it
again (managed services are restarted when they exit), and the keep and the warning it had
given are still in force; the kept server is not culled.

Runs on the shared session ``platform`` (tests/conftest.py): culler cycle 2 s, reports every
second, and tests/e2e/policy.yaml gives users in no group (the ``default`` group) a 20 s idle
timeout with a 10 s warning, and two keeps.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import urllib.error
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

pytestmark = [pytest.mark.e2e]

CPU_IMAGE = "harbor.local/shared/scipy:2024.10"
CULLER_MODULE = "gpulab.hub.culler.service"

T = TypeVar("T")


def wait_for(value: Callable[[], T], what: str, limit: float = 180.0) -> T:
    """``value()`` once it is truthy (a bound on waiting, not a timed assertion)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        got = value()
        if got:
            return got
        time.sleep(0.3)
    raise AssertionError(f"never saw: {what}")


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def culler_pid(platform: Any) -> int | None:
    """The culler service process the platform's JupyterHub started (its descendant)."""
    hub = next(p.popen.pid for p in platform.procs if p.name == "jupyterhub")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            if CULLER_MODULE not in (entry / "cmdline").read_bytes().decode(errors="replace"):
                continue
            pid = int(entry.name)
            ancestor = pid
            while ancestor > 1:
                ancestor = _parent(ancestor)
                if ancestor == hub:
                    return pid
    return None


class User:
    """A user in no group (the default group's short idle rules) with a CPU server."""

    def __init__(self, platform: Any, prefix: str) -> None:
        self.platform = platform
        self.name = f"{prefix}{uuid.uuid4().hex[:6]}"
        platform.api("POST", f"/hub/api/users/{self.name}")
        self.culler = httpx.Client(
            base_url=f"{platform.hub_url}/services/culler/api/v1/servers/me",
            headers={"Authorization": f"token {platform.user_token(self.name)}"},
            params={"server": ""},
            timeout=30,
        )

    def start(self) -> None:
        self.platform.api(
            "POST", f"/hub/api/users/{self.name}/server", {"profile": "cpu", "image": CPU_IMAGE}
        )

    def server(self) -> dict[str, Any] | None:
        return self.platform.api("GET", f"/hub/api/users/{self.name}")["servers"].get("")

    def ready(self) -> bool:
        return bool((self.server() or {}).get("ready"))

    def status(self) -> dict[str, Any]:
        with contextlib.suppress(httpx.HTTPError):
            r = self.culler.get("")
            if r.status_code == 200:
                return r.json()
        return {}

    def stop(self) -> None:
        with contextlib.suppress(urllib.error.HTTPError):
            self.platform.api("DELETE", f"/hub/api/users/{self.name}/server")
        self.culler.close()


def test_a_restarted_culler_keeps_the_keep_and_the_warning_and_culls_no_kept_server(platform):
    kept, warned = User(platform, "ck"), User(platform, "cw")
    try:
        kept.start()
        wait_for(kept.ready, "the server to keep ready")
        warned.start()
        r = kept.culler.post("/keep")
        assert r.status_code == 200, r.text
        keep = r.json()
        assert keep["state"] == "kept", keep
        wait_for(warned.ready, "the server to warn ready")
        warning = wait_for(
            lambda: (s := warned.status()).get("state") == "warned" and s, "a warning"
        )

        old = culler_pid(platform)
        assert old is not None, "no culler process under the platform's JupyterHub"
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: culler_pid(platform) not in (None, old), "the culler started again")
        after = wait_for(kept.status, "the restarted culler answering")

        assert after["state"] == "kept", after
        assert after["keeps_left"] == keep["keeps_left"], (keep, after)
        again = warned.status()
        if warned.server() is not None and again:  # not yet culled: the same warning
            assert again["state"] == "warned" and again["cull_at"] == warning["cull_at"], (
                warning,
                again,
            )
        wait_for(lambda: warned.server() is None, "the warned server culled after the restart")
        assert kept.ready(), "the kept server was culled after the restart"
        assert kept.status()["state"] == "kept"
    finally:
        kept.stop()
        warned.stop()
