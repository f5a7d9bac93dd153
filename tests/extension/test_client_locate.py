"""A command line on a laptop finds the jobs gateway from the hub's address alone.

A tiny HTTP server stands in for the hub's ``/hub/api/services/jobs-gateway``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from extensions.client import ClientConfig, locate_gateway


@pytest.fixture
def hub() -> Iterator[tuple[dict, str]]:
    """(what the hub answers: status and body, the hub's URL); records the token it saw."""
    answer: dict = {"status": 200, "body": {}, "seen": []}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            answer["seen"].append((self.path, self.headers.get("Authorization")))
            body = json.dumps(answer["body"]).encode()
            self.send_response(answer["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield answer, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_hub_with_service_origins_names_the_gateways(hub) -> None:
    answer, url = hub
    public = "https://jobs-gateway--service.hub.example.org/services/jobs-gateway/"
    answer["body"] = {"name": "jobs-gateway", "info": {"public_url": public}}

    config = ClientConfig.discover(hub_url=url + "/", token="t0k")

    assert config.gateway_url == public
    assert answer["seen"] == [("/hub/api/services/jobs-gateway", "token t0k")]


def test_without_a_published_origin_the_gateway_is_under_the_hub(hub) -> None:
    answer, url = hub
    answer["body"] = {"name": "jobs-gateway", "info": {}}
    assert locate_gateway(url, "t0k") == f"{url}/services/jobs-gateway/"


def test_a_hub_that_refuses_the_lookup_leaves_the_gateway_under_the_hub(hub) -> None:
    answer, url = hub
    answer["status"], answer["body"] = 403, {"status": 403, "message": "no"}
    assert locate_gateway(url, "t0k") == f"{url}/services/jobs-gateway/"


def test_a_published_origin_that_is_not_http_is_ignored(hub) -> None:
    answer, url = hub
    answer["body"] = {"info": {"public_url": "javascript:alert(1)"}}
    assert locate_gateway(url, "t0k") == f"{url}/services/jobs-gateway/"
