"""gpulab's authenticators: local-mode login (``gpulab up`` and tests: a shared password, groups
from the demo users file) and the OIDC login; both clear a re-created user's home deletion mark
as JupyterHub adds the user (:class:`ClearsHomeDeletionMark`).

Production logs in through the identity provider (GenericOAuthenticator, see
:mod:`gpulab.hub.config`); its group claim decides the groups. Locally,
:class:`GPULabLocalAuthenticator` gives the same mapping from ``hub/demo/users.yaml``::

    users:
      - {name: alice, groups: [vision]}
      - {name: admin, groups: [vision], admin: true}

A user listed there gets exactly those groups at each login (``manage_groups``); a user not
listed keeps the groups the hub already has for them (the auth model says ``groups: None``), so
tests and admins may still put users into groups through the REST API.

Production logs in with :class:`GPULabOAuthenticator`: GenericOAuthenticator (configured as
``c.GenericOAuthenticator``, which applies to it) plus the same home rule.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from secrets import compare_digest
from typing import Any

import yaml
from jupyterhub.auth import Authenticator, DummyAuthenticator
from jupyterhub.utils import maybe_future
from oauthenticator.generic import GenericOAuthenticator
from traitlets import Unicode, default

from . import demo
from .homes.user_added import HomeMarks, added_since, hub_namespace

__all__ = [
    "ClearsHomeDeletionMark",
    "GPULabLocalAuthenticator",
    "GPULabOAuthenticator",
    "load_demo_users",
]


def load_demo_users(path: str | Path) -> dict[str, dict[str, Any]]:
    """name -> {groups: [...], admin: bool} from a demo users file."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    out: dict[str, dict[str, Any]] = {}
    for entry in data.get("users") or []:
        out[str(entry["name"])] = {
            "groups": [str(g) for g in entry.get("groups") or []],
            "admin": bool(entry.get("admin", False)),
        }
    return out


class ClearsHomeDeletionMark(Authenticator):
    """``add_user`` (a user created through the REST API, or logging in for the first time)
    also clears the deletion mark a previous deletion of that user left on their home, before
    JupyterHub answers. Users the hub already had when it started are skipped (JupyterHub
    calls ``add_user`` for each of them at every start): see :mod:`gpulab.hub.homes.user_added`.
    """

    home_policy_path = Unicode(
        help="The policy file (default: $GPULAB_POLICY); empty: homes are left alone.",
        config=True,
    )
    home_namespace = Unicode(
        help="Namespace of the home claims (default: $GPULAB_NAMESPACE, $POD_NAMESPACE, default).",
        config=True,
    )

    @default("home_policy_path")
    def _default_home_policy_path(self) -> str:
        return os.environ.get("GPULAB_POLICY", "")

    @default("home_namespace")
    def _default_home_namespace(self) -> str:
        return hub_namespace()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._started_at = datetime.now(UTC)
        self._home_marks: HomeMarks | None = None

    async def add_user(self, user: Any) -> None:
        await maybe_future(super().add_user(user))
        if not self.home_policy_path:
            return
        if not added_since(getattr(user, "created", None), self._started_at):
            return
        if self._home_marks is None:
            self._home_marks = HomeMarks(self.home_policy_path, self.home_namespace)
        await self._home_marks.clear(user.name)


class GPULabOAuthenticator(ClearsHomeDeletionMark, GenericOAuthenticator):
    """GenericOAuthenticator (``c.GenericOAuthenticator`` applies) with the home rule."""


class GPULabLocalAuthenticator(ClearsHomeDeletionMark, DummyAuthenticator):
    """Shared password (``$GPULAB_DEMO_PASSWORD``, default ``gpulab``) + groups from a file."""

    shared_password = Unicode(config=True, help="The password every local user logs in with.")
    users_file = Unicode(str(demo.users_file()), config=True, help="The demo users file (YAML).")

    @default("shared_password")
    def _default_password(self) -> str:
        return os.environ.get("GPULAB_DEMO_PASSWORD", "gpulab")

    @default("manage_groups")
    def _default_manage_groups(self) -> bool:
        return True

    @default("allow_all")
    def _default_allow_all(self) -> bool:
        return True

    def _users(self) -> dict[str, dict[str, Any]]:
        try:
            return load_demo_users(self.users_file)
        except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
            self.log.error("demo users file %s unreadable: %s", self.users_file, exc)
            return {}

    async def authenticate(self, handler: Any, data: dict[str, str]) -> dict[str, Any] | None:
        name = (data.get("username") or "").strip()
        password = data.get("password") or ""
        if not name or not self.shared_password:
            return None
        if not compare_digest(password.encode(), self.shared_password.encode()):
            return None
        entry = self._users().get(name)
        model: dict[str, Any] = {"name": name, "groups": None}
        if entry is not None:
            model["groups"] = entry["groups"]
            if entry["admin"]:
                model["admin"] = True
        return model
