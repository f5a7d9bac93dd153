"""While a service or a server is down, API callers get JSON from the proxy, pages get HTML.

On the platform, the proxy's route to the jobs gateway is pointed at a port where nothing
listens (the proxy then sees the gateway down, as between its crash and its restart), and put
back afterwards.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gpulab.hub.proxy_errors import RETRY_AFTER, is_api_path

GATEWAY_ROUTE = "/services/jobs-gateway"


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/services/jobs-gateway/api/v1/jobs", True),
        ("/services/jobs-gateway/api/v1/jobs/x-1/logs?follow=1", True),
        ("/user/alice/api/kernels", True),
        ("/user/alice/gpulab/api/jobs", True),
        ("/user/alice/second/api/contents", True),
        ("/user/alice/lab", False),
        ("/user/alice/tree/api/notes.ipynb", False),
        ("/services/culler/dashboard/", False),
        ("/hub/home", False),
    ],
)
def test_api_paths_are_told_from_pages(path: str, api: bool) -> None:
    assert is_api_path(path) is api
    assert is_api_path("/prefix" + path, "/prefix/") is api


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proxy_api(platform) -> httpx.Client:
    """The proxy's REST API, with the token the platform gave its hub (read from the hub's
    process: other platforms may run on the machine)."""
    config_path = platform.state_dir / "jupyterhub_config.py"
    api_url = re.search(r'ConfigurableHTTPProxy\.api_url = "([^"]+)"', config_path.read_text())
    assert api_url, "no proxy API URL in the hub's configuration"
    for entry in Path("/proc").iterdir():
        try:
            if str(config_path).encode() not in (entry / "cmdline").read_bytes():
                continue
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in env:
            if item.startswith(b"CONFIGPROXY_AUTH_TOKEN="):
                token = item.split(b"=", 1)[1].decode()
                return httpx.Client(
                    base_url=api_url.group(1) + "/api/routes",
                    headers={"Authorization": f"token {token}"},
                    timeout=30,
                )
    raise AssertionError("the platform's hub process was not found")


@pytest.fixture
def gateway_down(gw) -> Iterator[None]:
    with _proxy_api(gw.platform) as proxy:
        route = proxy.get("").json()[GATEWAY_ROUTE]
        down = {**route, "target": f"http://127.0.0.1:{_dead_port()}"}
        proxy.post(GATEWAY_ROUTE, json=down).raise_for_status()
        try:
            yield
        finally:
            proxy.post(GATEWAY_ROUTE, json=route).raise_for_status()


@pytest.mark.e2e
@pytest.mark.ceph
def test_api_callers_get_json_while_the_gateway_is_down(gw, gateway_down) -> None:
    with gw.client("alice") as c:
        r = c.get("/jobs")
    assert r.status_code == 503
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["status"] == 503 and body["retry_after"] == RETRY_AFTER
    assert "jobs-gateway service is not answering" in body["message"]


@pytest.mark.e2e
@pytest.mark.ceph
def test_pages_still_get_html_while_the_gateway_is_down(gw, gateway_down) -> None:
    r = httpx.get(gw.platform.hub_url + GATEWAY_ROUTE + "/openapi.json", timeout=30)
    assert r.status_code == 503
    assert r.headers["Content-Type"].startswith("text/html")


@pytest.mark.e2e
def test_the_hub_error_page_for_an_api_path_says_when_to_retry(platform) -> None:
    """The hub's own answer to the proxy carries Retry-After (the proxy passes on only its
    Content-Type and body, so API clients behind it read ``retry_after``)."""
    config = (platform.state_dir / "jupyterhub_config.py").read_text()
    hub = re.search(r'hub_bind_url = "([^"]+)"', config)
    assert hub, "no hub URL in the hub's configuration"
    r = httpx.get(
        hub.group(1) + "/hub/error/503",
        params={"url": "/services/jobs-gateway/api/v1/jobs"},
        timeout=30,
    )
    assert r.status_code == 503 and r.headers["Retry-After"] == str(RETRY_AFTER)
    assert r.json()["status"] == 503
