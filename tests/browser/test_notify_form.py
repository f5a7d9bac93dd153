"""The jobs page's Notifications panel in headless Chromium (the gateway's page, no server):
a researcher sets a webhook and the events she wants, sees the signing secret once, and a
mistake is shown naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

USER = "carol"


def _jobs_page(platform: Any, context: Any, login: Any) -> Any:
    page = login(context, USER)
    page.goto(platform.service_url("jobs-gateway") + "jobs/")
    expect(page.locator("#notify-panel")).to_be_visible()
    return page


def test_a_webhook_set_on_the_page_is_kept_and_its_secret_shown_once(
    platform: Any, context: Any, login: Any, shot: Any
) -> None:
    page = _jobs_page(platform, context, login)
    page.fill("#n-webhook", "https://hooks.example.org/carol-page")
    for event in ("succeeded", "preempted", "gpu_idle", "cancelled"):
        page.locator(f'#n-events input[value="{event}"]').set_checked(False)
    page.locator('#n-events input[value="failed"]').set_checked(True)
    page.click("#notify-save")
    expect(page.locator("#notify-result")).to_have_text("Saved.")
    expect(page.locator("#notify-secret")).to_contain_text("shown once")
    shot(page, "notify-form-saved")
    page.reload()
    expect(page.locator("#n-webhook")).to_have_value("https://hooks.example.org/carol-page")
    expect(page.locator('#n-events input[value="failed"]')).to_be_checked()
    expect(page.locator('#n-events input[value="succeeded"]')).not_to_be_checked()
    expect(page.locator("#notify-secret")).to_be_hidden()


def test_a_webhook_inside_the_cluster_is_refused_on_the_page(
    platform: Any, context: Any, login: Any
) -> None:
    page = _jobs_page(platform, context, login)
    page.fill("#n-webhook", "https://kubernetes.default.svc/api")
    page.click("#notify-save")
    expect(page.locator("#notify-result")).to_contain_text("webhook_url")
