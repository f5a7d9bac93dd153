"""A sweep on the gateway's jobs page in headless Chromium: the results table under the job,
sorted by a clicked metric column (again: the other way), and a clicked run's own log.
Screenshots go to test-artifacts/journey/."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.test_jobs_page_serverless import JOB_DEADLINE, gateway
from tests.extension.jupyter_testlib import until
from tests.gateway.gateway_testlib import command_job

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

USER = "carol"
SCRIPT = (
    "import json, os, pathlib; p = json.loads(os.environ['GPULAB_PARAMETERS']); "
    "print('sweep run', os.environ['GPULAB_RUN_INDEX']); "
    "pathlib.Path(os.environ['GPULAB_OUTPUT_DIR'], 'result.json')"
    ".write_text(json.dumps({'loss': p['target']}))"
)


@pytest.fixture(scope="module")
def finished_sweep(platform: Any) -> dict[str, Any]:
    if platform.s3 is None:
        pytest.fail("these tests need the Ceph S3 gateway (jobs): install Ceph (`./dev.sh test`)")
    spec = command_job(
        "page-sweep", SCRIPT, sweep=[{"target": 0.5}, {"target": 0.1}, {"target": 0.9}]
    )
    with gateway(platform, USER) as gw:
        r = gw.post("/jobs", json=spec)
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        latest: dict[str, Any] = {}

        def done() -> bool:
            latest.update(gw.get(f"/jobs/{job_id}").raise_for_status().json())
            return latest["state"] in ("Succeeded", "Failed", "Cancelled")

        until(done, f"sweep {job_id} finished", JOB_DEADLINE, every=1.0)
    assert latest["state"] == "Succeeded", latest
    return latest


def test_the_jobs_page_sorts_a_sweeps_results_by_a_clicked_column(
    platform, context, login, shot, finished_sweep
) -> None:
    page = login(context, USER)
    page.goto(platform.service_url("jobs-gateway") + "jobs/")
    page.locator(f'#jobs-table tbody tr[data-id="{finished_sweep["id"]}"]').click()
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text("0.5")  # index order first

    page.locator('#runs-table th[data-key="loss"]').click()
    expect(rows.first).to_have_attribute("data-run", "1")  # 0.1: the smallest loss
    expect(rows.last).to_have_attribute("data-run", "2")
    page.locator('#runs-table th[data-key="loss"]').click()
    expect(rows.first).to_have_attribute("data-run", "2")  # again: the largest first
    shot(page, "sweep-results-table")

    page.locator('#runs-table tbody tr[data-run="1"]').click()
    expect(page.locator("#log-view")).to_contain_text("sweep run 1")
    expect(page.locator("#outputs-list a", has_text="run-1/outputs/result.json")).to_be_visible()
