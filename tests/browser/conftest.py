"""Headless Chromium on the platform ``gpulab up`` runs: ``platform`` here is
``origin_platform``, every user's server and every service on its own subdomain of
``localhost`` (the rest of the suite shares a single-origin one, tests/conftest.py).

* ``browser``: one Playwright browser for this folder's tests, Debian's ``/usr/bin/chromium``
  (never a downloaded one). Package-scoped rather than session-scoped on purpose: a sync
  Playwright left running for the session makes every later ``sync_playwright()`` in the same
  run (tests/dashboard starts its own) fail with "Sync API inside the asyncio loop";
* ``context``: a fresh browser context (cookies, storage) per test;
* ``shot(page, name)``: a screenshot to ``test-artifacts/journey/NN-name.png`` (NN counts across
  the session, so the files sort in the order the journeys took them); when a test fails, every
  page still open is shot as ``NN-<test>-FAILED.png``;
* ``login(context, name)``: the hub's login form with the local authenticator's password;
* ``servers.own(name)``: the user's default server is stopped (and waited for) now if another
  test left one, and at teardown, pass or fail, so that no test leaves a server or its GPUs
  behind;
* ``hub_server(name)``: the hub API's model of a user's default server (None when there is none);
* ``origin_platform`` (``platform`` in this folder): the shared fixture's settings, plus every
  user's server and every service on its own origin (``alice.gpulab.localhost``,
  ``culler--service.gpulab.localhost``), as ``gpulab up`` runs by default. Chromium resolves
  ``*.localhost`` itself; Python's resolver here does not, so Python talks to its servers
  and services through :func:`through_proxy`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "gpulab"  # the local shared-password authenticator's default (hub/demo/users.yaml)
VIEWPORT = {"width": 1400, "height": 1000}
STOP_DEADLINE = 90.0  # seconds for a server to be gone from the hub after DELETE

Shot = Callable[[Any, str], Path]
Login = Callable[[Any, str], Any]


@pytest.fixture(scope="session")
def journey_dir(artifacts_dir: Path) -> Path:
    """test-artifacts/journey/, emptied of the last run's screenshots."""
    folder = artifacts_dir / "journey"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    return folder


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install Debian's chromium (`./dev.sh test` does); "
            "the browser tests never download a browser"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


_counter = itertools.count(1)


@pytest.fixture
def shot(journey_dir: Path) -> Shot:
    def take(page: Any, name: str) -> Path:
        path = journey_dir / f"{next(_counter):02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture
def context(browser: Any, request: pytest.FixtureRequest, journey_dir: Path) -> Iterator[Any]:
    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    ctx.set_default_timeout(30_000)
    try:
        yield ctx
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            for page in ctx.pages:
                with contextlib.suppress(Exception):
                    path = journey_dir / f"{next(_counter):02d}-{request.node.name}-FAILED.png"
                    page.screenshot(path=str(path), full_page=True)
        ctx.close()


def log_in(ctx: Any, hub_url: str, name: str, next_path: str = "") -> Any:
    """Log ``name`` in through the hub's form at ``hub_url``; returns the page, past login."""
    page = ctx.new_page()
    page.goto(f"{hub_url}/hub/login" + (f"?next={next_path}" if next_path else ""))
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/hub/login" not in url)
    return page


@pytest.fixture
def login(platform: Any) -> Login:
    """Log ``name`` in through the hub's form; returns the page (on the hub after login)."""
    return lambda ctx, name: log_in(ctx, platform.hub_url, name)


@pytest.fixture(scope="session")
def origin_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The platform with per-user and per-service subdomains of ``localhost``."""
    from gpulab.platform import LocalPlatform, PlatformConfig, free_port
    from tests.conftest import E2E_POLICY
    from tests.extension.conftest import extension_hub_config

    # A copy of the policy, so that a test may change it for a while (the hub reloads it):
    # tests/browser/test_image_picker.py swaps in a 5,000-image catalogue and restores it.
    policy_path = tmp_path_factory.mktemp("origin-policy") / "policy.yaml"
    policy_path.write_bytes(E2E_POLICY.read_bytes())
    config = PlatformConfig(
        state_dir=tmp_path_factory.mktemp("origin-platform"),
        policy_path=policy_path,
        port=free_port(),
        nodes=os.environ.get("GPULAB_TEST_NODES", "2x4"),
        extra_hub_config=extension_hub_config(),
        cull_interval=2.0,
        subdomains=True,
        # Servers one site apart, as in production (alice.hub.example.org and
        # bob.hub.example.org): SameSite cookies do not keep them apart, origins must.
        domain="gpulab.localhost",
    )
    platform = LocalPlatform(config)
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="session")
def platform(origin_platform: Any) -> Any:
    """The browser journeys run on what ``gpulab up`` starts by default: subdomains."""
    return origin_platform


def through_proxy(platform: Any, url: str) -> tuple[str, dict[str, str]]:
    """``url`` (on a ``*.localhost`` origin of ``platform``) as a loopback URL plus the
    ``Host`` header the proxy routes by, for Python clients that cannot resolve the name."""
    parts = urlsplit(url)
    loopback = parts._replace(netloc=urlsplit(platform.bind_url).netloc)
    return urlunsplit(loopback), {"Host": parts.netloc}


def server_model(platform: Any, name: str) -> dict[str, Any] | None:
    return platform.api("GET", f"/hub/api/users/{name}")["servers"].get("")


def stop_server(platform: Any, name: str) -> None:
    """Stop ``name``'s default server through the hub API and wait until the hub has no record
    of it (so its pod and GPUs are released)."""
    if server_model(platform, name) is None:
        return
    with contextlib.suppress(urllib.error.HTTPError):
        platform.api("DELETE", f"/hub/api/users/{name}/server")
    deadline = time.monotonic() + STOP_DEADLINE
    while server_model(platform, name) is not None:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name}'s server still listed {STOP_DEADLINE:.0f}s after DELETE")
        time.sleep(0.5)


class ServerJanitor:
    """``own(name)``: stop a server ``name`` may have left from another test now, so the journey
    starts from none, and stop the one the journey starts at teardown, pass or fail."""

    def __init__(self, platform: Any) -> None:
        self.platform = platform
        self.names: list[str] = []

    def own(self, name: str) -> None:
        stop_server(self.platform, name)
        self.names.append(name)

    def stop_all(self) -> None:
        for name in self.names:
            stop_server(self.platform, name)


@pytest.fixture
def servers(platform: Any) -> Iterator[ServerJanitor]:
    janitor = ServerJanitor(platform)
    yield janitor
    janitor.stop_all()


@pytest.fixture
def hub_server(platform: Any) -> Callable[[str], dict[str, Any] | None]:
    """``hub_server(name)``: the hub's model of ``name``'s default server, or None."""
    return lambda name: server_model(platform, name)
