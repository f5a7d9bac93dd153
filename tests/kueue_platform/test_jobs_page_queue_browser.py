"""The jobs page (alice's server, /user/alice/gpulab/jobs) in Chromium shows where a queued job
stands and what it waits for, under its state, and offers to cancel it."""

from __future__ import annotations

import time
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import VIEWPORT, log_in
from tests.gateway.gateway_testlib import command_job

SLEEP = "import time; time.sleep(600)"
READY_DEADLINE = 180.0


def _start_cpu_server(platform: Any, name: str) -> None:
    platform.api("POST", f"/hub/api/users/{name}/server", {"profile": "cpu"})
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        model = platform.api("GET", f"/hub/api/users/{name}")["servers"].get("")
        if model and model["ready"]:
            return
        assert model is not None, f"{name}'s spawn failed (see jupyterhub.log)"
        time.sleep(0.5)
    raise AssertionError(f"{name}'s server not ready within {READY_DEADLINE:.0f}s")


def _stop_server(platform: Any, name: str) -> None:
    platform.api("DELETE", f"/hub/api/users/{name}/server")


def test_jobs_page_shows_a_queued_jobs_place_and_reason(kueue_platform, kgw, kueue_browser):
    made: list[str] = []
    _start_cpu_server(kueue_platform, "alice")
    context = kueue_browser.new_context(viewport=VIEWPORT)
    try:
        with kgw.client("alice") as c:
            for name in ("fill", "waits"):
                r = c.post("/jobs", json=command_job(name, SLEEP, gpus=2))
                assert r.status_code == 201, r.text
                made.append(r.json()["id"])
        kgw.wait_state("alice", made[0], ("Running",))
        kgw.wait_state("alice", made[1], ("Queued",))
        page = log_in(context, kueue_platform.hub_url, "alice")
        page.goto(kueue_platform.user_url("alice").rstrip("/") + "/gpulab/jobs")
        row = page.locator(f'#jobs-table tr[data-id="{made[1]}"]')
        expect(row.locator(".state")).to_have_text("Queued")
        expect(row.locator(".queue")).to_contain_text("#1 in alice")
        expect(row.locator(".queue")).to_contain_text("2 × a100 in vision: next in line")
        expect(row.locator(".queue")).to_contain_text("2 of 2 GPUs busy")
        expect(row.get_by_role("button", name="Cancel")).to_be_enabled()
    finally:
        context.close()
        with kgw.client("alice") as c:
            for job_id in made:
                c.delete(f"/jobs/{job_id}")
        _stop_server(kueue_platform, "alice")
