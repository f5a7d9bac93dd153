"""Session fixtures: a real SMTP server and a real webhook receiver (cheap, one per worker)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from notify_receivers import SmtpServer, WebhookReceiver, start_smtp_server, start_webhook_receiver


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    server = start_smtp_server()
    yield server
    server.controller.stop()


@pytest.fixture(scope="session")
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = start_webhook_receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture
def hook(webhook_receiver: WebhookReceiver) -> WebhookReceiver:
    """The receiver with nothing received and no failures scripted."""
    webhook_receiver.reset()
    return webhook_receiver
