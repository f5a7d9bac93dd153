"""The culler on the whole product: a server started by GPULabSpawner on kubesim, reporting
through gpulab's server extension, is warned then culled by the culler service through the hub,
and its home claim is still there afterwards (culling never deletes a home).

Runs on the shared session ``platform`` (tests/conftest.py): culler cycle 2 s, reports every
second, and tests/e2e/policy.yaml gives users in no group (the ``default`` group) a 20 s idle
timeout with a 10 s warning.
"""

from __future__ import annotations

import time
import urllib.error
import uuid

import httpx
import pytest
from gpulab.hub.names import escape_username

pytestmark = [pytest.mark.e2e]

CPU_IMAGE = "harbor.local/shared/scipy:2024.10"


def wait_for(predicate, what: str, limit: float = 180.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"never saw: {what}")


def test_an_idle_server_is_warned_then_culled_and_its_home_stays(platform):
    name = f"idle-{uuid.uuid4().hex[:6]}"
    platform.api("POST", f"/hub/api/users/{name}")  # in no group: the default group's rules
    token = platform.user_token(name)
    platform.api("POST", f"/hub/api/users/{name}/server", {"profile": "cpu", "image": CPU_IMAGE})
    try:
        wait_for(
            lambda: (platform.api("GET", f"/hub/api/users/{name}")["servers"].get("") or {}).get(
                "ready"
            ),
            "the server ready",
        )
        claim = f"home-{escape_username(name)}"
        claim_path = f"/api/v1/namespaces/default/persistentvolumeclaims/{claim}"
        kube = platform.kube_client()
        assert kube.get(claim_path).status_code == 200

        def culler_status() -> dict:
            r = httpx.get(
                f"{platform.hub_url}/services/culler/api/v1/servers/me",
                params={"server": ""},
                headers={"Authorization": f"token {token}"},
                timeout=30,
            )
            return r.json() if r.status_code == 200 else {}

        warned = wait_for(
            lambda: (s := culler_status()).get("state") == "warned" and s, "a warning"
        )
        assert warned["cull_at"], warned
        assert "idle" in warned["reason"] or "activity" in warned["reason"], warned

        wait_for(
            lambda: "" not in platform.api("GET", f"/hub/api/users/{name}")["servers"],
            "the server culled",
        )
        pods = kube.get(
            "/api/v1/namespaces/default/pods",
            params={"labelSelector": f"hub.jupyter.org/username={name}"},
        ).json()["items"]
        assert all(p["metadata"].get("deletionTimestamp") for p in pods)
        kept = kube.get(claim_path)
        assert kept.status_code == 200, "culling deleted the home claim"
        assert kept.json()["status"]["phase"] == "Bound"
    finally:
        try:
            platform.api("DELETE", f"/hub/api/users/{name}/server")
        except urllib.error.HTTPError:
            pass
