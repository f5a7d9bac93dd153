"""The gateway's jobs page in headless Chromium: carol's saved definitions, paused and resumed,
run now (the run appears in her job list) and deleted, with no server running."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.test_jobs_page_serverless import gateway
from tests.gateway.gateway_testlib import command_job

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

USER = "carol"


def test_definitions_are_paused_resumed_run_and_deleted_from_the_jobs_page(
    platform: Any, context, login, shot
) -> None:
    if platform.s3 is None:
        pytest.fail("these tests need the Ceph S3 gateway (jobs): install Ceph (`./dev.sh test`)")
    name = f"page-{uuid.uuid4().hex[:6]}"
    with gateway(platform, USER) as gw:
        made = gw.post(
            "/definitions",
            json={"name": name, "spec": command_job(name, "print('from the page')"),
                  "schedule": "0 2 * * *", "timezone": "Asia/Shanghai"},
        )  # fmt: skip
        assert made.status_code == 201, made.text

    page = login(context, USER)
    page.goto(platform.service_url("jobs-gateway") + "jobs/")
    row = page.locator(f'#definitions-table tbody tr[data-name="{name}"]')
    expect(row).to_contain_text("0 2 * * * (Asia/Shanghai)")
    row.locator("button.definition-pause").click()
    expect(row.locator("button.definition-resume")).to_be_visible()
    row.locator("button.definition-resume").click()
    expect(row.locator("button.definition-pause")).to_be_visible()
    shot(page, "definitions-panel")

    row.locator("button.definition-run-now").click()
    expect(page.locator("#detail-title")).to_contain_text(name)
    expect(page.locator("#jobs-table tbody tr.selected")).to_contain_text(name)

    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button.definition-delete").click()
    expect(row).to_have_count(0)
