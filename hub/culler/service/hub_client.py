"""The hub's REST API as the culler service uses it: paged user listing, stop a server, read a
user (groups, admin flag; cached). Every request is counted (``requests``) so that a cycle's
cost is visible in logs and in the benchmark."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx

__all__ = ["HubClient", "HubError"]

PAGINATION = "application/jupyterhub-pagination+json"


class HubError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"hub API answered {status}: {message}")
        self.status = status


class HubClient:
    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        page_size: int = 200,
        user_cache_seconds: float = 30.0,
        timeout: float = 30.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.page_size = page_size
        self.requests = 0
        self._http = httpx.AsyncClient(headers={"Authorization": f"token {token}"}, timeout=timeout)
        self._users: dict[str, tuple[float, dict[str, Any] | None]] = {}
        self._user_ttl = user_cache_seconds

    async def close(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        self.requests += 1
        return await self._http.request(method, self.api_url + path, **kw)

    async def active_user_pages(self) -> AsyncIterator[list[dict[str, Any]]]:
        """Pages of users with a running or pending server (their servers included)."""
        offset = 0
        while True:
            r = await self._request(
                "GET",
                "/users",
                params={
                    "state": "active",
                    "include_stopped_servers": "false",
                    "offset": offset,
                    "limit": self.page_size,
                },
                headers={"Accept": PAGINATION},
            )
            if r.status_code != 200:
                raise HubError(r.status_code, r.text[:300])
            body = r.json()
            if isinstance(body, list):  # a hub without pagination support
                yield body
                return
            items = body.get("items") or []
            yield items
            nxt = (body.get("_pagination") or {}).get("next")
            if not nxt or not items:
                return
            offset = int(nxt["offset"])

    async def stop_server(self, user: str, server_name: str = "") -> int:
        """Ask the hub to stop a server (it may take a while: 202). Returns the status."""
        path = f"/users/{quote(user, safe='')}/"
        path += f"servers/{quote(server_name, safe='')}" if server_name else "server"
        r = await self._request("DELETE", path)
        if r.status_code not in (202, 204, 400):  # 400: not running any more
            raise HubError(r.status_code, r.text[:300])
        return r.status_code

    def remember_user(self, model: dict[str, Any]) -> None:
        """A page of the listing is as good as a lookup: keep it in the cache."""
        self._users[model["name"]] = (time.monotonic(), model)

    async def user(self, name: str, *, fresh: bool = False) -> dict[str, Any] | None:
        """The user's model (name, admin, groups, servers), cached ≤ ``user_cache_seconds``."""
        hit = self._users.get(name)
        if not fresh and hit is not None and time.monotonic() - hit[0] < self._user_ttl:
            return hit[1]
        r = await self._request("GET", f"/users/{quote(name, safe='')}")
        model = r.json() if r.status_code == 200 else None
        if r.status_code not in (200, 404):
            raise HubError(r.status_code, r.text[:300])
        self._users[name] = (time.monotonic(), model)
        return model
