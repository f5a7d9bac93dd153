"""``/metrics`` of gpulab's services (gpulab.hub.metrics_endpoint): read:metrics as for
JupyterHub's ``/hub/metrics``, the exposition format, the service's own gauges. The hub is a
stand-in HubAuth answering for three tokens (the real hub is in tests/metrics/
test_metrics_platform.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from gpulab.hub.metrics_endpoint import metrics_route
from jupyterhub.services.auth import HubAuth
from prometheus_client import CollectorRegistry, Gauge
from tornado import web

from gpulab.platform import free_port

MODELS = {
    "scraper": {"kind": "service", "name": "prometheus", "scopes": ["read:metrics"]},
    "researcher": {"kind": "user", "name": "alice", "scopes": ["access:services", "self"]},
}


class StandInHub(HubAuth):
    """The hub's answer to ``GET /hub/api/user`` for a few tokens (no network)."""

    async def _check_hub_authorization(self, url, api_token, cache_key=None, use_cache=True):
        return MODELS.get(api_token)


async def serve(authenticate: bool) -> tuple[Any, str]:
    own = CollectorRegistry()
    Gauge("gpulab_test_own_gauge", "a service's own gauge", registry=own).set(7)
    app = web.Application([metrics_route("/services/x/", StandInHub(), own, authenticate)])
    port = free_port()
    server = app.listen(port, address="127.0.0.1")
    return server, f"http://127.0.0.1:{port}/services/x/metrics"


@pytest.fixture(scope="module")
async def url() -> AsyncIterator[str]:
    server, address = await serve(authenticate=True)
    yield address
    server.stop()


async def get(url: str, token: str | None = None, scheme: str = "Bearer") -> httpx.Response:
    headers = {"Authorization": f"{scheme} {token}"} if token else {}
    async with httpx.AsyncClient() as client:
        return await client.get(url, headers=headers, timeout=10)


async def test_a_token_with_read_metrics_gets_the_exposition_format(url: str) -> None:
    r = await get(url, "scraper")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=")
    assert "# TYPE python_gc_objects_collected_total counter" in r.text  # the default registry
    assert "gpulab_test_own_gauge 7.0" in r.text  # the service's own


async def test_the_hub_token_scheme_is_accepted_too(url: str) -> None:
    assert (await get(url, "scraper", scheme="token")).status_code == 200


async def test_a_token_without_read_metrics_is_forbidden(url: str) -> None:
    r = await get(url, "researcher")
    assert r.status_code == 403
    assert "read:metrics" in r.text


async def test_no_token_or_an_unknown_one_is_unauthorized(url: str) -> None:
    assert (await get(url)).status_code == 401
    assert (await get(url, "forged")).status_code == 401


async def test_a_token_in_the_url_is_not_accepted(url: str) -> None:
    assert (await get(url + "?token=scraper")).status_code == 401


async def test_without_authentication_anyone_reads_the_metrics() -> None:
    server, address = await serve(authenticate=False)
    try:
        assert (await get(address)).status_code == 200
    finally:
        server.stop()
