"""The gateway's Kubernetes access: raw JSON requests over kubernetes_asyncio's ApiClient.

Raw JSON (``_preload_content=False``) instead of the generated models: the cache holds tens of
thousands of Jobs, and model (de)serialisation would cost more than the rest of a request.
Every request carries the User-Agent ``gpulab-jobs-gateway/<version>`` so that audit logs
(and tests/ship/rbac.py) can tell the gateway's calls apart. Errors become
:class:`KubeError` with the API's status, reason and message; connection failures and
timeouts are status 503.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

__all__ = ["USER_AGENT", "Kube", "KubeError"]

USER_AGENT = "gpulab-jobs-gateway/0.1"


class KubeError(Exception):
    """A failed Kubernetes API call: ``status`` (0 = no answer), ``reason``, ``message``."""

    def __init__(
        self, status: int, reason: str, message: str, retry_after: int | None = None
    ) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def unavailable(self) -> bool:
        return self.status in (0, 429, 500, 502, 503, 504)


class Kube:
    """A namespaced raw-JSON client. Create with :meth:`connect`; close with :meth:`close`."""

    def __init__(self, api_client: Any, namespace: str, timeout: float = 15.0) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.timeout = timeout
        api_client.user_agent = USER_AGENT

    @classmethod
    async def connect(
        cls, kubeconfig: str | None, namespace: str, request_timeout: float = 15.0
    ) -> Kube:
        """From ``kubeconfig`` (a path), else ``$KUBECONFIG``, else the in-cluster account."""
        from kubernetes_asyncio import client, config

        cfg = client.Configuration()
        path = kubeconfig or os.environ.get("KUBECONFIG")
        if path:
            await config.load_kube_config(config_file=path, client_configuration=cfg)
        else:
            config.load_incluster_config(client_configuration=cfg)
        return cls(client.ApiClient(configuration=cfg), namespace, request_timeout)

    async def close(self) -> None:
        await self.api_client.close()

    # ------------------------------------------------------------------ paths
    def jobs_path(self, name: str | None = None) -> str:
        base = f"/apis/batch/v1/namespaces/{self.namespace}/jobs"
        return f"{base}/{name}" if name else base

    def pods_path(self, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{self.namespace}/pods"
        return f"{base}/{name}" if name else base

    def pvcs_path(self, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{self.namespace}/persistentvolumeclaims"
        return f"{base}/{name}" if name else base

    def secrets_path(self, name: str | None = None) -> str:
        base = f"/api/v1/namespaces/{self.namespace}/secrets"
        return f"{base}/{name}" if name else base

    # ------------------------------------------------------------------ requests
    async def _open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        client_timeout: Any = None,
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
                _request_timeout=self.timeout if client_timeout is None else client_timeout,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise KubeError(
                0, "Unavailable", f"the Kubernetes API did not answer: {exc!r}"
            ) from None
        if isinstance(response, tuple):  # some versions return (data, status, headers)
            response = response[0]
        if response.status >= 400:
            raise await _error(response)
        return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        response = await self._open(method, path, query=query, body=body, content_type=content_type)
        try:
            data = await response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise KubeError(
                0, "Unavailable", f"the Kubernetes API answer was cut: {exc!r}"
            ) from None
        finally:
            response.release()
        try:
            value = json.loads(data) if data else {}
        except ValueError:
            raise KubeError(
                502, "BadResponse", "the Kubernetes API answered with non-JSON"
            ) from None
        return value if isinstance(value, dict) else {}

    async def stream(
        self,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[bytes]:
        """The body of a long GET (a watch or a followed log), chunk by chunk."""
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=read_timeout)
        response = await self._open("GET", path, query=query, client_timeout=timeout)
        try:
            async for chunk in response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise KubeError(0, "Unavailable", f"stream cut: {exc!r}") from None
        finally:
            response.close()

    async def lines(
        self,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[bytes]:
        """The body of a long GET, line by line (watch events)."""
        buffer = b""
        async for chunk in self.stream(path, query=query, read_timeout=read_timeout):
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield line
        if buffer.strip():
            yield buffer


async def _error(response: aiohttp.ClientResponse) -> KubeError:
    try:
        raw = await response.read()
        body = json.loads(raw) if raw else {}
    except (TimeoutError, ValueError, aiohttp.ClientError):
        body = {}
    finally:
        response.release()
    if not isinstance(body, dict):
        body = {}
    retry_after = None
    details = body.get("details") if isinstance(body.get("details"), dict) else {}
    if details.get("retryAfterSeconds"):
        retry_after = int(details["retryAfterSeconds"])
    elif response.headers.get("Retry-After", "").isdigit():
        retry_after = int(response.headers["Retry-After"])
    return KubeError(
        response.status,
        str(body.get("reason") or response.reason or ""),
        str(body.get("message") or response.reason or "Kubernetes API error"),
        retry_after,
    )
