"""The jobs client's list: at most ``limit`` jobs, following the gateway's pages to get them.

A tiny HTTP server stands in for the gateway: ten jobs, newest first, in pages of at most
three whatever ``limit`` asks (a gateway may answer fewer), with a ``continue`` token.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from extensions.client import ClientConfig, GatewayClient

JOBS = [{"id": f"job-{i:02d}"} for i in range(10, 0, -1)]
PAGE_CAP = 3


@pytest.fixture
def listing() -> Iterator[tuple[list[dict[str, str]], GatewayClient]]:
    asked: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = {k: v[-1] for k, v in parse_qs(urlparse(self.path).query).items()}
            asked.append(query)
            start = int(query.get("continue", "0"))
            end = start + min(int(query.get("limit", "50")), PAGE_CAP)
            page = {
                "items": JOBS[start:end],
                "continue": str(end) if end < len(JOBS) else None,
            }
            body = json.dumps(page).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = ClientConfig(gateway_url=f"http://127.0.0.1:{server.server_port}/", token="t0k")
    client = GatewayClient(config, timeout=5.0)
    try:
        yield asked, client
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def test_a_limit_gives_at_most_that_many_jobs_the_newest(listing) -> None:
    asked, client = listing
    assert [j["id"] for j in client.list(limit=2)] == ["job-10", "job-09"]
    assert asked == [{"limit": "2"}]


def test_a_limit_beyond_one_page_follows_the_pages_and_asks_only_for_what_is_left(
    listing,
) -> None:
    asked, client = listing
    assert len(list(client.list(limit=7, state="Running"))) == 7
    assert [q["limit"] for q in asked] == ["7", "4", "1"]
    assert all(q["state"] == "Running" for q in asked)


def test_no_limit_gives_every_job(listing) -> None:
    _, client = listing
    assert [j["id"] for j in client.list()] == [j["id"] for j in JOBS]
