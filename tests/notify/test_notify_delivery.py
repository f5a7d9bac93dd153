"""Delivering a notification to a real SMTP server and a real webhook receiver: signed,
retried with backoff after a failure, bounded, never to an internal address."""

from __future__ import annotations

import hashlib
import hmac
import json

from gpulab.hub.jobs.gateway.notify_delivery import (
    Backoff,
    DeliveryStatus,
    SmtpConfig,
    deliver,
    send_email,
    send_webhook,
)
from notify_receivers import SmtpServer, WebhookReceiver

QUICK = Backoff(attempts=3, first=0.01, factor=2.0)


async def test_an_email_reaches_the_smtp_server(smtp_server: SmtpServer) -> None:
    config = SmtpConfig(host="127.0.0.1", port=smtp_server.port, security="none")
    await send_email(config, "mail-test@example.org", "[gpulab] job j1 succeeded", "hello")
    (message,) = smtp_server.messages_to("mail-test@example.org")
    assert message["Subject"] == "[gpulab] job j1 succeeded"


async def test_a_webhook_carries_a_verifiable_signature(hook: WebhookReceiver) -> None:
    await send_webhook(hook.url, {"job_id": "j1"}, "s3cret", allow_hosts=["127.0.0.1"])
    (got,) = hook.received
    expected = "sha256=" + hmac.new(b"s3cret", got.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(got.headers["X-Gpulab-Signature"], expected)
    assert json.loads(got.body) == {"job_id": "j1"}


async def test_a_failed_webhook_delivery_is_retried(hook: WebhookReceiver) -> None:
    hook.reset(script=[503])

    async def send() -> None:
        await send_webhook(hook.url, {"job_id": "j1"}, "k", allow_hosts=["127.0.0.1"])

    status = await deliver(send, DeliveryStatus("webhook"), QUICK)
    assert (status.status, status.attempts, len(hook.received)) == ("delivered", 2, 2)


async def test_retries_are_bounded(hook: WebhookReceiver) -> None:
    hook.reset(script=[500, 500, 500, 500])

    async def send() -> None:
        await send_webhook(hook.url, {"job_id": "j1"}, "k", allow_hosts=["127.0.0.1"])

    status = await deliver(send, DeliveryStatus("webhook"), QUICK)
    assert (status.status, status.attempts, status.error) == ("failed", 3, "HTTP 500")


async def test_a_webhook_host_resolving_inside_gets_nothing(hook: WebhookReceiver) -> None:
    async def send() -> None:  # the receiver's host is not on the admin's list here
        await send_webhook(hook.url, {"job_id": "j1"}, "k")

    status = await deliver(send, DeliveryStatus("webhook"), QUICK)
    assert (status.status, status.attempts, hook.received) == ("failed", 1, [])
