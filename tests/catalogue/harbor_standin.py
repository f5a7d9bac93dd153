"""A Harbor v2 stand-in: the part of Harbor's REST API (its swagger, ``api/v2.0/swagger.yaml`` in
goharbor/harbor) that the catalogue uses.

Real HTTP (aiohttp) on 127.0.0.1 and a free port, in its own thread and event loop, so that it
answers while the code under test blocks or waits.

Endpoints (under ``/api/v2.0``):

- ``GET /ping`` -> ``Pong`` (text/plain; no auth, like Harbor)
- ``GET /systeminfo`` -> a minimal SystemInfo (no auth)
- ``GET /users/current`` -> the user (200); 412 ``PRECONDITION`` for a robot account (Harbor
  has no "current user" for robots); 401 for anonymous
- ``GET /projects`` (page, page_size)
- ``GET /projects/{project_name}/repositories`` (page, page_size)
- ``GET /projects/{project_name}/repositories/{repository_name}/artifacts``
  (page, page_size, with_tag, with_label, q=``tags=*`` / ``tags=nil``)
- ``GET /projects/{project_name}/repositories/{repository_name}/artifacts/{reference}``
  (reference: a digest or a tag; with_tag, with_label)

Faithful where the client depends on it:

- ``repository_name`` must be URL-encoded twice (``a/b`` -> ``a%252Fb``), as the swagger says;
  the path is parsed from the raw request path and a once-encoded slash is a 404, like the
  Go router in front of Harbor's handlers.
- Paging: ``page`` from 1, ``page_size`` default 10, ``page_size > 100`` -> 422
  ``UNPROCESSABLE_ENTITY`` (go-swagger's ``maximum: 100`` validation, which Harbor turns into
  its error body). Every list answers ``X-Total-Count`` and, when there is a previous or next
  page, ``Link`` in Harbor's format: ``<path?page=1&page_size=10>; rel="prev" ,
  <path?page=3&page_size=10>; rel="next"`` (query keys sorted, as Go's ``url.Values.Encode``).
- Repository objects are named ``project/repo``; artifact lists show top-level artifacts only
  (an index's children are reachable by digest); an image artifact's ``media_type`` is its
  config media type, an index has ``references`` with platforms and no ``extra_attrs.config``.
- Basic auth is required on everything but ping/systeminfo: 401 with
  ``{"errors": [{"code": "UNAUTHORIZED", "message": "unauthorized"}]}``. Unknown project:
  404 ``NOT_FOUND``.

Anonymous access: projects in ``public`` are readable without credentials (as in Harbor,
anonymous requests see public projects only). With ``anonymous_on_wrong_credentials`` set,
wrong credentials are treated as anonymous instead of 401, as some Harbor setups (an auth
proxy, OIDC mode with basic auth off) do.

:meth:`add_image` takes ``labels`` (the image config's ``Labels``, where gpulab's
``org.gpulab.notebook`` / ``org.gpulab.runner`` live) and :meth:`add_framework_image` adds an
NGC-style image that has none of gpulab's labels.

Knobs for tests: :meth:`add_image` / :meth:`add_index` / :meth:`add_untagged` /
:meth:`add_chart`, ``users`` (username -> password), ``latency`` (seconds before answering),
:meth:`fail` (answer N next requests, or all, with a status and Harbor error body), ``hang``
(never answer until released), and a request log (``requests``, :attr:`count`, :meth:`reset`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

from aiohttp import web

INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
PUSH_TIME = "2024-05-01T10:00:00.000Z"
ROBOT = "robot$gpulab"  # the test robot account (a `$` in the name, as Harbor makes them)
PASSWORD = "s3cr3t-Pa$$w0rd"


def _digest(*parts: Any) -> str:
    return "sha256:" + hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


@dataclass
class Artifact:
    id: int
    digest: str
    media_type: str
    manifest_media_type: str
    type: str = "IMAGE"
    tags: list[str] = field(default_factory=list)
    extra_attrs: dict[str, Any] | None = None
    annotations: dict[str, str] | None = None
    references: list[dict[str, Any]] | None = None
    harbor_labels: list[str] = field(default_factory=list)
    top_level: bool = True


@dataclass
class Repository:
    id: int
    project: str
    name: str  # inside the project
    artifacts: list[Artifact] = field(default_factory=list)


class HarborStandin:
    """The stand-in server (module docstring). ``url`` once started."""

    def __init__(self, users: Mapping[str, str] | None = None) -> None:
        self._initial_users = dict(users or {ROBOT: PASSWORD})
        self.users: dict[str, str] = dict(self._initial_users)
        self.projects: dict[str, dict[str, Repository]] = {}
        self.latency = 0.0
        self._fail_status: int | None = None
        self._fail_left: int | None = None  # None = every request
        self._fail_paths: str | None = None
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._hang: asyncio.Event | None = None
        self.hang = False
        self.send_total_count = True  # False: only Link headers (clients must follow them)
        self.public: set[str] = set()  # projects anonymous requests may read
        self.anonymous_on_wrong_credentials = False
        self.in_flight = 0
        self.max_in_flight = 0
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ seeding

    def _repo(self, project: str, repo: str) -> Repository:
        with self._lock:
            repos = self.projects.setdefault(project, {})
            if repo not in repos:
                repos[repo] = Repository(next(self._ids), project, repo)
            return repos[repo]

    def add_project(self, project: str) -> None:
        with self._lock:
            self.projects.setdefault(project, {})

    def add_image(
        self,
        project: str,
        repo: str,
        tags: Sequence[str],
        *,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        env: Sequence[str] | None = None,
        harbor_labels: Sequence[str] = (),
        os: str = "linux",
        arch: str = "amd64",
        top_level: bool = True,
        salt: Any = None,
    ) -> str:
        """A single-platform image; returns its digest."""
        r = self._repo(project, repo)
        art = Artifact(
            id=next(self._ids),
            digest=_digest(project, repo, list(tags), dict(labels or {}), os, arch, salt),
            media_type=CONFIG_MEDIA_TYPE,
            manifest_media_type=MANIFEST_MEDIA_TYPE,
            tags=list(tags),
            extra_attrs={
                "architecture": arch,
                "os": os,
                "created": "2024-05-01T09:00:00Z",
                "author": "",
                "config": {
                    "Labels": dict(labels) if labels is not None else None,
                    "Env": list(env or ["PATH=/usr/local/bin:/usr/bin:/bin"]),
                    "Cmd": ["start-notebook.sh"],
                },
            },
            annotations=dict(annotations) if annotations else None,
            harbor_labels=list(harbor_labels),
            top_level=top_level,
        )
        with self._lock:
            r.artifacts.append(art)
        return art.digest

    def add_framework_image(self, project: str, repo: str, tags: Sequence[str]) -> str:
        """An NGC-style framework image: Python and PyTorch, CUDA labels, no gpulab labels."""
        return self.add_image(
            project,
            repo,
            tags,
            labels={"com.nvidia.pytorch.version": "2.4.0", "com.nvidia.cuda.version": "12.4.1"},
            env=["PATH=/usr/local/bin:/usr/bin:/bin", "CUDA_VERSION=12.4.1"],
        )

    def add_untagged(self, project: str, repo: str, **kw: Any) -> str:
        return self.add_image(project, repo, [], salt=("untagged", next(self._ids)), **kw)

    def add_chart(self, project: str, repo: str, tags: Sequence[str]) -> str:
        r = self._repo(project, repo)
        art = Artifact(
            id=next(self._ids),
            digest=_digest("chart", project, repo, list(tags)),
            media_type="application/vnd.cncf.helm.config.v1+json",
            manifest_media_type=MANIFEST_MEDIA_TYPE,
            type="CHART",
            tags=list(tags),
            extra_attrs={"apiVersion": "v2", "name": repo, "version": "1.0.0"},
        )
        with self._lock:
            r.artifacts.append(art)
        return art.digest

    def add_index(
        self,
        project: str,
        repo: str,
        tags: Sequence[str],
        children: Sequence[tuple[str, str, Mapping[str, str]]],
        *,
        annotations: Mapping[str, str] | None = None,
        attestation: bool = True,
    ) -> str:
        """A multi-arch index over ``children`` = [(os, arch, labels), ...] (each child an
        untagged image, hidden from lists); with an ``unknown/unknown`` attestation manifest
        first, as buildx pushes it. Returns the index digest."""
        refs = []
        if attestation:
            att = self.add_image(
                project, repo, [], os="unknown", arch="unknown", top_level=False, salt=tags
            )
            refs.append({"os": "unknown", "architecture": "unknown", "digest": att})
        for os, arch, labels in children:
            d = self.add_image(
                project, repo, [], labels=labels, os=os, arch=arch, top_level=False, salt=tags
            )
            refs.append({"os": os, "architecture": arch, "digest": d})
        r = self._repo(project, repo)
        index = Artifact(
            id=next(self._ids),
            digest=_digest("index", project, repo, list(tags)),
            media_type=INDEX_MEDIA_TYPE,
            manifest_media_type=INDEX_MEDIA_TYPE,
            tags=list(tags),
            extra_attrs=None,
            annotations=dict(annotations) if annotations else None,
        )
        index.references = [
            {
                "parent_id": index.id,
                "child_id": 0,
                "child_digest": ref["digest"],
                "platform": {"os": ref["os"], "architecture": ref["architecture"]},
                "urls": None,
                "annotations": None,
            }
            for ref in refs
        ]
        with self._lock:
            r.artifacts.append(index)
        return index.digest

    def add_tag(self, project: str, repo: str, digest: str, tag: str) -> None:
        with self._lock:
            for art in self.projects[project][repo].artifacts:
                if art.digest == digest:
                    art.tags.append(tag)
                    return
        raise KeyError(digest)

    def clear(self) -> None:
        with self._lock:
            self.projects.clear()

    # ------------------------------------------------------------------ knobs

    def fail(
        self, status: int | None, count: int | None = None, path_contains: str | None = None
    ) -> None:
        """Answer the next ``count`` requests (None: all, until ``fail(None)``) whose path
        contains ``path_contains`` with ``status`` and a Harbor error body."""
        with self._lock:
            self._fail_status, self._fail_left, self._fail_paths = status, count, path_contains

    def set_hang(self, hang: bool) -> None:
        """Hold every request (after counting it) until released with ``set_hang(False)``."""
        self.hang = hang
        if not hang and self._loop is not None and self._hang is not None:
            self._loop.call_soon_threadsafe(self._hang.set)
        elif hang and self._loop is not None and self._hang is not None:
            self._loop.call_soon_threadsafe(self._hang.clear)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no request is being answered (leftovers of a previous test's latency)."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            time.sleep(0.01)

    @property
    def count(self) -> int:
        return len(self.requests)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0
            self._fail_status, self._fail_left, self._fail_paths = None, None, None
        self.latency = 0.0
        self.send_total_count = True
        self.public = set()
        self.anonymous_on_wrong_credentials = False
        self.users = dict(self._initial_users)  # a test may have rotated a secret
        self.set_hang(False)

    # ------------------------------------------------------------------ HTTP

    @staticmethod
    def _error(status: int, code: str, message: str) -> web.Response:
        return web.json_response(
            {"errors": [{"code": code, "message": message}]},
            status=status,
            headers={"X-Request-Id": "standin"},
        )

    def _principal(self, request: web.Request) -> str | None:
        """The user the request authenticates as; None for anonymous."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return None
        return user if user in self.users and self.users[user] == password else None

    def _wrong_credentials(self, request: web.Request) -> bool:
        return "Authorization" in request.headers and self._principal(request) is None

    @staticmethod
    def _paging(request: web.Request) -> tuple[int, int] | web.Response:
        try:
            page = int(request.query.get("page", "1"))
            size = int(request.query.get("page_size", "10"))
        except ValueError:
            return HarborStandin._error(
                422,
                "UNPROCESSABLE_ENTITY",
                "validation failure list:\npage in query must be of type int64",
            )
        if size > 100:
            return HarborStandin._error(
                422,
                "UNPROCESSABLE_ENTITY",
                "validation failure list:\npage_size in query should be less than or equal to 100",
            )
        return max(page, 1), (size if size > 0 else 10)

    def _paged(self, request: web.Request, items: list[Any], page: int, size: int) -> web.Response:
        total = len(items)
        body = items[(page - 1) * size : page * size]
        links = []
        raw_path = request.raw_path.split("?", 1)[0]

        def link(p: int, rel: str) -> str:
            q = {k: v for k, v in request.query.items()}
            q["page"] = str(p)
            q["page_size"] = str(size)
            return f'<{raw_path}?{urlencode(sorted(q.items()))}>; rel="{rel}"'

        if page > 1 and (page - 1) * size < total:
            links.append(link(page - 1, "prev"))
        if page * size < total:
            links.append(link(page + 1, "next"))
        headers = {"X-Request-Id": "standin"}
        if self.send_total_count:
            headers["X-Total-Count"] = str(total)
        if links:
            headers["Link"] = " , ".join(links)
        return web.json_response(body, headers=headers)

    def _artifact_json(
        self, repo: Repository, art: Artifact, with_tag: bool, with_label: bool
    ) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": art.id,
            "type": art.type,
            "media_type": art.media_type,
            "manifest_media_type": art.manifest_media_type,
            "project_id": 1,
            "repository_id": repo.id,
            "digest": art.digest,
            "size": 1234567,
            "push_time": PUSH_TIME,
            "pull_time": "0001-01-01T00:00:00.000Z",
            "extra_attrs": art.extra_attrs,
            "annotations": art.annotations,
            "references": art.references,
            "icon": "sha256:0048162a053eef4d4ce3fe7518615bef084403614f8bca43b40ae2e762e11e06",
            "addition_links": {
                "vulnerabilities": {
                    "absolute": False,
                    "href": f"/api/v2.0/projects/{repo.project}/repositories/x/artifacts/{art.digest}/additions/vulnerabilities",
                }
            },
        }
        if with_tag and art.tags:
            out["tags"] = [
                {
                    "id": art.id * 1000 + n,
                    "repository_id": repo.id,
                    "artifact_id": art.id,
                    "name": t,
                    "push_time": PUSH_TIME,
                    "pull_time": "0001-01-01T00:00:00.000Z",
                    "immutable": False,
                }
                for n, t in enumerate(art.tags)
            ]
        if with_label and art.harbor_labels:
            out["labels"] = [
                {"id": n + 1, "name": name, "scope": "g", "color": "#0065AB", "project_id": 0}
                for n, name in enumerate(art.harbor_labels)
            ]
        return out

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            self.requests.append(request.raw_path)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        if self.latency:
            await asyncio.sleep(self.latency)
        if self.hang and self._hang is not None:
            await self._hang.wait()
        raw = request.raw_path.split("?", 1)[0]
        if not raw.startswith("/api/v2.0/"):
            return self._error(404, "NOT_FOUND", "not found")
        segments = [unquote(s) for s in raw[len("/api/v2.0/") :].split("/")]
        if segments == ["ping"]:
            return web.Response(text="Pong")
        if segments == ["systeminfo"]:
            return web.json_response({"harbor_version": "v2.11.0-standin", "auth_mode": "db_auth"})
        with self._lock:
            status = self._fail_status
            failing = status is not None and (
                self._fail_paths is None or self._fail_paths in request.raw_path
            )
            if failing and self._fail_left is not None:
                self._fail_left -= 1
                if self._fail_left <= 0:
                    self._fail_status = None
        if failing and status is not None:
            code = {500: "INTERNAL_SERVER_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE"}
            return self._error(status, code.get(status, "UNKNOWN"), "injected failure")
        user = self._principal(request)
        if user is None and self._wrong_credentials(request):
            if not self.anonymous_on_wrong_credentials:
                return self._error(401, "UNAUTHORIZED", "unauthorized")
        if segments == ["users", "current"]:
            if user is None:
                return self._error(401, "UNAUTHORIZED", "unauthorized")
            if user.startswith("robot$"):
                return self._error(
                    412, "PRECONDITION", "get current user not available for security context"
                )
            return web.json_response({"user_id": 3, "username": user})
        if user is None:
            if not self.public:
                return self._error(401, "UNAUTHORIZED", "unauthorized")
            if len(segments) >= 2 and segments[0] == "projects" and segments[1] not in self.public:
                return self._error(403, "FORBIDDEN", "forbidden")
        return self._route(request, segments, anonymous=user is None)

    def _route(
        self, request: web.Request, seg: list[str], *, anonymous: bool = False
    ) -> web.Response:
        q = request.query
        with_tag = q.get("with_tag", "true") != "false"
        with_label = q.get("with_label", "false") == "true"
        if seg == ["projects"]:
            paging = self._paging(request)
            if isinstance(paging, web.Response):
                return paging
            with self._lock:
                items = [
                    {
                        "project_id": n + 1,
                        "name": name,
                        "metadata": {"public": str(name in self.public).lower()},
                    }
                    for n, name in enumerate(sorted(self.projects))
                    if not anonymous or name in self.public
                ]
            return self._paged(request, items, *paging)
        if len(seg) < 3 or seg[0] != "projects" or seg[2] != "repositories":
            return self._error(404, "NOT_FOUND", "not found")
        project = seg[1]
        with self._lock:
            repos = self.projects.get(project)
        if repos is None:
            return self._error(404, "NOT_FOUND", f"project {project} not found")
        if len(seg) == 3:
            paging = self._paging(request)
            if isinstance(paging, web.Response):
                return paging
            with self._lock:
                items = [
                    {
                        "id": r.id,
                        "project_id": 1,
                        "name": f"{project}/{r.name}",
                        "artifact_count": sum(a.top_level for a in r.artifacts),
                        "pull_count": 0,
                        "creation_time": PUSH_TIME,
                        "update_time": PUSH_TIME,
                    }
                    for r in sorted(repos.values(), key=lambda r: r.name)
                ]
            return self._paged(request, items, *paging)
        # seg[3] was decoded once: it is still encoded once ("a%2Fb"); a slash here means the
        # client encoded only once, which Harbor's router does not match.
        if "/" in seg[3] or len(seg) < 5 or seg[4] != "artifacts":
            return self._error(404, "NOT_FOUND", "not found")
        repo = repos.get(unquote(seg[3]))
        if repo is None:
            return self._error(
                404, "NOT_FOUND", f"repository {project}/{unquote(seg[3])} not found"
            )
        if len(seg) == 5:
            paging = self._paging(request)
            if isinstance(paging, web.Response):
                return paging
            query = q.get("q", "")
            with self._lock:
                arts = [a for a in repo.artifacts if a.top_level]
            if query == "tags=*":
                arts = [a for a in arts if a.tags]
            elif query == "tags=nil":
                arts = [a for a in arts if not a.tags]
            arts = sorted(arts, key=lambda a: -a.id)  # newest first, as Harbor sorts by push time
            items = [self._artifact_json(repo, a, with_tag, with_label) for a in arts]
            return self._paged(request, items, *paging)
        if len(seg) == 6:
            ref = seg[5]
            with self._lock:
                for a in repo.artifacts:
                    if a.digest == ref or ref in a.tags:
                        return web.json_response(
                            self._artifact_json(repo, a, with_tag, with_label),
                            headers={"X-Request-Id": "standin"},
                        )
            return self._error(404, "NOT_FOUND", f"artifact {project}/{repo.name}@{ref} not found")
        return self._error(404, "NOT_FOUND", "not found")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Serve in a background thread; returns the base URL (``http://127.0.0.1:PORT``)."""
        started = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # surfaced by start()
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, name="harbor-standin", daemon=True)
        self._thread.start()
        started.wait(10)
        if errors:
            raise errors[0]
        return self.url

    async def _serve(self) -> None:
        self._hang = asyncio.Event()
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self.set_hang(False)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None
