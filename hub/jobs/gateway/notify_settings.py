"""A user's notification settings and their checks (pure, no I/O).

What a user may set: an e-mail address, a webhook URL, and which job events notify them
(``succeeded``, ``failed``, ``preempted``, ``gpu_idle``, ``cancelled``). Every mistake is a
:class:`~gpulab.hub.field_errors.FieldError` naming the field.

Webhook URLs are fetched by the gateway, inside the cluster, so they are checked against
server-side request forgery twice: here (the URL as written: ``https`` only, no address or
name that points inside the cluster or at the machine itself) and again at delivery, on the
addresses the name resolves to then (:func:`address_allowed`), since DNS may change between
the two. ``http`` and internal addresses are allowed only for hosts the admin lists
(``GatewayApp.notify_webhook_allow_hosts``: a local receiver in tests and ``gpulab up``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

from ...field_errors import FieldError

__all__ = [
    "DEFAULT_EVENTS",
    "EVENTS",
    "Event",
    "NotifySettings",
    "address_allowed",
    "check_webhook_url",
    "parse_settings",
]

Event = Literal["succeeded", "failed", "preempted", "gpu_idle", "cancelled"]
EVENTS: tuple[Event, ...] = get_args(Event)
DEFAULT_EVENTS: tuple[Event, ...] = ("succeeded", "failed", "preempted", "gpu_idle")
MAX_URL = 2000
MAX_EMAIL = 254
# A pragmatic address check: one @, no spaces or angle brackets (no header injection).
_EMAIL = re.compile(r"[^@\s<>,;\"']+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?\.[A-Za-z]{2,}")
# Names that resolve inside the cluster or to this machine.
_INTERNAL_SUFFIXES = (".svc", ".cluster.local", ".local", ".internal", ".localhost")
_INTERNAL_NAMES = frozenset({"localhost", "kubernetes", "metadata", "metadata.google.internal"})


@dataclass(frozen=True)
class NotifySettings:
    """What one user asked to be told, and where."""

    email: str | None = None
    webhook_url: str | None = None
    events: tuple[Event, ...] = DEFAULT_EVENTS

    def wants(self, event: str) -> bool:
        return event in self.events and bool(self.email or self.webhook_url)

    def as_dict(self) -> dict[str, Any]:
        return {"email": self.email, "webhook_url": self.webhook_url, "events": list(self.events)}


def address_allowed(ip: str) -> bool:
    """Whether a webhook may be delivered to this address: a public one only (never loopback,
    link-local such as the cloud metadata service, private, shared or reserved ranges)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


def _internal_name(host: str) -> bool:
    host = host.rstrip(".").lower()
    return host in _INTERNAL_NAMES or host.endswith(_INTERNAL_SUFFIXES) or "." not in host


def check_webhook_url(url: str, allow_hosts: Collection[str] = ()) -> list[FieldError]:
    """Problems with a webhook URL as written (empty: acceptable)."""
    where = "webhook_url"
    allowed = "an https:// URL on a public host"
    if len(url) > MAX_URL or not url.isprintable():
        return [FieldError(where, f"is not a URL of at most {MAX_URL} characters", allowed)]
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        _ = parts.port  # raises on a port that is not a number
    except ValueError:
        return [FieldError(where, "is not a URL", allowed)]
    if not host:
        return [FieldError(where, "has no host", allowed)]
    if parts.username or parts.password:
        return [FieldError(where, "must not carry a user name or password", allowed)]
    listed = host in {h.lower() for h in allow_hosts}
    if parts.scheme == "http" and not listed:
        return [FieldError(where, "must use https", allowed)]
    if parts.scheme not in ("http", "https"):
        return [FieldError(where, f"has scheme {parts.scheme!r}", allowed)]
    if listed:
        return []
    try:
        ipaddress.ip_address(host.strip("[]"))
        literal = True
    except ValueError:
        literal = False
    if literal and not address_allowed(host.strip("[]")):
        return [FieldError(where, "points at an internal address", allowed)]
    if not literal and _internal_name(host):
        return [FieldError(where, "points at a cluster-internal or local name", allowed)]
    return []


def _events(value: Any) -> tuple[tuple[Event, ...], list[FieldError]]:
    allowed = ", ".join(EVENTS)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return DEFAULT_EVENTS, [FieldError("events", "is not a list of event names", allowed)]
    unknown = [v for v in value if v not in EVENTS]
    if unknown:
        return DEFAULT_EVENTS, [FieldError("events", f"has unknown {unknown[0][:40]!r}", allowed)]
    return tuple(e for e in EVENTS if e in value), []


def _text(value: Any, name: str) -> tuple[str | None, list[FieldError]]:
    if value is None or value == "":
        return None, []
    if not isinstance(value, str):
        return None, [FieldError(name, "is not a string", "a string, or null to remove it")]
    return value.strip(), []


def parse_settings(
    body: Mapping[str, Any], current: NotifySettings, allow_hosts: Iterable[str] = ()
) -> tuple[NotifySettings, list[FieldError]]:
    """``current`` updated with the keys ``body`` has (a missing key keeps its value; null or
    "" removes it), and every problem found."""
    problems: list[FieldError] = []
    unknown = sorted(set(body) - {"email", "webhook_url", "events"})
    for key in unknown:
        problems.append(FieldError(str(key)[:60], "is not a setting", "email, webhook_url, events"))
    email, webhook, events = current.email, current.webhook_url, current.events
    if "email" in body:
        email, found = _text(body["email"], "email")
        problems += found
        if email is not None and (len(email) > MAX_EMAIL or not _EMAIL.fullmatch(email)):
            problems.append(FieldError("email", "is not an e-mail address", "name@example.org"))
    if "webhook_url" in body:
        webhook, found = _text(body["webhook_url"], "webhook_url")
        problems += found
        if webhook is not None:
            problems += check_webhook_url(webhook, list(allow_hosts))
    if "events" in body:
        events, found = _events(body["events"])
        problems += found
    return NotifySettings(email, webhook, events), problems
