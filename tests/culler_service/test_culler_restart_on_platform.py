"""A culler restart on the whole product: the culler process is killed, JupyterHub starts it
again (managed services are restarted when they exit), and the keep and the warning it had
given are still in force: the kept server is not culled, and the warned one is culled on the
deadline it was warned of, not warned again with a new one.

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
        self.me = f"{platform.hub_url}/services/culler/api/v1/servers/me"
        self.culler = httpx.Client(
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
            r = self.culler.get(self.me)
            if r.status_code == 200:
                return r.json()
        return {}

    def deadlines_until_culled(self, limit: float = 180.0) -> set[str]:
        """The cull deadlines the culler shows this server's owner until it is culled."""
        deadlines: set[str] = set()
        deadline = time.monotonic() + limit
        while self.server() is not None:
            assert time.monotonic() < deadline, f"{self.name}'s server never culled"
            if (status := self.status()).get("state") == "warned":
                deadlines.add(status["cull_at"])
            time.sleep(0.3)
        return deadlines

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
        r = kept.culler.post(f"{kept.me}/keep")
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
        killed = time.monotonic()
        wait_for(lambda: culler_pid(platform) not in (None, old), "the culler started again")
        after = wait_for(kept.status, "the restarted culler answering")
        print(f"culler answering again {time.monotonic() - killed:.1f} s after the kill")

        assert after["state"] == "kept", after
        assert after["keeps_left"] == keep["keeps_left"], (keep, after)
        # A lost warning would be given again, with a later deadline, before any cull.
        assert warned.deadlines_until_culled() <= {warning["cull_at"]}, warning
        assert kept.ready(), "the kept server was culled after the restart"
        assert kept.status()["state"] == "kept"
    finally:
        kept.stop()
        warned.stop()
