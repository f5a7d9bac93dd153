"""The admin dashboard in headless Chromium on the real platform (the session ``platform``):
log in through the hub's login form, open ``/services/culler/dashboard/`` (OAuth through the
hub), see the GPU-hours chart and the tables for usage seeded into the service's usage DB; a
non-admin gets 403. Screenshots go to test-artifacts/."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from gpulab.hub.usage.models import make_engine
from gpulab.hub.usage.recorder import PodInterval, upsert
from sqlalchemy.orm import Session

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Seeded rows live in their own namespace: the service's recorder (namespace "default")
# neither sees nor closes them.
NS = "seeded-usage"
PASSWORD = "gpulab"
SNAPSHOT_DEADLINE = 120.0  # seconds: a minute for the 30-day figures, and slack  # the local authenticator's default shared password


def seed(db_url: str) -> None:
    now = datetime.now(UTC)
    engine = make_engine(db_url)
    rows = []
    for day in range(1, 8):  # a week of finished GPU work for two groups
        start = now - timedelta(days=day, hours=3)
        for user, group, gpus in (("alice", "vision", 2), ("bob", "nlp", 1)):
            rows.append(
                PodInterval(
                    f"seed-{user}-{day}",
                    NS,
                    f"jupyter-{user}-{day}",
                    user,
                    group,
                    "server",
                    None,
                    gpus,
                    "a100",
                    2.0,
                    start,
                    start + timedelta(hours=2),
                )
            )
    # Running now: a named 2-GPU server and a 1-GPU job.
    rows.append(
        PodInterval(
            "seed-run-srv",
            NS,
            "jupyter-alice--big",
            "alice",
            "vision",
            "server",
            None,
            2,
            "a100",
            2.0,
            now - timedelta(hours=1),
            None,
            server_name="big",
        )
    )
    rows.append(
        PodInterval(
            "seed-run-job",
            NS,
            "job-j-seed",
            "bob",
            "nlp",
            "job",
            "j-seed",
            1,
            "a100",
            1.0,
            now - timedelta(minutes=30),
            None,
        )
    )
    with Session(engine) as s, s.begin():
        for iv in rows:
            upsert(s, iv, now)
    engine.dispose()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def login(browser, hub_url: str, name: str):
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    page = context.new_page()
    page.goto(f"{hub_url}/hub/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login_submit, input[type=submit], button[type=submit]")
    page.wait_for_url("**/hub/**", timeout=30_000)
    return context, page


def test_admin_sees_chart_and_tables(platform, browser, artifacts_dir: Path):
    seed(f"sqlite:///{platform.state_dir / 'usage.sqlite'}")
    context, page = login(browser, platform.hub_url, "admin")
    try:
        resp = page.goto(f"{platform.hub_url}/services/culler/dashboard/")
        assert resp is not None and resp.status == 200
        page.wait_for_selector("#history svg.chart")
        # The page shows a snapshot (rebuilt every few seconds, the 30-day figures every
        # minute): reload until it holds the rows seeded above.
        deadline = time.monotonic() + SNAPSHOT_DEADLINE
        while page.locator('#running button.cancel[data-job="j-seed"]').count() == 0 or (
            page.locator("#history svg.chart rect.bar").count() < 14
        ):
            assert time.monotonic() < deadline, "the seeded usage never reached the dashboard"
            page.wait_for_timeout(1000)
            page.reload()
        page.screenshot(path=str(artifacts_dir / "dashboard-admin.png"), full_page=True)
        # The chart: one bar per group per seeded day (a week, two groups).
        bars = page.locator("#history svg.chart rect.bar")
        assert bars.count() >= 14
        groups = {bars.nth(i).get_attribute("data-group") for i in range(bars.count())}
        assert {"vision", "nlp"} <= groups
        # In use / capacity by GPU type: the seeded 3 running GPUs of type a100.
        cap = page.locator("#capacity table").first.inner_text()
        assert "a100" in cap and "3" in cap
        by_group = page.locator("#by-group tbody").inner_text()
        assert "vision" in by_group and "nlp" in by_group
        # Running servers and jobs, with the named server's own stop button.
        stop = page.locator('#running button.stop[data-user="alice"]')
        assert stop.get_attribute("data-server") == "big"
        assert page.locator('#running button.cancel[data-job="j-seed"]').count() == 1
        # Top idle holders (none idle here: the table still renders), quota per group.
        assert page.locator("#idle table").count() == 1
        quota = page.locator("#quota tbody").inner_text()
        assert "vision" in quota and "nlp" in quota
        usage = page.locator("#usage tbody").inner_text()
        assert "alice" in usage and "bob" in usage
    finally:
        context.close()


def test_non_admin_gets_403(platform, browser, artifacts_dir: Path):
    context, page = login(browser, platform.hub_url, "bob")
    try:
        resp = page.goto(f"{platform.hub_url}/services/culler/dashboard/")
        assert resp is not None and resp.status == 403
        page.screenshot(path=str(artifacts_dir / "dashboard-non-admin-403.png"))
        assert "admins only" in page.content()
        api = page.request.get(f"{platform.hub_url}/services/culler/api/v1/overview")
        assert api.status == 403
    finally:
        context.close()
