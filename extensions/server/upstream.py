"""Async calls from the user's server to a hub service (the jobs gateway, the culler).

The server's own ``$JUPYTERHUB_API_TOKEN`` goes in the ``Authorization`` header; it never
leaves this process towards the browser. Redirects are not followed: a gateway ``307`` to a
presigned URL is handed back as it is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx

__all__ = ["Upstream", "UpstreamError"]


class UpstreamError(Exception):
    """The service is not configured (503) or could not be reached (502)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Upstream:
    def __init__(self, name: str, base_url: str, token: str, timeout: float = 30.0) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/") + "/" if base_url else ""
        self._token = token
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self._token)

    def _http(self) -> httpx.AsyncClient:
        if not self.configured:
            what = "URL" if not self.base_url else "token ($JUPYTERHUB_API_TOKEN)"
            raise UpstreamError(
                503, f"the {self.name} is not configured on this server (no {what})"
            )
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url,
                headers={"Authorization": f"token {self._token}"},
                timeout=self._timeout,
                follow_redirects=False,
            )
        return self._client

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        client = self._http()
        content = None if json_body is None else json.dumps(json_body).encode()
        hdrs = dict(headers or {})
        if content is not None:
            hdrs["Content-Type"] = "application/json"
        try:
            return await client.request(
                method, path.lstrip("/"), params=params, content=content, headers=hdrs
            )
        except httpx.HTTPError as exc:
            raise UpstreamError(
                502, f"cannot reach the {self.name} at {self.base_url}: {type(exc).__name__}"
            ) from None

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[httpx.Response]:  # fmt: skip
        """A streamed answer; ``read_timeout``: longest wait between two chunks."""
        client = self._http()
        t = httpx.Timeout(self._timeout, read=read_timeout or self._timeout)
        try:
            request = client.build_request(method, path.lstrip("/"), params=params, timeout=t)
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise UpstreamError(
                502, f"cannot reach the {self.name} at {self.base_url}: {type(exc).__name__}"
            ) from None
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
