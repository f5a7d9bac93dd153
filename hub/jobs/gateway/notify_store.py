"""Where a user's notification settings live: one Secret per user in the users' namespace.

Why a Secret: it holds the user's webhook signing secret next to the settings, Kubernetes
keeps it (the gateway keeps no database; its other state is Jobs and their annotations), and
one object per user means one user's write never conflicts with another's. The name is a
digest of the user name (hub names need not be valid object names); the owner is in an
annotation and the user label. The gateway's Role gains ``secrets`` ``update``.

The webhook secret is made on the first save and is shown to its user only when made or
rotated (:meth:`NotifyStore.rotate`); reads answer whether one exists, never its value.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from ...names import escape_username
from ...workload.labels import NOTIFY_SETTINGS_COMPONENT, OWNER_ANNOTATION, USER_LABEL, base_labels
from .kube import Kube, KubeError
from .notify_settings import DEFAULT_EVENTS, EVENTS, NotifySettings

__all__ = ["NotifyStore", "StoredSettings", "secret_name"]

SETTINGS_KEY = "settings.json"
SECRET_KEY = "webhook-secret"


def secret_name(user: str) -> str:
    return "gpulab-notify-" + hashlib.sha256(user.encode()).hexdigest()[:20]


@dataclass(frozen=True)
class StoredSettings:
    settings: NotifySettings
    webhook_secret: str | None
    resource_version: str | None  # None: no Secret yet


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _decode(obj: dict[str, Any]) -> StoredSettings:
    data = obj.get("data") or {}
    raw = _unb64(data.get(SETTINGS_KEY)) or "{}"
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = {}
    events = tuple(e for e in EVENTS if e in (doc.get("events") or DEFAULT_EVENTS))
    settings = NotifySettings(
        email=doc.get("email") or None,
        webhook_url=doc.get("webhook_url") or None,
        events=events,
    )
    return StoredSettings(
        settings,
        _unb64(data.get(SECRET_KEY)) or None,
        (obj.get("metadata") or {}).get("resourceVersion"),
    )


class NotifyStore:
    """Read and write users' notification settings (one Secret each)."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def load(self, user: str) -> StoredSettings:
        try:
            obj = await self.kube.request("GET", self.kube.secrets_path(secret_name(user)))
        except KubeError as exc:
            if exc.status == 404:
                return StoredSettings(NotifySettings(), None, None)
            raise
        return _decode(obj)

    def _object(self, user: str, settings: NotifySettings, secret: str) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {
                "name": secret_name(user),
                "labels": {
                    **base_labels(NOTIFY_SETTINGS_COMPONENT),
                    USER_LABEL: escape_username(user),
                },
                "annotations": {OWNER_ANNOTATION: user},
            },
            "data": {
                SETTINGS_KEY: _b64(json.dumps(settings.as_dict(), sort_keys=True)),
                SECRET_KEY: _b64(secret),
            },
        }

    async def save(
        self, user: str, settings: NotifySettings, *, rotate: bool = False
    ) -> tuple[StoredSettings, str | None]:
        """Write the settings; the webhook secret is kept, or made when missing or ``rotate``.
        Returns what is stored and the secret when it is new (to show once), else None."""
        current = await self.load(user)
        fresh = rotate or current.webhook_secret is None
        secret = secrets.token_urlsafe(32) if fresh else str(current.webhook_secret)
        body = self._object(user, settings, secret)
        if current.resource_version is None:
            obj = await self.kube.request("POST", self.kube.secrets_path(), body=body)
        else:
            body["metadata"]["resourceVersion"] = current.resource_version
            obj = await self.kube.request(
                "PUT", self.kube.secrets_path(secret_name(user)), body=body
            )
        return _decode(obj), secret if fresh else None
