"""Who is calling: identity through the hub, never from the request.

1. ``HubOAuth`` (jupyterhub.services.auth) resolves the caller's hub token
   (``Authorization: token ...``) or, for browsers, the service's OAuth cookie, to the hub's
   model of that token (``GET /hub/api/user``, cached per token), checks that the token may
   reach this service (``access:services!service=jobs-gateway``) and whether it carries
   gpulab's admin scope (:func:`gpulab.hub.services.holds_admin_scope`). Admin rights belong
   to the token, not to the user: an admin's notebook-server token is an ordinary user's.
2. Groups come from ``GET /hub/api/users/{name}`` with the gateway's own service token,
   cached at most ``max_age`` seconds per user.
3. A hub *service* is a caller only when its token carries the admin scope (the culler, which
   cancels jobs for the admins on its dashboard); it has no groups, and the handlers let it do
   nothing but cancel, naming the admin it acts for (``on_behalf_of``).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from gpulab.hub.services import holds_admin_scope
from jupyterhub.services.auth import HubOAuth
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

__all__ = ["Caller", "HubUnavailable", "Identity", "IdentityResolver"]

Groups = tuple[str, ...]


@dataclass(frozen=True)
class Caller:
    """What the request's token says: whose it is, and whether it carries the admin scope."""

    name: str
    admin: bool
    service: bool = False  # a hub service's token (always an admin one), not a person's


@dataclass(frozen=True)
class Identity:
    name: str
    groups: tuple[str, ...]
    admin: bool  # from the request's token (Caller.admin), never from the user record
    service: bool = False  # see Caller.service


class HubUnavailable(Exception):
    """The hub did not answer (the caller should retry: 503)."""


class IdentityResolver:
    """Resolves a tornado request to an :class:`Identity` (or ``None``)."""

    def __init__(
        self,
        hub_auth: HubOAuth,
        api_url: str,
        api_token: str,
        max_age: float = 30.0,
    ) -> None:
        self.hub_auth = hub_auth
        self.api_url = api_url.rstrip("/")
        self._token = api_token
        self.max_age = max_age
        # Per user: their groups (None: the hub does not know them).
        self._cache: dict[str, tuple[float, Groups | None]] = {}
        self._inflight: dict[str, asyncio.Future[Groups | None]] = {}
        self._http = AsyncHTTPClient()

    def __repr__(self) -> str:
        return f"IdentityResolver(api_url={self.api_url!r})"

    async def caller(self, handler: Any) -> Caller | None:
        """The request's token or cookie as the hub sees it; None if not authenticated or the
        token may not reach this service."""
        try:
            model = await self.hub_auth.get_user(handler, sync=False)
        except HTTPClientError as exc:
            if exc.code >= 500 or exc.code == 599:
                raise HubUnavailable(str(exc)) from None
            return None
        except OSError as exc:
            raise HubUnavailable(str(exc)) from None
        if not model:
            return None
        kind = model.get("kind", "user")
        admin = holds_admin_scope(model.get("scopes") or ())
        if kind not in ("user", "service") or (kind == "service" and not admin):
            return None
        scopes = self.hub_auth.access_scopes
        if scopes and not self.hub_auth.check_scopes(scopes, model):
            return None
        return Caller(name=str(model["name"]), admin=admin, service=kind == "service")

    async def identity(self, caller: Caller) -> Identity | None:
        """``caller`` with their groups from the hub (cached ``max_age`` seconds per user;
        the admin right is the token's own, so it is never cached with the user). A service
        has no groups."""
        if caller.service:
            return Identity(name=caller.name, groups=(), admin=caller.admin, service=True)
        groups = await self._groups(caller.name)
        if groups is None:
            return None
        return Identity(name=caller.name, groups=groups, admin=caller.admin)

    async def _groups(self, name: str) -> Groups | None:
        now = time.monotonic()
        hit = self._cache.get(name)
        if hit is not None and now - hit[0] < self.max_age:
            return hit[1]
        pending = self._inflight.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Groups | None] = asyncio.get_running_loop().create_future()
        self._inflight[name] = future
        try:
            groups = await self._fetch(name)
            self._cache[name] = (time.monotonic(), groups)
            if len(self._cache) > 50_000:
                self._cache.clear()
            future.set_result(groups)
            return groups
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved
            raise
        finally:
            self._inflight.pop(name, None)

    async def _fetch(self, name: str) -> Groups | None:
        request = HTTPRequest(
            f"{self.api_url}/users/{quote(name, safe='')}",
            headers={"Authorization": f"token {self._token}"},
            request_timeout=10,
        )
        try:
            response = await self._http.fetch(request)
        except HTTPClientError as exc:
            if exc.code == 404:
                return None
            raise HubUnavailable(f"hub API answered {exc.code}") from None
        except OSError as exc:
            raise HubUnavailable(str(exc)) from None
        model = json.loads(response.body)
        return tuple(str(g) for g in model.get("groups") or ())
