"""The jobs gateway's own page in headless Chromium: a researcher's jobs with no server running.

carol has no server. She logs in to the hub, follows the navigation bar's "Jobs" link to the
gateway's origin (the hub's OAuth login, no form), finds the job she submitted earlier with
its log and outputs; bob's job, asked for by id from her page, answers 404. Only a gpulab
admin's navigation bar links to the GPU dashboard. Screenshots go to test-artifacts/journey/.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import through_proxy
from tests.extension.jupyter_testlib import until
from tests.gateway.gateway_testlib import command_job

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

USER = "carol"  # hub/demo/users.yaml: no group, the policy's default group
OTHER = "bob"
ADMIN = "admin"
JOB_DEADLINE = 180.0  # seconds for a small CPU job to finish on a 2-core machine


def gateway(platform: Any, name: str) -> httpx.Client:
    url, headers = through_proxy(platform, platform.service_url("jobs-gateway") + "api/v1")
    token = platform.user_token(name)
    return httpx.Client(
        base_url=url, headers={**headers, "Authorization": f"token {token}"}, timeout=60
    )


def finished_job(platform: Any, owner: str, name: str, script: str) -> dict[str, Any]:
    """A job of ``owner``'s, submitted through the gateway's API and waited for to finish."""
    with gateway(platform, owner) as gw:
        r = gw.post("/jobs", json=command_job(name, script))
        assert r.status_code in (200, 201, 202), r.text
        job_id = r.json()["id"]
        latest: dict[str, Any] = {}

        def done() -> bool:
            latest.update(gw.get(f"/jobs/{job_id}").raise_for_status().json())
            return latest["state"] in ("Succeeded", "Failed", "Cancelled")

        until(done, f"{owner}'s job {job_id} finished", JOB_DEADLINE, every=1.0)
    assert latest["state"] == "Succeeded", latest
    return latest


@pytest.fixture(scope="module")
def serverless_jobs(platform: Any) -> dict[str, dict[str, Any]]:
    """carol's finished job (printing a marker and writing an output) and one of bob's."""
    if platform.s3 is None:
        pytest.fail("these tests need the Ceph S3 gateway (jobs): install Ceph (`./dev.sh test`)")
    script = (
        "import os, pathlib; print('hello from the serverless page'); "
        "pathlib.Path(os.environ['GPULAB_OUTPUT_DIR'], 'result.txt').write_text('42')"
    )
    return {
        USER: finished_job(platform, USER, "serverless", script),
        OTHER: finished_job(platform, OTHER, "not-carols", "print('bob')"),
    }


def test_hub_jobs_page_lists_jobs_with_no_server_running(
    platform, context, login, shot, servers, hub_server, serverless_jobs
) -> None:
    servers.own(USER)  # no server, before and after
    assert hub_server(USER) is None
    job = serverless_jobs[USER]
    errors: list[str] = []
    context.on(
        "console", lambda m: errors.append(f"{m.location}: {m.text}") if m.type == "error" else None
    )

    page = login(context, USER)
    nav = page.locator("#gpulab-nav-jobs")
    expect(nav).to_have_text("Jobs")
    expect(page.locator("#gpulab-nav-dashboard")).to_have_count(0)
    shot(page, "serverless-hub-nav")

    nav.click()
    page.wait_for_url(platform.service_url("jobs-gateway") + "jobs/")
    row = page.locator(f'#jobs-table tbody tr[data-id="{job["id"]}"]')
    expect(row).to_contain_text("Succeeded")
    expect(page.locator("#submit-panel")).to_have_count(0)  # no server to submit from here
    row.click()
    expect(page.locator("#log-view")).to_contain_text("hello from the serverless page")
    expect(page.locator("#outputs-list a", has_text="result.txt")).to_be_visible()
    shot(page, "serverless-jobs-page")
    assert errors == []  # the 404 asked for below is logged by the browser, rightly

    other = serverless_jobs[OTHER]["id"]
    status = page.evaluate(
        """async (id) => {
            const cfg = JSON.parse(document.getElementById("gpulab-config").textContent);
            const headers = {"X-XSRFToken": cfg.xsrfToken};  // as the page's own calls
            return (await fetch(cfg.apiUrl + "jobs/" + id, {headers})).status;
        }""",
        other,
    )
    assert status == 404
    assert hub_server(USER) is None


def test_only_admins_get_the_dashboard_link(platform, context, login, shot) -> None:
    page = login(context, ADMIN)
    link = page.locator("#gpulab-nav-dashboard")
    expect(link).to_have_text("GPU dashboard")
    assert link.get_attribute("href") == platform.service_url("culler") + "dashboard/"
    shot(page, "admin-hub-nav")
