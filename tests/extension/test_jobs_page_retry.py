"""The jobs page in Chromium: one Idempotency-Key per click of Submit, reused on its retries;
its list of jobs a page at a time.

The extension runs in a real ``jupyter server`` with no gateway configured, so every submit
is answered 503 by the server itself: the page retries a bounded number of times with the
same key, then shows the error; the next click makes a new key. The list's answers are
routed in the browser to a stand-in for the gateway's pages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.extension.jupyter_testlib import JupyterServer

pytestmark = [pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
ATTEMPTS = 4  # jobs.js: the first try and one per RETRY_DELAYS_MS


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("jpage") / "home"
    (root / "work").mkdir(parents=True)
    (root / "work" / "train.ipynb").write_text(json.dumps({"cells": [], "nbformat": 4}))
    env = {"HOME": str(root), "GPULAB_GPU_PROBE": "none"}
    for key in ("GPULAB_GATEWAY_URL", "GPULAB_CULLER_URL", "JUPYTERHUB_API_TOKEN"):
        env[key] = ""
    s = JupyterServer(root, env).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def page(server: JupyterServer):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}; the browser tests never download a browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless=new"])
        try:
            pg = browser.new_page()
            pg.goto(f"{server.url}/gpulab/jobs?token={server.token}")
            yield pg
        finally:
            browser.close()


def test_each_submit_click_has_one_key_kept_across_its_retries(page: Any) -> None:
    keys: list[str | None] = []

    def seen(request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/gpulab/api/jobs"):
            keys.append(request.headers.get("idempotency-key"))

    page.on("request", seen)
    page.fill("#f-name", "train")
    page.fill("#f-path", "work/train.ipynb")
    for click in (1, 2):
        page.click("#submit-button")
        # The button is disabled while the page submits and retries (about 3.5 s).
        page.wait_for_function("!document.getElementById('submit-button').disabled", timeout=30_000)
        assert len(keys) == ATTEMPTS * click, keys
    first, second = keys[:ATTEMPTS], keys[ATTEMPTS:]
    assert first[0] and len(set(first)) == 1, keys
    assert second[0] and len(set(second)) == 1 and second[0] != first[0], keys
    assert "not configured" in page.inner_text("#submit-result")


def test_the_list_shows_older_jobs_a_page_at_a_time(page: Any) -> None:
    jobs = [
        {"id": f"job-{i:03d}", "name": f"train {i}", "state": "Succeeded", "gpus": 0}
        for i in range(120, 0, -1)
    ]

    def pages(route: Any) -> None:
        query = {k: v[-1] for k, v in parse_qs(urlparse(route.request.url).query).items()}
        start = int(query.get("continue", "0"))
        end = start + int(query["limit"])
        body = {"items": jobs[start:end], "continue": str(end) if end < len(jobs) else None}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    rows = "#jobs-table tbody tr"
    page.route("**/gpulab/api/jobs?*", pages)
    try:
        page.reload()
        page.wait_for_function(f"document.querySelectorAll('{rows}').length === 50")
        for shown in (100, 120):
            page.click("#older-button")
            page.wait_for_function(f"document.querySelectorAll('{rows}').length === {shown}")
        assert page.is_hidden("#older-button")
        assert page.locator(rows).first.get_attribute("data-id") == "job-120"
    finally:
        page.unroute("**/gpulab/api/jobs?*", pages)
