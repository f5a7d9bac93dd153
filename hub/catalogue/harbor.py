"""A small async Harbor v2 client: just what the catalogue needs (docs/catalogue.md says why
this is not ``harborapi``).

Flow of :meth:`HarborSource.fetch`: for each configured project (or every project the robot
account sees), list its repositories; for each repository list its artifacts with tags and
labels; for a multi-arch index read the linux/amd64 child by digest. Lists are paged with
``page_size`` ≤ 100: the first page's ``X-Total-Count`` tells how many pages there are and the
rest are fetched concurrently; without that header the ``Link: <...>; rel="next"`` chain is
followed. Every request goes through one ``asyncio.Semaphore`` (``concurrency``), has its own
timeout, and the whole fetch has an overall deadline.

Before listing, a source configured with credentials asks Harbor who it is
(``GET /users/current``): Harbor treats wrong credentials as anonymous on some setups, and an
anonymous catalogue with ``projects: []`` would silently list only public images. A 401 there
is a :class:`CatalogueError` (``UNAUTHORIZED``) saying so, which the cache reports as a
misconfiguration while it keeps the last good list; 200 (a user) and 412 (a robot account: Harbor has no "current user" for robots,
but it did recognise one) are fine.

Errors become :class:`CatalogueError` with Harbor's error code and message
(``{"errors": [{"code": ..., "message": ...}]}``); credentials never appear in messages.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from .model import CatalogueError, Image, images_from_artifact, is_index, pick_platform_child

__all__ = ["HarborSource", "encode_repository", "parse_link_next"]

log = logging.getLogger("gpulab.catalogue.harbor")

API = "/api/v2.0"
MAX_PAGE_SIZE = 100  # the swagger's `maximum: 100` for page_size
_LINK_RE = re.compile(r"<([^>]*)>\s*;\s*rel=\"?([a-zA-Z]+)\"?")


def encode_repository(name: str) -> str:
    """A repository name as a path parameter: URL-encoded twice, as the swagger says
    (``a/b`` -> ``a%2Fb`` -> ``a%252Fb``)."""
    return quote(quote(name, safe=""), safe="")


def parse_link_next(link: str | None) -> str | None:
    """The ``rel="next"`` URL of a Harbor ``Link`` header
    (``</api/v2.0/...?page=1&page_size=10>; rel="prev" , </api/v2.0/...?page=3>; rel="next"``)."""
    for url, rel in _LINK_RE.findall(link or ""):
        if rel.lower() == "next":
            return url
    return None


async def _all(coros: Any) -> list[Any]:
    """Run concurrently; on the first failure cancel the others and raise that failure (a
    :class:`CatalogueError` when there is one)."""
    tasks: list[asyncio.Task[Any]] = []
    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(c) for c in coros]
    except BaseExceptionGroup as group:
        raise _first_error(group) from None
    return [t.result() for t in tasks]


def _first_error(group: BaseExceptionGroup[Any]) -> BaseException:
    flat: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            flat.append(exc)
    for exc in flat:
        if isinstance(exc, CatalogueError):
            return exc
    return flat[0] if flat else group


def _harbor_error(resp: httpx.Response) -> tuple[str | None, str | None]:
    try:
        body = resp.json()
    except ValueError:
        return None, None
    errors = body.get("errors") if isinstance(body, Mapping) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], Mapping):
        code, message = errors[0].get("code"), errors[0].get("message")
        return (str(code) if code else None), (str(message)[:300] if message else None)
    return None, None


class HarborSource:
    """Reads the catalogue from Harbor. One ``httpx.AsyncClient`` per fetch (a fetch every few
    minutes; nothing is bound to an event loop between fetches).

    ``registry`` is the host in image references (default: the host of ``url``). ``projects``
    empty means every project the account can see. ``requests`` counts HTTP requests made."""

    def __init__(
        self,
        url: str,
        *,
        projects: Sequence[str] = (),
        username: str | None = None,
        password: str | None = None,
        registry: str | None = None,
        verify_tls: bool = True,
        timeout_seconds: float = 10.0,
        overall_timeout_seconds: float = 120.0,
        concurrency: int = 8,
        page_size: int = MAX_PAGE_SIZE,
        platform: tuple[str, str] = ("linux", "amd64"),
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"harbor url {url!r}: expected http(s)://host[:port]")
        # credentials only from username/password; any user-info in the URL is dropped
        netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
        self.url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self.registry = registry or netloc
        self.projects = tuple(projects)
        self._auth = httpx.BasicAuth(username, password) if username and password else None
        self._secret = password or None
        self.verify_tls = verify_tls
        self.timeout_seconds = timeout_seconds
        self.overall_timeout_seconds = overall_timeout_seconds
        self.concurrency = max(1, concurrency)
        self.page_size = max(1, min(page_size, MAX_PAGE_SIZE))
        self.platform = platform
        self._transport = transport
        self.requests = 0

    def __repr__(self) -> str:  # never shows the password
        return f"HarborSource({self.url!r}, projects={list(self.projects)!r})"

    @property
    def description(self) -> str:
        return f"Harbor {self.url} projects={','.join(self.projects) or '*'}"

    # ------------------------------------------------------------------ HTTP

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "***") if self._secret else text

    async def _get(
        self, client: httpx.AsyncClient, sem: asyncio.Semaphore, path: str, params: Any = None
    ) -> httpx.Response:
        """GET ``path`` (relative to the Harbor base URL, already encoded); raise CatalogueError
        unless 2xx."""
        async with sem:
            self.requests += 1
            try:
                resp = await client.get(path, params=params)
            except httpx.TimeoutException as exc:
                raise CatalogueError(
                    f"Harbor request timed out after {self.timeout_seconds:g} s: GET {path}",
                    code="TIMEOUT",
                ) from exc
            except httpx.HTTPError as exc:
                raise CatalogueError(
                    self._redact(f"Harbor unreachable at {self.url}: {type(exc).__name__}: {exc}"),
                    code="UNREACHABLE",
                ) from exc
        if resp.status_code >= 400:
            code, message = _harbor_error(resp)
            what = f"{code}: {message}" if code or message else resp.reason_phrase
            raise CatalogueError(
                self._redact(f"Harbor answered {resp.status_code} {what} (GET {path})"),
                code=code or f"HTTP_{resp.status_code}",
                status=resp.status_code,
            )
        return resp

    @staticmethod
    def _json_list(resp: httpx.Response, path: str) -> list[dict[str, Any]]:
        try:
            body = resp.json()
        except ValueError as exc:
            raise CatalogueError(
                f"Harbor sent a non-JSON answer to GET {path}", code="BAD_RESPONSE"
            ) from exc
        if not isinstance(body, list):
            raise CatalogueError(f"Harbor sent {type(body).__name__}, not a list, to GET {path}")
        return [item for item in body if isinstance(item, dict)]

    async def _list_all(
        self,
        client: httpx.AsyncClient,
        sem: asyncio.Semaphore,
        path: str,
        params: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Every item of a paged list: page 1, then the other pages concurrently (from
        ``X-Total-Count``), or the ``Link`` chain when the count is missing."""
        base = {**(params or {}), "page_size": self.page_size}
        first = await self._get(client, sem, path, {**base, "page": 1})
        items = self._json_list(first, path)
        total_header = first.headers.get("X-Total-Count")
        try:
            total = int(total_header) if total_header is not None else None
        except ValueError:
            total = None
        if total is not None:
            pages = math.ceil(total / self.page_size)
            if pages > 1:
                rest = await _all(
                    self._get(client, sem, path, {**base, "page": p}) for p in range(2, pages + 1)
                )
                for resp in rest:
                    items.extend(self._json_list(resp, path))
            return items
        next_url = parse_link_next(first.headers.get("Link"))
        seen = set()
        while next_url and next_url not in seen:
            seen.add(next_url)
            resp = await self._get(client, sem, next_url)
            items.extend(self._json_list(resp, path))
            next_url = parse_link_next(resp.headers.get("Link"))
        return items

    # ------------------------------------------------------------------ the flow

    async def _check_identity(self, client: httpx.AsyncClient, sem: asyncio.Semaphore) -> None:
        """Raise ``UNAUTHORIZED`` when Harbor does not recognise the configured credentials."""
        if self._auth is None:
            return  # anonymous by configuration: public images are what the admin asked for
        try:
            await self._get(client, sem, f"{API}/users/current")
        except CatalogueError as exc:
            if exc.status == 401:
                raise CatalogueError(
                    f"{exc.message}: Harbor does not recognise the configured credentials "
                    "(some Harbor setups treat wrong credentials as anonymous, which lists "
                    "public images only); check catalogue.harbor's username/password variables",
                    code=exc.code or "UNAUTHORIZED",
                    status=401,
                ) from None
            if exc.status not in (403, 412):  # 412: a robot account, recognised
                raise

    async def _projects(self, client: httpx.AsyncClient, sem: asyncio.Semaphore) -> list[str]:
        if self.projects:
            return list(self.projects)
        items = await self._list_all(client, sem, f"{API}/projects")
        return [str(p["name"]) for p in items if p.get("name")]

    async def _repository(
        self, client: httpx.AsyncClient, sem: asyncio.Semaphore, project: str, repo: str
    ) -> list[Image]:
        path = f"{API}/projects/{quote(project, safe='')}/repositories/{encode_repository(repo)}"
        try:
            artifacts = await self._list_all(
                client,
                sem,
                f"{path}/artifacts",
                {"with_tag": "true", "with_label": "true"},
            )
        except CatalogueError as exc:
            if exc.status == 404:  # deleted between the two lists
                log.debug("repository %s/%s vanished while reading the catalogue", project, repo)
                return []
            raise

        async def one(artifact: dict[str, Any]) -> list[Image]:
            if not artifact.get("tags"):
                return []  # untagged: nothing to offer, and no need to look at children
            child = None
            if is_index(artifact) and not (artifact.get("extra_attrs") or {}).get("config"):
                picked = pick_platform_child(artifact.get("references"), *self.platform)
                if picked is not None:
                    resp = await self._get(
                        client, sem, f"{path}/artifacts/{picked[0]}", {"with_tag": "false"}
                    )
                    try:
                        body = resp.json()
                    except ValueError:
                        body = None
                    child = body if isinstance(body, dict) else None
            return images_from_artifact(
                artifact, registry=self.registry, project=project, repository=repo, child=child
            )

        per_artifact = await _all(one(a) for a in artifacts)
        return [img for imgs in per_artifact for img in imgs]

    async def _project(
        self, client: httpx.AsyncClient, sem: asyncio.Semaphore, project: str
    ) -> list[Image]:
        repos = await self._list_all(
            client, sem, f"{API}/projects/{quote(project, safe='')}/repositories"
        )
        names = []
        prefix = f"{project}/"
        for repo in repos:
            name = repo.get("name")
            if isinstance(name, str) and name.startswith(prefix):
                names.append(name[len(prefix) :])  # Harbor names repositories "project/repo"
        per_repo = await _all(self._repository(client, sem, project, n) for n in names)
        return [img for imgs in per_repo for img in imgs]

    async def identity_problem(self) -> str | None:
        """Why Harbor does not recognise the configured credentials (``/users/current``
        answered 401), or None: recognised, anonymous by configuration, or Harbor not
        answering (that is the catalogue's load error, not a configuration problem)."""
        try:
            async with self._client() as client:
                await self._check_identity(client, asyncio.Semaphore(1))
        except CatalogueError as exc:
            return exc.message if exc.status == 401 else None
        return None

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url,
            auth=self._auth,
            timeout=httpx.Timeout(self.timeout_seconds),
            limits=httpx.Limits(
                max_connections=self.concurrency, max_keepalive_connections=self.concurrency
            ),
            verify=self.verify_tls,
            transport=self._transport,
            headers={"Accept": "application/json", "User-Agent": "gpulab-catalogue"},
            follow_redirects=False,
        )

    async def fetch(self) -> list[Image]:
        """The whole catalogue, sorted by reference. Raises :class:`CatalogueError`."""
        sem = asyncio.Semaphore(self.concurrency)
        try:
            async with asyncio.timeout(self.overall_timeout_seconds), self._client() as client:
                await self._check_identity(client, sem)
                projects = await self._projects(client, sem)
                per_project = await _all(self._project(client, sem, p) for p in projects)
        except TimeoutError as exc:
            raise CatalogueError(
                f"reading the catalogue from {self.url} took longer than "
                f"{self.overall_timeout_seconds:g} s",
                code="TIMEOUT",
            ) from exc
        images = {img.reference: img for imgs in per_project for img in imgs}
        return sorted(images.values(), key=lambda i: i.reference)
