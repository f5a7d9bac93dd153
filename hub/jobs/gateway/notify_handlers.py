"""``/api/v1/notify``: a user's notification settings, their webhook secret, a test send,
and what was delivered (docs/jobs.md, "Told when it ends").

- ``GET  /api/v1/notify``: settings, whether e-mail is offered, whether a webhook secret
  exists (never its value), the recent deliveries with their status.
- ``PUT  /api/v1/notify``: change settings (JSON; a missing key keeps its value, null
  removes it). The first save makes the webhook secret and answers it, once.
- ``POST /api/v1/notify/secret``: a new webhook secret, answered once (the old one stops
  verifying at once).
- ``POST /api/v1/notify/test``: one test notification on each channel, no retries.

Settings are each user's own: there is no way to name another user here.
"""

from __future__ import annotations

import json
from typing import Any

from ...field_errors import FieldError
from .errors import ApiError, from_kube
from .handlers import BaseHandler
from .kube import KubeError
from .notifier import Notifier
from .notify_settings import parse_settings
from .notify_store import StoredSettings

__all__ = ["notify_routes"]

MAX_BODY = 64 * 1024


class _NotifyHandler(BaseHandler):
    @property
    def notifier(self) -> Notifier:
        notifier = self.settings.get("notifier")
        if notifier is None:
            raise ApiError(503, "notifications are not enabled on this gateway")
        return notifier

    def describe(self, stored: StoredSettings, secret: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            **stored.settings.as_dict(),
            "email_available": self.notifier.config.smtp is not None,
            "webhook_secret_set": stored.webhook_secret is not None,
            "deliveries": self.notifier.deliveries(self.ident.name),
        }
        if secret is not None:
            out["webhook_secret"] = secret  # shown this once
        return out

    async def load(self) -> StoredSettings:
        try:
            return await self.notifier.store.load(self.ident.name)
        except KubeError as exc:
            raise from_kube(exc, "reading your notification settings") from None


class NotifySettingsHandler(_NotifyHandler):
    async def get(self) -> None:
        self.write_json(self.describe(await self.load()))

    async def put(self) -> None:
        body = self.request.body
        if len(body) > MAX_BODY:
            raise ApiError(413, f"the settings are {len(body)} bytes; at most {MAX_BODY}")
        try:
            doc = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            doc = None
        if not isinstance(doc, dict):
            raise ApiError(
                400, "the body is not a JSON object", [FieldError("body", "is not", "{...}")]
            )
        current = await self.load()
        settings, problems = parse_settings(doc, current.settings, self.notifier.config.allow_hosts)
        if settings.email and self.notifier.config.smtp is None and "email" in doc:
            problems.append(
                FieldError("email", "cannot be used: the admin set up no e-mail server", "null")
            )
        if problems:
            raise ApiError(422, "the notification settings have problems", problems)
        try:
            stored, secret = await self.notifier.store.save(self.ident.name, settings)
        except KubeError as exc:
            raise from_kube(exc, "saving your notification settings") from None
        self.write_json(self.describe(stored, secret))


class NotifySecretHandler(_NotifyHandler):
    async def post(self) -> None:
        current = await self.load()
        try:
            stored, secret = await self.notifier.store.save(
                self.ident.name, current.settings, rotate=True
            )
        except KubeError as exc:
            raise from_kube(exc, "making a new webhook secret") from None
        self.write_json(self.describe(stored, secret))


class NotifyTestHandler(_NotifyHandler):
    async def post(self) -> None:
        current = await self.load()
        if not current.settings.email and not current.settings.webhook_url:
            raise ApiError(
                409,
                "nothing to test: set an e-mail address or a webhook URL first",
                [FieldError("email", "is not set", "gpulab notify set --email ...")],
            )
        self.write_json({"deliveries": await self.notifier.send_test(self.ident.name)})


def notify_routes(prefix: str) -> list[tuple[str, type]]:
    api = prefix + "api/v1/notify"
    return [
        (api, NotifySettingsHandler),
        (api + "/secret", NotifySecretHandler),
        (api + "/test", NotifyTestHandler),
    ]
