"""The jobs client retries a submit on a transient failure with the same Idempotency-Key.

A tiny HTTP server stands in for the gateway: it answers a scripted status per request (or
drops the connection) and records every request's headers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from extensions.client import ClientConfig, GatewayClient, GatewayError

DROP = 0  # a scripted "status" that closes the connection without an answer
JOB = {"id": "train-abcdef", "name": "train", "status": {"state": "Pending"}}


@dataclass
class FakeGateway:
    script: list[int] = field(default_factory=list)  # statuses for the next requests, then 201
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def gateway() -> Iterator[tuple[FakeGateway, GatewayClient]]:
    fake = FakeGateway()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            fake.seen.append((self.command, self.path, dict(self.headers)))
            status = fake.script.pop(0) if fake.script else 201
            if status == DROP:
                self.close_connection = True
                self.connection.shutdown(2)
                return
            body = json.dumps(JOB if status < 400 else {"error": "gateway restarting"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = ClientConfig(gateway_url=f"http://127.0.0.1:{server.server_port}/", token="t0k")
    client = GatewayClient(config, timeout=5.0, retry_delays=(0.01, 0.01, 0.01))
    try:
        yield fake, client
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def _keys(fake: FakeGateway) -> list[str | None]:
    return [headers.get("Idempotency-Key") for method, _, headers in fake.seen if method == "POST"]


def test_submit_sends_a_fresh_key_and_reuses_it_after_a_503(gateway):
    fake, client = gateway
    fake.script = [503]
    job = client.submit({"name": "train", "command": ["true"]})
    assert job["id"] == JOB["id"]
    keys = _keys(fake)
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]

    client.submit({"name": "train", "command": ["true"]})
    assert _keys(fake)[2] != keys[0], "each submit gets its own key"


def test_submit_reuses_the_key_after_a_dropped_connection(gateway):
    fake, client = gateway
    fake.script = [DROP, 502, 504]
    client.submit("name: train\ncommand: [true]\n")
    keys = _keys(fake)
    assert len(keys) == 4 and len(set(keys)) == 1 and keys[0]


def test_a_given_key_wins_and_is_kept_across_retries(gateway):
    fake, client = gateway
    fake.script = [503]
    client.submit({"name": "train"}, idempotency_key="my-key-1")
    assert _keys(fake) == ["my-key-1", "my-key-1"]


def test_submit_gives_up_after_its_bounded_retries(gateway):
    fake, client = gateway
    fake.script = [503] * 10
    with pytest.raises(GatewayError) as err:
        client.submit({"name": "train"})
    assert err.value.status == 503
    assert len(_keys(fake)) == 4


def test_reads_are_retried_but_a_client_error_is_not(gateway):
    fake, client = gateway
    fake.script = [503]
    assert client.get("train-abcdef")["id"] == JOB["id"]
    assert [m for m, _, _ in fake.seen] == ["GET", "GET"]

    fake.seen.clear()
    fake.script = [422]
    with pytest.raises(GatewayError):
        client.submit({"name": "train"})
    assert len(fake.seen) == 1


def test_cancel_is_not_repeated(gateway):
    fake, client = gateway
    fake.script = [503]
    with pytest.raises(GatewayError):
        client.cancel("train-abcdef")
    assert len(fake.seen) == 1


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Retry-After": "3"}, {}, 3.0),
        ({}, {"status": 503, "retry_after": 4}, 4.0),  # the hub's JSON error, behind the proxy
        ({}, {"error": "no hint"}, 0.5),
        ({"Retry-After": "9999"}, {}, 10.0),  # capped
        ({"Retry-After": "soon"}, {"retry_after": "later"}, 0.5),
    ],
)
def test_the_wait_before_a_retry_comes_from_the_header_or_the_json_body(headers, body, expected):
    from extensions.client import _retry_after

    response = httpx.Response(503, headers=headers, json=body)
    assert _retry_after(response, 0.5) == expected
