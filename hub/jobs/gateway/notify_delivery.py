"""Delivering one notification: by e-mail (the admin's SMTP server) or to a webhook, retried
with exponential backoff, bounded.

A webhook's host is resolved through :class:`PublicOnlyResolver`, which drops every address
:func:`~.notify_settings.address_allowed` refuses (loopback, link-local, private, ...) unless
the admin listed the host: the check is made on the addresses really connected to, so a name
that resolves to a public address when the user saves it and to an internal one later gets
nothing. Redirects are not followed (a redirect could point anywhere).

Nothing here logs or returns the SMTP password, the webhook secret or the body's signature.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import smtplib
import socket
import ssl
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.netutil import DefaultLoopResolver, Resolver

from .notify_events import SIGNATURE_HEADER, sign
from .notify_settings import address_allowed

__all__ = [
    "Backoff",
    "DeliveryRefused",
    "DeliveryStatus",
    "PublicOnlyResolver",
    "SmtpConfig",
    "deliver",
    "send_email",
    "send_webhook",
]

USER_AGENT = "gpulab-notify/1"


class DeliveryRefused(Exception):
    """A delivery that retrying cannot help (the webhook's host resolves only inside)."""


@dataclass(frozen=True)
class SmtpConfig:
    """The admin's SMTP server. ``security``: ``starttls`` (port 587), ``ssl`` (465) or
    ``none`` (a relay on a trusted network, and tests)."""

    host: str
    port: int = 587
    sender: str = "gpulab@localhost"
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    timeout: float = 15.0


@dataclass(frozen=True)
class Backoff:
    """``attempts`` tries; before try k+1 a pause of ``first * factor**(k-1)``, at most ``cap``."""

    attempts: int = 5
    first: float = 2.0
    factor: float = 4.0
    cap: float = 600.0

    def pause(self, tried: int) -> float:
        return min(self.cap, self.first * self.factor ** (tried - 1))


@dataclass
class DeliveryStatus:
    """What happened to one notification on one channel (shown to its owner)."""

    channel: Literal["email", "webhook"]
    status: Literal["sending", "retrying", "delivered", "failed"] = "sending"
    attempts: int = 0
    error: str | None = None
    at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "at": self.at,
        }


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def deliver(
    send: Callable[[], Awaitable[None]],
    status: DeliveryStatus,
    backoff: Backoff,
    on_change: Callable[[DeliveryStatus], None] = lambda _s: None,
) -> DeliveryStatus:
    """Call ``send`` until it succeeds or ``backoff`` is spent; ``status`` follows each try."""
    while True:
        status.attempts += 1
        try:
            await send()
        except DeliveryRefused as exc:
            status.status, status.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure of a delivery is retried
            status.error = _describe(exc)
            status.status = "retrying" if status.attempts < backoff.attempts else "failed"
        else:
            status.status, status.error = "delivered", None
        status.at = _now()
        on_change(status)
        if status.status != "retrying":
            return status
        await asyncio.sleep(backoff.pause(status.attempts))


def _describe(exc: Exception) -> str:
    """A short reason without secrets (no URLs with query strings, no server banners)."""
    if isinstance(exc, HTTPClientError):
        return f"HTTP {exc.code}"
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"SMTP {exc.smtp_code}"
    return type(exc).__name__


class PublicOnlyResolver(Resolver):
    """Resolves as usual, then keeps only addresses a webhook may reach."""

    def initialize(self, allow_hosts: Collection[str] = ()) -> None:  # type: ignore[override]
        self._inner = DefaultLoopResolver()
        self._allow = {h.lower() for h in allow_hosts}

    async def resolve(  # type: ignore[override]
        self, host: str, port: int, family: socket.AddressFamily = socket.AF_UNSPEC
    ) -> list[tuple[int, Any]]:
        found = await self._inner.resolve(host, port, family)
        if host.lower() in self._allow:
            return found
        kept = [(fam, addr) for fam, addr in found if address_allowed(str(addr[0]))]
        if not kept:
            raise DeliveryRefused("the webhook's host resolves only to internal addresses")
        return kept


async def send_webhook(
    url: str,
    body: dict[str, Any],
    secret: str,
    *,
    allow_hosts: Collection[str] = (),
    seconds: float = 10.0,
) -> None:
    """POST the JSON ``body``, signed; any answer but 2xx raises."""
    data = json.dumps(body, sort_keys=True).encode()
    client = AsyncHTTPClient(force_instance=True, resolver=PublicOnlyResolver(allow_hosts))
    try:
        await client.fetch(
            HTTPRequest(
                url,
                method="POST",
                body=data,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": USER_AGENT,
                    SIGNATURE_HEADER: sign(data, secret),
                },
                follow_redirects=False,
                connect_timeout=seconds,
                request_timeout=seconds,
            )
        )
    finally:
        client.close()


def _send_email_now(config: SmtpConfig, message: EmailMessage) -> None:
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if config.security == "ssl":
        smtp = smtplib.SMTP_SSL(config.host, config.port, timeout=config.timeout, context=context)
    else:
        smtp = smtplib.SMTP(config.host, config.port, timeout=config.timeout)
    with smtp:
        if config.security == "starttls":
            smtp.starttls(context=context)
        if config.username:
            smtp.login(config.username, config.password)
        smtp.send_message(message)


async def send_email(config: SmtpConfig, to: str, subject: str, text: str) -> None:
    """Send one plain-text message (smtplib, in a thread: it blocks)."""
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = to
    message["Subject"] = subject
    message.set_content(text)
    await asyncio.to_thread(_send_email_now, config, message)
