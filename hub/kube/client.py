"""One async client for gpulab's own Kubernetes API calls: raw JSON over kubernetes_asyncio.

Raw JSON (``_preload_content=False``) instead of the generated models: the gateway's cache
holds tens of thousands of Jobs, and model (de)serialisation would cost more than the rest of a
request, and every caller works on plain dicts anyway.

* :func:`load_configuration` finds the cluster: a kubeconfig path (given, else ``$KUBECONFIG``),
  else the in-cluster service account, else ``~/.kube/config``. File reads run in a worker
  thread: services call this from their event loop.
* :class:`KubeClient` makes the calls: get, list (paginated), create, patch (merge, strategic,
  json), delete, and streams (watch events, followed logs). It either owns its ApiClient
  (:meth:`KubeClient.connect`) or borrows one (:meth:`KubeClient.of`, e.g. KubeSpawner's, so
  that the hub's kubeconfig and user agent apply).
* :class:`KubeError` is the only error: a failed call, an unreachable API (status 0), a cut
  stream, a watch ``ERROR`` event (its code, e.g. 410) and a missing configuration alike.
* :class:`Retry` is how a client repeats a call that failed for a transient reason (no answer,
  429, 500, 502, 503, 504): only calls that are safe to repeat (reads, deletes, puts, merge
  patches, and creates of a *named* object), with jittered exponential backoff that honours
  ``Retry-After``, within a bound on tries and on total time. A retried create answered 409
  AlreadyExists is recognised as ours (its first try made the object, its answer was lost)
  when the object there carries every label and owner the create sent; then it is returned.
  Clients retry nothing unless given a :class:`Retry` (the gateway is).

Every service passes its own User-Agent so that audit logs (and the RBAC tests, which filter
kubesim's audit log by it) can tell the services' calls apart.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self

import aiohttp

__all__ = [
    "KubeClient",
    "KubeError",
    "Obj",
    "NO_RETRY",
    "PatchKind",
    "Retry",
    "load_configuration",
]

Obj = dict[str, Any]
Query = Mapping[str, Any] | None
PatchKind = Literal["merge", "strategic", "json"]

_PATCH_TYPES: dict[str, str] = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
}
DEFAULT_PAGE_SIZE = 500
DEFAULT_KUBECONFIG = "~/.kube/config"


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
        """Worth retrying later: no answer, throttled, or a server-side failure."""
        return self.status in (0, 429, 500, 502, 503, 504)


@dataclass(frozen=True)
class Retry:
    """How often and how long a transient failure is retried: at most ``attempts`` tries, and
    no new try once ``budget`` seconds (from the first try, waits included) would be exceeded,
    so a caller learns of an outage within about ``budget`` plus one request timeout."""

    attempts: int = 1
    budget: float = 0.0
    first_delay: float = 0.1  # the first pause; doubled per try, jittered to 50-100 %
    max_delay: float = 1.0

    def delay(self, tries: int, retry_after: int | None, rng: random.Random) -> float:
        """The pause after ``tries`` failed tries: at least the server's Retry-After."""
        backoff = min(self.max_delay, self.first_delay * 2 ** (tries - 1))
        return max(float(retry_after or 0), backoff * rng.uniform(0.5, 1.0))


NO_RETRY = Retry()


def _safe_to_repeat(method: str, body: Any, content_type: str) -> bool:
    """Whether repeating the request cannot do more than doing it once: reads, deletes, puts,
    merge patches (they set values), and a create that names its object (a second create of
    the same name is refused, never a second object). Not: JSON patches, ``generateName``
    creates, POSTs to subresources and reviews (no name of their own)."""
    if method in ("GET", "HEAD", "PUT", "DELETE"):
        return True
    if method == "PATCH":
        return content_type != _PATCH_TYPES["json"]
    if method == "POST" and isinstance(body, dict):
        meta = body.get("metadata") or {}
        return bool(meta.get("name")) and not meta.get("generateName")
    return False


def _is_ours(sent: Obj, found: Obj) -> bool:
    """Whether ``found`` is the object a create of ``sent`` made: it carries every label and
    every owner (uid) ``sent`` had. A create that sent neither cannot be told apart: False."""
    sent_meta, found_meta = sent.get("metadata") or {}, found.get("metadata") or {}
    labels = sent_meta.get("labels") or {}
    owners = {o.get("uid") for o in sent_meta.get("ownerReferences") or []}
    if not labels and not owners:
        return False
    found_labels = found_meta.get("labels") or {}
    found_owners = {o.get("uid") for o in found_meta.get("ownerReferences") or []}
    return all(found_labels.get(k) == v for k, v in labels.items()) and owners <= found_owners


def _read_kubeconfig(paths: str) -> Any:
    """The merged kubeconfig of ``paths`` (``:``-separated), None when no file exists."""
    from kubernetes_asyncio.config.kube_config import KubeConfigMerger

    return KubeConfigMerger(paths).config


async def load_configuration(kubeconfig: str | None = None) -> Any:
    """A ``kubernetes_asyncio`` Configuration: ``kubeconfig`` (a path), else ``$KUBECONFIG``,
    else the in-cluster service account, else ``~/.kube/config``; KubeError when none is
    there or it cannot be used."""
    from kubernetes_asyncio import client, config
    from kubernetes_asyncio.config.kube_config import KubeConfigLoader

    cfg = client.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG")
    try:
        if not path and os.environ.get("KUBERNETES_SERVICE_HOST"):
            await asyncio.to_thread(config.load_incluster_config, client_configuration=cfg)
            return cfg
        path = path or DEFAULT_KUBECONFIG  # the merger expands ~
        merged = await asyncio.to_thread(_read_kubeconfig, path)
        if merged is None:
            raise KubeError(
                0,
                "NoConfiguration",
                f"no kubeconfig at {path} and not running in a cluster "
                "(no KUBERNETES_SERVICE_HOST)",
            )
        # config_base_path None: relative certificate paths resolve against each file
        # (the merger records where every entry came from).
        await KubeConfigLoader(config_dict=merged, config_base_path=None).load_and_set(cfg)
    except config.ConfigException as exc:
        raise KubeError(0, "BadConfiguration", str(exc)) from None
    return cfg


class KubeClient:
    """Raw-JSON calls over a ``kubernetes_asyncio`` ApiClient. Paths: :mod:`.paths`."""

    def __init__(
        self,
        api_client: Any,
        *,
        timeout: float = 15.0,
        user_agent: str | None = None,
        owned: bool = False,
        retry: Retry = NO_RETRY,
    ) -> None:
        self.api_client = api_client
        self.timeout = timeout
        self.retry = retry
        self._rng = random.Random()
        self._owned = owned
        if user_agent is not None:
            api_client.user_agent = user_agent

    @classmethod
    async def connect(
        cls,
        kubeconfig: str | None = None,
        *,
        user_agent: str,
        request_timeout: float = 15.0,
        **options: Any,
    ) -> Self:
        """An own ApiClient (see :func:`load_configuration`); close it with :meth:`close`.
        ``options``: what a subclass's constructor takes besides (the gateway's namespace)."""
        from kubernetes_asyncio import client

        api_client = client.ApiClient(configuration=await load_configuration(kubeconfig))
        return cls(
            api_client, timeout=request_timeout, user_agent=user_agent, owned=True, **options
        )

    @classmethod
    def of(cls, api: Any, *, timeout: float = 30.0) -> KubeClient:
        """``api`` itself when it is a KubeClient, else a client borrowing that ApiClient
        (its configuration and user agent unchanged; :meth:`close` leaves it open)."""
        return api if isinstance(api, KubeClient) else cls(api, timeout=timeout)

    async def close(self) -> None:
        if self._owned:
            await self.api_client.close()

    # ------------------------------------------------------------------ requests
    async def _open(
        self, method: str, path: str, query: Query, body: Any, content_type: str, deadline: Any
    ) -> aiohttp.ClientResponse:
        """The response of a request (its body unread); KubeError for an error status."""
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
                _request_timeout=deadline,
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
        query: Query = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        """One call, repeated on a transient failure as :attr:`retry` allows when it is safe to
        repeat (see :class:`Retry`); the last failure is raised."""
        retry = self.retry if _safe_to_repeat(method, body, content_type) else NO_RETRY
        loop = asyncio.get_running_loop()
        started = loop.time()
        tries = 0
        while True:
            tries += 1
            try:
                return await self._request_once(method, path, query, body, content_type)
            except KubeError as exc:
                if exc.status == 409 and tries > 1 and method == "POST":
                    # An earlier try may have made it and lost its answer.
                    found = await self._created_by(path, body)
                    if found is not None:
                        return found
                    raise
                if not exc.unavailable or tries >= retry.attempts:
                    raise
                pause = retry.delay(tries, exc.retry_after, self._rng)
                if loop.time() - started + pause > retry.budget:
                    raise
                await asyncio.sleep(pause)

    async def _created_by(self, collection: str, sent: Obj) -> Obj | None:
        """The object a create of ``sent`` into ``collection`` made, if it is there and ours."""
        name = (sent.get("metadata") or {}).get("name")
        try:
            found = await self._request_once(
                "GET", f"{collection.rstrip('/')}/{name}", None, None, ""
            )
        except KubeError:
            return None
        return found if _is_ours(sent, found) else None

    async def _request_once(
        self, method: str, path: str, query: Query, body: Any, content_type: str
    ) -> Obj:
        response = await self._open(method, path, query, body, content_type, self.timeout)
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

    async def get(self, path: str) -> Obj | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", path)
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    async def list(
        self, path: str, *, page_size: int = DEFAULT_PAGE_SIZE, **query: Any
    ) -> tuple[list[Obj], str]:
        """Every item of a collection, page by page; and the list's resourceVersion (where a
        watch of the same collection starts)."""
        items: list[Obj] = []
        token = None
        while True:
            page = await self.request(
                "GET", path, query={**query, "limit": page_size, "continue": token}
            )
            items.extend(page.get("items") or [])
            meta = page.get("metadata") or {}
            token = meta.get("continue")
            if not token:
                return items, str(meta.get("resourceVersion") or "")

    async def create(self, path: str, body: Obj) -> Obj:
        return await self.request("POST", path, body=body)

    async def patch(self, path: str, body: Any, *, kind: PatchKind = "merge") -> Obj:
        return await self.request("PATCH", path, body=body, content_type=_PATCH_TYPES[kind])

    async def delete(self, path: str, *, propagation: str = "Background") -> Obj | None:
        """Delete (dependents by ``propagation``); None when it was already gone."""
        try:
            return await self.request("DELETE", path, body={"propagationPolicy": propagation})
        except KubeError as e:
            if e.status == 404:
                return None
            raise

    # ------------------------------------------------------------------ streams
    async def stream(
        self,
        path: str,
        *,
        query: Query = None,
        read_timeout: float | None = None,
    ) -> AsyncIterator[bytes]:
        """The body of a long GET (a watch or a followed log), chunk by chunk."""
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=read_timeout)
        response = await self._open("GET", path, query, None, "", timeout)
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
        query: Query = None,
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

    async def watch(
        self,
        path: str,
        resource_version: str,
        *,
        timeout_seconds: int = 300,
        **query: Any,
    ) -> AsyncIterator[tuple[str, Obj]]:
        """``(type, object)`` watch events of a collection from ``resource_version``, bookmarks
        included, until the server ends the watch. A watch ``ERROR`` event raises KubeError
        with its code (410: the version is too old, list again)."""
        params = {
            **query,
            "watch": "1",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": timeout_seconds,
        }
        async for line in self.lines(path, query=params, read_timeout=timeout_seconds + 30):
            try:
                event = json.loads(line)
            except ValueError:
                raise KubeError(502, "BadResponse", "a watch event that is not JSON") from None
            kind = str(event.get("type") or "")
            obj = event.get("object") or {}
            if kind == "ERROR":
                raise KubeError(
                    int(obj.get("code") or 500),
                    str(obj.get("reason") or "WatchError"),
                    str(obj.get("message") or "the watch ended with an error"),
                )
            yield kind, obj

    async def wait_for(
        self,
        collection: str,
        name: str,
        done: Callable[[Obj | None], bool],
        seconds: float,
    ) -> Obj | None:
        """Wait until ``done(obj)`` (``obj`` None once it is gone) for the object ``name`` in
        the list path ``collection``; returns the object (or None). TimeoutError after
        ``seconds``. Lists once, then watches (no polling); lists again when the watch ends."""
        selector = f"metadata.name={name}"
        async with asyncio.timeout(seconds):
            while True:
                items, rv = await self.list(collection, fieldSelector=selector)
                current = items[0] if items else None
                if done(current):
                    return current
                try:
                    async for kind, obj in self.watch(
                        collection, rv, timeout_seconds=60, fieldSelector=selector
                    ):
                        if kind == "BOOKMARK":
                            continue
                        current = None if kind == "DELETED" else obj
                        if done(current):
                            return current
                except KubeError as exc:
                    if not (exc.unavailable or exc.status == 410):
                        raise


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
