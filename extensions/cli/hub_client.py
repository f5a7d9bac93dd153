"""The hub's REST API as the CLI uses it: who am I, my servers, start, stop, progress.

Servers are started with KubeSpawner's ``user_options`` (``profile``, ``image``, ``gpus``), the
same document the spawn page submits; the hub's spawner checks it as it checks the form.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
from gpulab.extensions.client import GatewayError

__all__ = ["HubClient", "HubError"]


class HubError(GatewayError):
    """An answer from the hub that is not a success."""


class HubClient:
    def __init__(self, api_url: str, token: str, timeout: float = 30.0) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"token {token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def whoami(self) -> dict[str, Any]:
        return self._json("GET", "/user")

    def user(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"/users/{quote(name, safe='')}")

    def servers(self, name: str) -> dict[str, dict[str, Any]]:
        """The user's servers by name ("" is the default server); stopped ones are absent."""
        return self.user(name).get("servers") or {}

    def start(self, name: str, server: str, options: dict[str, Any]) -> int:
        """Ask for a start: 201 when it is ready already, 202 while it starts."""
        response = self._request("POST", self._server_path(name, server), json=options)
        return response.status_code

    def stop(self, name: str, server: str) -> int:
        """Ask for a stop: 204 when stopped, 202 while it stops."""
        return self._request("DELETE", self._server_path(name, server)).status_code

    def progress(self, name: str, server: str) -> Iterator[dict[str, Any]]:
        """The start's progress events (``progress``, ``message``, ``ready``, ``failed``), from
        the hub's event stream, until the start ends."""
        path = self._server_path(name, server) + "/progress"
        with self._http.stream("GET", path, timeout=httpx.Timeout(30.0, read=None)) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                try:
                    event = json.loads(line[5:])
                except ValueError:
                    continue
                if isinstance(event, dict):
                    yield event

    @staticmethod
    def _server_path(name: str, server: str) -> str:
        user = f"/users/{quote(name, safe='')}"
        return f"{user}/servers/{quote(server, safe='')}" if server else f"{user}/server"

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        return response.json() if response.content else None

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise HubError(0, f"cannot reach the hub at {self.api_url}: {exc}") from None
        if response.status_code >= 400:
            raise _error(response)
        return response


def _error(response: httpx.Response) -> HubError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    message = body.get("message") if isinstance(body, dict) else None
    if response.status_code in (401, 403) and not message:
        message = "the hub refused this token (is it expired or revoked?)"
    return HubError(response.status_code, message or response.reason_phrase or "request failed")
