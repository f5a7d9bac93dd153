"""``/metrics`` of the jobs gateway and the culler on the whole product (the shared session
``platform``): after a submit and a cull their counters have moved; a token without
``read:metrics`` is refused; the catalogue's metrics show on JupyterHub's own ``/hub/metrics``.

The culler runs every 2 s and tests/e2e/policy.yaml gives users in no group a 20 s idle
timeout with a 10 s warning, so the cull comes within a minute of the server being ready.
"""

from __future__ import annotations

import contextlib
import time
import urllib.error
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = [pytest.mark.e2e]

CPU_IMAGE = "harbor.local/shared/scipy:2024.10"
GATEWAY = "/services/jobs-gateway/metrics"
CULLER = "/services/culler/metrics"


def wait_for(what: str, predicate: Callable[[], Any], limit: float = 180.0) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.5)
    raise AssertionError(f"never saw: {what}")


def scrape(platform: Any, path: str, token: str) -> httpx.Response:
    return httpx.get(
        platform.hub_url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def total(platform: Any, path: str, token: str, sample: str, **labels: str) -> float:
    """The sum of ``sample``'s series matching ``labels`` in one scrape."""
    r = scrape(platform, path, token)
    assert r.status_code == 200, r.text
    return sum(
        s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
        if s.name == sample and labels.items() <= s.labels.items()
    )


@dataclass
class Scrapes:
    platform: Any
    metrics_token: str  # an admin's token with read:metrics only
    user_token: str  # a researcher's token (no read:metrics)
    before: dict[str, float]

    def total(self, path: str, sample: str, **labels: str) -> float:
        return total(self.platform, path, self.metrics_token, sample, **labels)


def add_user(platform: Any, prefix: str, group: str | None = None) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    platform.api("POST", f"/hub/api/users/{name}")
    if group:
        with contextlib.suppress(urllib.error.HTTPError):
            platform.api("POST", f"/hub/api/groups/{group}")
        platform.api("POST", f"/hub/api/groups/{group}/users", {"users": [name]})
    return name


@pytest.fixture(scope="module")
def scrapes(platform: Any) -> Iterator[Scrapes]:
    """One submit and one cull, with the counters read before them."""
    # The demo's hub admin holds read:metrics (JupyterHub's admin role), as Prometheus'
    # service would in production; this token carries nothing else.
    reply = platform.api(
        "POST", "/hub/api/users/admin/tokens", {"scopes": ["read:metrics"], "note": "prometheus"}
    )
    token = reply["token"]
    submitter = add_user(platform, "msub", "vision")
    idle = add_user(platform, "mcull")  # in no group: the default group's short idle rules
    user_token = platform.user_token(submitter)
    state = Scrapes(platform, token, user_token, {})
    state.before = {
        "submits": state.total(GATEWAY, "gpulab_jobs_submits_total"),
        "culls": state.total(CULLER, "gpulab_culler_culls_total", cause="idle"),
        "warnings": state.total(CULLER, "gpulab_culler_warnings_total", cause="idle"),
    }
    r = httpx.post(
        f"{platform.hub_url}/services/jobs-gateway/api/v1/jobs",
        json={"name": "noop", "image": CPU_IMAGE, "command": ["true"]},
        headers={"Authorization": f"token {user_token}"},
        timeout=60,
    )
    assert r.status_code in (201, 503), r.text  # 503: no S3 on this machine (no Ceph)
    platform.api("POST", f"/hub/api/users/{idle}/server", {"profile": "cpu", "image": CPU_IMAGE})
    try:
        wait_for(
            "the idle server culled",
            lambda: "" not in platform.api("GET", f"/hub/api/users/{idle}")["servers"],
            limit=240,
        )
        yield state
    finally:
        with contextlib.suppress(urllib.error.HTTPError):
            platform.api("DELETE", f"/hub/api/users/{idle}/server")


def test_the_gateway_counts_the_submit(scrapes: Scrapes) -> None:
    after = scrapes.total(GATEWAY, "gpulab_jobs_submits_total")
    assert after >= scrapes.before["submits"] + 1
    assert scrapes.total(GATEWAY, "gpulab_jobs_submit_duration_seconds_count") >= 1


def test_the_gateway_counts_jobs_by_state_and_group(scrapes: Scrapes) -> None:
    if scrapes.platform.s3 is None:
        pytest.skip("the job was not made: no S3 (Ceph) on this machine")
    assert scrapes.total(GATEWAY, "gpulab_jobs", group="vision") >= 1


def test_the_culler_counts_the_warning_and_the_cull(scrapes: Scrapes) -> None:
    wait_for(
        "the cull counted",
        lambda: (
            scrapes.total(CULLER, "gpulab_culler_culls_total", cause="idle")
            >= scrapes.before["culls"] + 1
        ),
        limit=30,
    )
    warnings = scrapes.total(CULLER, "gpulab_culler_warnings_total", cause="idle")
    assert warnings >= scrapes.before["warnings"] + 1
    assert scrapes.total(CULLER, "gpulab_culler_cycle_duration_seconds_count") >= 1


@pytest.mark.parametrize("path", [GATEWAY, CULLER])
def test_a_token_without_read_metrics_is_refused(scrapes: Scrapes, path: str) -> None:
    assert scrape(scrapes.platform, path, scrapes.user_token).status_code == 403
    assert httpx.get(scrapes.platform.hub_url + path, timeout=30).status_code == 401


def test_the_hub_exposes_the_catalogue_on_its_own_metrics(scrapes: Scrapes) -> None:
    assert scrapes.total("/hub/metrics", "gpulab_catalogue_refreshes_total") >= 1
