"""Real receivers for notification tests: an SMTP server (aiosmtpd) and a webhook receiver
(a threaded HTTP server) that answers a scripted sequence of statuses, then 200."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from gpulab.platform import free_port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookReceiver:
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)  # statuses to answer first
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            self.received.append(Received(headers, body))
            return self.script.pop(0) if self.script else 200

    def reset(self, script: list[int] | None = None) -> None:
        with self.lock:
            self.received.clear()
            self.script[:] = script or []


def start_webhook_receiver() -> WebhookReceiver:
    holder: dict[str, WebhookReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = holder["r"].answer(dict(self.headers.items()), body)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = WebhookReceiver(server)
    holder["r"] = receiver
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return receiver


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@dataclass
class SmtpServer:
    controller: Controller
    inbox: _Inbox

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def messages_to(self, address: str) -> list[Message]:
        return [m for m in self.inbox.messages if m["To"] == address]


def start_smtp_server() -> SmtpServer:
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    return SmtpServer(controller, inbox)


async def until(check: Callable[[], Any], seconds: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (a deadline, not a timing assertion),
    letting the event loop run what is being waited for."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        value = check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0.05)
