"""An open jobs panel never keeps a server from being culled.

A server whose only kernel ran ``jobs.panel()`` (auto-refresh every second), with no browser
attached, is warned and then culled on the culler's schedule: once warned it never turns active
again. Before, each refresh that changed a widget (the panel showing the cull warning, then
clearing it) was kernel output, which counted as activity: the warning was withdrawn, again and
again, and the server held its resources forever.

On the shared session ``platform`` (tests/conftest.py): culler cycle 2 s, reports every
second, and tests/e2e/policy.yaml gives users in no group a 20 s idle timeout with a 10 s
warning. A real kernel in the real server, driven once over the kernel's websocket as a
notebook would, which then disconnects.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.extension.jupyter_testlib import until

pytestmark = [pytest.mark.e2e]

CPU_IMAGE = "harbor.local/shared/scipy:2024.10"
PANEL_CODE = "from gpulab import jobs\npanel = jobs.panel(auto_refresh=1)\npanel"
DEADLINE = 180.0  # seconds: a bound on waiting, never an expected duration


async def run_in_new_kernel(server_url: str, token: str, code: str) -> None:
    """Start a kernel on the server, run ``code`` in it as a notebook cell would, and
    disconnect: afterwards no front end is attached to the kernel."""
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(headers=headers, timeout=60) as http:
        r = await http.post(server_url + "api/kernels", json={"name": "python3"})
        assert r.status_code == 201, r.text
        kernel_id = r.json()["id"]
    ws_url = server_url.replace("http", "ws", 1) + f"api/kernels/{kernel_id}/channels"
    ws = await websocket_connect(HTTPRequest(ws_url, headers=headers))
    msg_id = uuid.uuid4().hex
    ws.write_message(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                    "date": datetime.now(UTC).isoformat(),
                },
                "parent_header": {},
                "metadata": {},
                "content": {
                    "code": code,
                    "silent": False,
                    "store_history": True,
                    "user_expressions": {},
                    "allow_stdin": False,
                },
                "channel": "shell",
                "buffers": [],
            }
        )  # fmt: skip
    )
    try:
        while True:
            raw = await asyncio.wait_for(ws.read_message(), DEADLINE)
            assert raw is not None, "the kernel's websocket closed before the cell finished"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            assert msg["msg_type"] != "error", msg["content"]
            if msg["msg_type"] == "execute_reply":
                assert msg["content"]["status"] == "ok", msg["content"]
                return
    finally:
        ws.close()


async def test_a_server_running_only_the_panel_is_warned_then_culled(platform) -> None:
    name = f"panel-{uuid.uuid4().hex[:6]}"
    platform.api("POST", f"/hub/api/users/{name}")  # in no group: the default group's rules
    token = platform.user_token(name)
    platform.api("POST", f"/hub/api/users/{name}/server", {"profile": "cpu", "image": CPU_IMAGE})

    def server() -> dict[str, Any] | None:
        return platform.api("GET", f"/hub/api/users/{name}")["servers"].get("")

    def culler_state() -> str:
        r = httpx.get(
            f"{platform.hub_url}/services/culler/api/v1/servers/me",
            params={"server": ""},
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        return r.json().get("state", "") if r.status_code == 200 else ""

    try:
        await asyncio.to_thread(
            until, lambda: (server() or {}).get("ready"), "server ready", DEADLINE
        )
        await run_in_new_kernel(f"{platform.hub_url}/user/{name}/", token, PANEL_CODE)

        await asyncio.to_thread(until, lambda: culler_state() == "warned", "a warning", DEADLINE)
        after_warning: list[str] = []

        def culled() -> bool:
            if server() is None:
                return True
            after_warning.append(culler_state())
            return False

        await asyncio.to_thread(until, culled, "the server culled", DEADLINE)
        # A withdrawn warning reads "idle" or "active" until the next one.
        assert set(after_warning) <= {"warned", ""}, after_warning
    finally:
        try:
            platform.api("DELETE", f"/hub/api/users/{name}/server")
        except urllib.error.HTTPError:
            pass
