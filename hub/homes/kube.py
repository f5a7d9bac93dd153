"""Raw-JSON Kubernetes access for home operations, over kubernetes_asyncio's ApiClient.

Small on purpose: get, list, create, merge-patch, delete, and :meth:`KubeJson.wait_for`, which
lists once and then watches (no polling) until a predicate holds for one named object.
Errors become :class:`KubeCallError` with the API's status, reason and message.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

USER_AGENT = "gpulab-homes/0.1"

Obj = dict[str, Any]


class KubeCallError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


class KubeJson:
    def __init__(self, api_client: Any, timeout: float = 30.0) -> None:
        self.api_client = api_client
        self.timeout = timeout

    @classmethod
    async def connect(cls, kubeconfig: str | None = None) -> KubeJson:
        """From ``kubeconfig`` (a path), else ``$KUBECONFIG``, else the in-cluster account."""
        from kubernetes_asyncio import client, config

        cfg = client.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG")
        if path:
            await config.load_kube_config(config_file=path, client_configuration=cfg)
        else:
            config.load_incluster_config(client_configuration=cfg)
        api = client.ApiClient(configuration=cfg)
        api.user_agent = USER_AGENT
        return cls(api)

    async def close(self) -> None:
        await self.api_client.close()

    async def _open(
        self,
        method: str,
        path: str,
        query: Mapping[str, Any] | None,
        body: Any,
        content_type: str,
        request_timeout: Any,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type
        params = [(k, str(v)) for k, v in (query or {}).items() if v is not None]
        try:
            response = await self.api_client.call_api(
                path,
                method,
                query_params=params,
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=request_timeout,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise KubeCallError(
                0, "Unavailable", f"the Kubernetes API did not answer: {exc!r}"
            ) from None
        if isinstance(response, tuple):
            response = response[0]
        if response.status >= 400:
            raw = await response.read()
            response.release()
            try:
                err = json.loads(raw) if raw else {}
            except ValueError:
                err = {}
            err = err if isinstance(err, dict) else {}
            raise KubeCallError(
                response.status,
                str(err.get("reason") or response.reason or ""),
                str(err.get("message") or response.reason or "Kubernetes API error"),
            )
        return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        response = await self._open(method, path, query, body, content_type, self.timeout)
        try:
            data = await response.read()
        finally:
            response.release()
        value = json.loads(data) if data else {}
        return value if isinstance(value, dict) else {}

    async def get(self, path: str) -> Obj | None:
        try:
            return await self.request("GET", path)
        except KubeCallError as e:
            if e.status == 404:
                return None
            raise

    async def list(self, path: str, **query: Any) -> tuple[list[Obj], str]:
        data = await self.request("GET", path, query=query)
        return list(data.get("items") or []), str(
            (data.get("metadata") or {}).get("resourceVersion") or ""
        )

    async def create(self, path: str, body: Obj) -> Obj:
        return await self.request("POST", path, body=body)

    async def patch(self, path: str, body: Obj) -> Obj:
        return await self.request(
            "PATCH", path, body=body, content_type="application/merge-patch+json"
        )

    async def delete(self, path: str) -> Obj | None:
        try:
            return await self.request("DELETE", path, body={"propagationPolicy": "Background"})
        except KubeCallError as e:
            if e.status == 404:
                return None
            raise

    async def wait_for(
        self,
        collection: str,
        name: str,
        done: Callable[[Obj | None], bool],
        seconds: float,
    ) -> Obj | None:
        """Wait until ``done(obj)`` (``obj`` None once it is gone) for the object ``name`` in
        the list path ``collection``; returns the object (or None). TimeoutError after
        ``seconds``."""
        selector = f"metadata.name={name}"
        async with asyncio.timeout(seconds):
            while True:
                items, rv = await self.list(collection, fieldSelector=selector)
                current = items[0] if items else None
                if done(current):
                    return current
                result = await self._watch_until(collection, selector, rv, done)
                if result is not _RELIST:
                    return result  # type: ignore[return-value]

    async def _watch_until(
        self, collection: str, selector: str, rv: str, done: Callable[[Obj | None], bool]
    ) -> object:
        query = {
            "watch": "1",
            "fieldSelector": selector,
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": "60",
        }
        client_timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=90)
        response = await self._open("GET", collection, query, None, "", client_timeout)
        buffer = b""
        try:
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        return _RELIST
                    if kind == "BOOKMARK":
                        continue
                    current = None if kind == "DELETED" else obj
                    if done(current):
                        return current
        except (aiohttp.ClientError, ValueError):
            pass
        finally:
            response.close()
        return _RELIST


_RELIST = object()
