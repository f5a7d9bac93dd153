"""The admin's journey in headless Chromium, on the platform ``gpulab up`` runs.

bob (group nlp) has a 1-GPU server, started through the hub API beforehand. The admin logs in,
opens the GPU dashboard at /services/culler/dashboard/, sees the GPUs in use and bob's running
server and the GPUs per node, stops it with the dashboard's own "stop server" button and a
reason typed in the row, reads the result beside the row, and bob's server is gone (from the
hub, from the cluster and from the dashboard); bob then reads the reason on his hub home page.
Screenshots go to test-artifacts/journey/.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ADMIN = "admin"
OTHER = "bob"  # hub/demo/users.yaml: group nlp
OTHER_GROUP = "nlp"
BOB_OPTIONS = {"profile": "gpu", "gpus": "1"}  # the spawn form's choices, as user options
READY_DEADLINE = 120.0  # seconds for bob's server to start on a 2-core machine


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll a state until it holds (not a timed assertion: the bound only ends a stuck test)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not the case after {timeout:.0f}s")
        time.sleep(0.5)


def pod_exists(platform: Any, name: str) -> bool:
    with platform.kube_client() as kube:
        pods = kube.get("/api/v1/namespaces/default/pods").raise_for_status().json()["items"]
    return any(p["metadata"]["name"] == name for p in pods)


REASON = "GPU nodes go down for maintenance at 18:00"


def test_admin_journey(platform, browser, context, login, shot, servers, hub_server) -> None:
    servers.own(OTHER)  # no server before; stopped at teardown if the dashboard did not

    # Before: bob has a 1-GPU server (through the hub API, with the platform's admin token).
    platform.api("POST", f"/hub/api/users/{OTHER}/server", BOB_OPTIONS)

    def bob_ready() -> bool:
        model = hub_server(OTHER)
        assert model is not None, f"{OTHER}'s spawn failed (see jupyterhub.log)"
        return bool(model["ready"])

    wait_for(f"{OTHER}'s server ready", bob_ready, READY_DEADLINE)
    model = hub_server(OTHER)
    assert model is not None
    pod_name = model["state"]["pod_name"]

    # 1. The admin logs in through the hub's form.
    page = login(context, ADMIN)
    shot(page, "admin-logged-in")

    # 2. The dashboard: GPUs in use, and bob's running server with a stop button. The usage
    # recorder follows pods through a watch, so the page may need a reload to list bob.
    response = page.goto(platform.service_url("culler") + "dashboard/")
    assert response is not None and response.status == 200
    stop_button = f'button.stop[data-user="{OTHER}"][data-server=""]'
    stop = page.locator(f"#running {stop_button}")

    def bob_listed() -> bool:
        if stop.count():
            return True
        page.reload()
        return False

    wait_for(f"{OTHER}'s server on the dashboard", bob_listed, 60)
    bob_row = page.locator("#running tbody tr", has=page.locator(stop_button))
    expect(bob_row).to_contain_text("server")
    expect(bob_row).to_contain_text(OTHER_GROUP)
    expect(bob_row).to_contain_text("a100")
    # GPUs in use: at least bob's (other tests may have seeded more into the usage records).
    a100 = page.locator("#capacity table").first.locator("tbody tr", has_text="a100")
    assert int(a100.locator("td").nth(1).inner_text()) >= 1, a100.inner_text()
    nlp = page.locator("#by-group tbody tr", has_text=OTHER_GROUP)
    assert int(nlp.locator("td").last.inner_text()) >= 1, nlp.inner_text()
    shot(page, "admin-dashboard")

    # The GPUs per node: bob's GPU is used on an a100 node, from the culler's node watch.
    a100_nodes = page.locator("#node-types tbody tr", has_text="a100")
    assert int(a100_nodes.locator("td").nth(2).inner_text()) >= 1, a100_nodes.inner_text()
    expect(page.locator("#node-table tbody tr").first).to_be_visible()
    shot(page, "admin-dashboard-nodes")

    # 3. Stop bob's server from the dashboard: the row asks for a reason (required), and the
    # answer is written beside the row, in words.
    stop.click()
    reason = bob_row.locator("form.reason input[name=reason]")
    expect(reason).to_be_focused()
    bob_row.locator("form.reason button[type=submit]").click()  # empty: the browser refuses
    expect(reason).to_be_visible()
    reason.fill(REASON)
    bob_row.locator("form.reason button[type=submit]").click()
    result = page.locator(f'#running tr[data-key="server:{OTHER}/"] .result')
    expect(result).to_contain_text(f"Stopped {OTHER}'s default server", timeout=60_000)
    shot(page, "admin-stop-requested")

    # The page refreshes itself: the scroll position stays and so does the answer beside
    # the row (the row itself, greyed, once bob's server has left the table).
    # (Not to the very bottom: a row a pixel shorter after the refresh would move that.)
    page.evaluate("window.scrollTo(0, 200)")
    scrolled = page.evaluate("window.scrollY")
    assert scrolled == 200, "the dashboard is shorter than the window: nothing to keep"
    page.wait_for_function("Number(document.body.dataset.refreshed || 0) >= 1", timeout=60_000)
    assert page.evaluate("window.scrollY") == scrolled
    expect(result).to_contain_text(f"Stopped {OTHER}'s default server")
    shot(page, "admin-after-refresh")

    # 4. bob's server is gone: from the hub, from the cluster, and from the dashboard.
    wait_for(f"{OTHER}'s server gone from the hub", lambda: hub_server(OTHER) is None, 90)
    wait_for(f"pod {pod_name} gone", lambda: not pod_exists(platform, pod_name), 90)

    def bob_unlisted() -> bool:
        page.reload()
        return stop.count() == 0

    wait_for(f"{OTHER}'s server off the dashboard", bob_unlisted, 60)
    shot(page, "admin-server-stopped")

    # 5. bob is told why, on his hub home page (his own notices only).
    bob_context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        bob = login(bob_context, OTHER)
        bob.goto(platform.hub_url + "/hub/home")
        notice = bob.locator("#gpulab-notices .gpulab-notice").first
        expect(notice).to_contain_text("admin stopped your default server")
        expect(notice.locator(".gpulab-notice-reason")).to_have_text(REASON)
        shot(bob, "user-told-why")
    finally:
        bob_context.close()
