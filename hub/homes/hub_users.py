"""Whether a user exists in JupyterHub, for the sweep of deleted users' homes.

The sweep deletes a home only while its owner is still deleted; the hub is the only authority
on that, so the admin command asks it (``GET <api>/users/<name>``: 200 or 404) with a token
that may read users (an admin's, or a service's with ``read:users``).
"""

from __future__ import annotations

import os
from urllib.parse import quote

import aiohttp
from gpulab.hub.homes.manifest import HomeError

API_URL_ENV = "JUPYTERHUB_API_URL"
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"


class HubUsers:
    """``await users.exists(name)``; close with :meth:`close`."""

    def __init__(self, api_url: str, token: str, *, timeout: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = aiohttp.ClientSession(
            headers={"Authorization": f"token {token}"},
            timeout=aiohttp.ClientTimeout(total=timeout),
        )

    @classmethod
    def from_env(cls, api_url: str | None = None) -> HubUsers:
        """From ``api_url`` (else ``$JUPYTERHUB_API_URL``) and ``$JUPYTERHUB_API_TOKEN``;
        :class:`HomeError` when either is missing: without the hub, a sweep could delete the
        home of a user who came back."""
        url = api_url or os.environ.get(API_URL_ENV)
        token = os.environ.get(TOKEN_ENV)
        if not url or not token:
            raise HomeError(
                "the sweep asks the hub whether each owner is still deleted: pass --hub-api-url "
                f"(or set ${API_URL_ENV}, e.g. https://hub.example.org/hub/api) and set "
                f"${TOKEN_ENV} to a token that may read users (an admin's)"
            )
        return cls(url, token)

    async def exists(self, name: str) -> bool:
        url = f"{self.api_url}/users/{quote(name, safe='')}"
        try:
            async with self._http.get(url) as response:
                if response.status == 404:
                    return False
                if response.status == 200:
                    return True
                raise HomeError(
                    f"the hub answered {response.status} for user {name!r} at {url}; "
                    "nothing was deleted (may the token read users?)"
                )
        except aiohttp.ClientError as exc:
            raise HomeError(f"cannot reach the hub at {self.api_url}: {exc}") from None

    async def close(self) -> None:
        await self._http.close()
