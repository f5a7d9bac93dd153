"""A small synchronous client for the jobs gateway's REST API (docs/gateway.md).

Used by the `gpulab jobs` command line and the notebook panel. It finds the jobs API and a token
the way researchers work:

- inside a user's server (its kernels and terminals): the server extension's ``gpulab/api/`` on
  that server (``JUPYTERHUB_SERVICE_URL``) with the server's ``JUPYTERHUB_API_TOKEN``, the route
  the jobs page takes too, so every client gets the server's checks (a notebook path that is
  not a file in the server's folder is refused up front, with the same error everywhere);
- on a laptop: the hub URL (``--hub-url`` or ``GPULAB_HUB_URL``) and an API token from the hub's
  token page (``--token`` or ``GPULAB_TOKEN``): the gateway's ``api/v1/`` (the same paths and
  answers, without a server's file checks).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

GATEWAY_PREFIX = "services/jobs-gateway/"
SERVER_API = "gpulab/api"  # the server extension's jobs API, under the server's base URL
PAGE_LIMIT = 500  # the most jobs the gateway answers in one page

# Answers that mean "the gateway (or the proxy in front of it) could not serve this now": a
# restarting gateway or a cut connection. Only calls that are safe to repeat are retried.
TRANSIENT_STATUSES = frozenset({502, 503, 504})
# Pauses between attempts: four attempts over about 3.5 s, enough for a gateway restart behind
# the proxy without making a researcher wait long on a real outage.
RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0)
RETRY_AFTER_MAX = 10.0


class GatewayError(Exception):
    """An answer from the gateway that is not a success, with its problems for people."""

    def __init__(self, status: int, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems or []

    def __str__(self) -> str:
        lines = [f"{self.message} (HTTP {self.status})"]
        for p in self.problems:
            allowed = f" (allowed: {p['allowed']})" if p.get("allowed") else ""
            lines.append(f"  {p.get('field') or '(spec)'}: {p.get('message')}{allowed}")
        return "\n".join(lines)


class ConfigError(Exception):
    """The client does not know where the gateway is or has no token."""


@dataclass(frozen=True)
class ClientConfig:
    gateway_url: str
    token: str
    # The jobs API itself: the gateway's api/v1 (empty: under gateway_url), or inside a server
    # the server extension's gpulab/api, which answers the same paths with the same bodies.
    api_url: str = ""

    @property
    def jobs_api(self) -> str:
        return self.api_url or self.gateway_url + "api/v1"

    @classmethod
    def discover(cls, hub_url: str | None = None, token: str | None = None) -> ClientConfig:
        env = os.environ
        server = server_api_url(env)
        if server and not hub_url and not token and env.get("JUPYTERHUB_API_TOKEN"):
            # Inside a server: through its extension, as the jobs page goes.
            return cls(gateway_url=server + "/", token=env["JUPYTERHUB_API_TOKEN"], api_url=server)
        gateway = env.get("GPULAB_GATEWAY_URL", "")
        token = token or env.get("GPULAB_TOKEN") or env.get("JUPYTERHUB_API_TOKEN", "")
        # An explicit --hub-url wins; else a known gateway; else the hub from the environment.
        hub = hub_url or ("" if gateway else env.get("GPULAB_HUB_URL", ""))
        if hub:
            gateway = locate_gateway(hub, token)
        if not gateway:
            raise ConfigError(
                "where is the hub? pass --hub-url https://hub.example.org "
                "(or set GPULAB_HUB_URL); inside a gpulab server this is set for you"
            )
        if not token:
            raise ConfigError(
                "no API token: create one on the hub's token page (/hub/token) and pass "
                "--token or set GPULAB_TOKEN"
            )
        return cls(gateway_url=gateway.rstrip("/") + "/", token=token)


def server_url(env: Mapping[str, str]) -> str:
    """The base URL of the server this process runs in (its kernels and terminals inherit
    ``JUPYTERHUB_SERVICE_URL``, the address the server listens on; it ends with "/"), or "".
    A server listening on every address is reached on loopback."""
    raw = env.get("JUPYTERHUB_SERVICE_URL", "")
    if not raw.startswith(("http://", "https://")):
        return ""
    parts = urlsplit(raw)
    host = parts.hostname or ""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/", "", ""))


def server_api_url(env: Mapping[str, str]) -> str:
    """The server extension's jobs API of the server this process runs in, or ""."""
    base = server_url(env)
    return base + SERVER_API if base else ""


def locate_gateway(hub_url: str, token: str, timeout: float = 10.0) -> str:
    """The gateway's address, given the hub's. A hub with per-user subdomains serves each
    service on its own origin, which the hub publishes in the service's ``info.public_url``
    (``configure(c)`` sets it; a user's token may read it). Without that, or when the hub
    cannot be asked, the gateway is under the hub's own ``/services/jobs-gateway/``, and a
    wrong token is reported by the first real call."""
    hub = hub_url.rstrip("/")
    fallback = f"{hub}/{GATEWAY_PREFIX}"
    if not token:
        return fallback
    name = GATEWAY_PREFIX.rstrip("/").rsplit("/", 1)[-1]
    try:
        response = httpx.get(
            f"{hub}/hub/api/services/{name}",
            headers={"Authorization": f"token {token}"},
            timeout=timeout,
        )
        info = response.json().get("info") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError, AttributeError):
        return fallback
    public = info.get("public_url") if isinstance(info, dict) else None
    return (
        public
        if isinstance(public, str) and public.startswith(("http://", "https://"))
        else fallback
    )


def new_idempotency_key() -> str:
    """A fresh key for one submit; the gateway makes at most one job per (user, key)."""
    return str(uuid.uuid4())


class GatewayClient:
    """Calls the gateway. Reads, and submits (which always carry an Idempotency-Key), are
    retried on transient failures with the same request, so a retry never makes a 2nd job."""

    def __init__(
        self,
        config: ClientConfig,
        timeout: float = 30.0,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.config = config
        self._retry_delays = tuple(retry_delays)
        self._http = httpx.Client(
            base_url=config.jobs_api,
            headers={"Authorization": f"token {config.token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ calls
    def me(self) -> dict:
        return self._json("GET", "/me")

    def images(self) -> dict:
        """The catalogue's images the caller's groups may use (``{"items": [...]}``)."""
        return self._json("GET", "/images")

    def notify_settings(self) -> dict:
        """Your notification settings and recent deliveries."""
        return self._json("GET", "/notify")

    def set_notify(self, changes: dict) -> dict:
        """Change notification settings (a key left out is kept, None removes it)."""
        return self._json("PUT", "/notify", json=changes)

    def rotate_notify_secret(self) -> dict:
        """A new webhook signing secret (answered once)."""
        return self._json("POST", "/notify/secret")

    def test_notify(self) -> dict:
        """Send a test notification on each configured channel."""
        return self._json("POST", "/notify/test")

    def submit(self, spec: dict | str, idempotency_key: str | None = None) -> dict:
        """Submit a job. Without ``idempotency_key`` a fresh one is made for this call; every
        retry of the call sends the same key, so the gateway answers with the first job."""
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        if isinstance(spec, str):
            headers["Content-Type"] = "application/yaml"
            return self._json("POST", "/jobs", retry=True, content=spec.encode(), headers=headers)
        return self._json("POST", "/jobs", retry=True, json=spec, headers=headers)

    def validate(self, spec: str) -> dict:
        """The gateway's dry run of a submit: ``{valid, problems}`` (schema and policy)."""
        headers = {"Content-Type": "application/yaml"}
        return self._json(
            "POST", "/jobs/validate", retry=True, content=spec.encode(), headers=headers
        )

    def list(self, limit: int | None = None, **filters: Any) -> Iterator[dict]:
        """The jobs visible to the caller that match ``filters``, newest first: at most
        ``limit`` of them (None: all), following the gateway's pages."""
        params = {k: v for k, v in filters.items() if v not in (None, "")}
        left = limit
        while left is None or left > 0:
            if left is not None:
                params["limit"] = min(left, PAGE_LIMIT)
            page = self._json("GET", "/jobs", params=params)
            items = page.get("items", [])
            yield from items if left is None else items[:left]
            if left is not None:
                left -= len(items)
            token = page.get("continue")
            if not token:
                return
            params["continue"] = token

    def get(self, job_id: str) -> dict:
        return self._json("GET", f"/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict:
        return self._json("DELETE", f"/jobs/{job_id}")

    # -- saved definitions and schedules (docs/jobs.md) -------------------------------------
    def define(self, definition: dict) -> dict:
        return self._json("POST", "/definitions", json=definition)

    def definitions(self) -> list[dict]:
        return list(self._json("GET", "/definitions").get("items", []))

    def definition(self, name: str) -> dict:
        return self._json("GET", f"/definitions/{name}")

    def definition_action(self, name: str, action: str) -> dict:
        """``pause``, ``resume`` or ``run-now`` (that one answers the new job)."""
        return self._json("POST", f"/definitions/{name}/{action}")

    def delete_definition(self, name: str) -> dict:
        return self._json("DELETE", f"/definitions/{name}")

    def resubmit(self, job_id: str) -> dict:
        return self._json("POST", f"/jobs/{job_id}/resubmit")

    def outputs(self, job_id: str, run: int | None = None) -> dict:
        """The job's files; ``run``: only that run's of a sweep."""
        params = {"run": run} if run is not None else None
        return self._json("GET", f"/jobs/{job_id}/outputs", params=params)

    def output_url(self, job_id: str, path: str) -> str:
        return self._json("GET", f"/jobs/{job_id}/outputs/{path}", params={"redirect": "0"})["url"]

    def logs(
        self,
        job_id: str,
        follow: bool = False,
        tail: int | None = None,
        rank: int = 0,
        run: int | None = None,
    ) -> Iterator[str]:
        """The job's log; a multi-node job's rank ``rank`` (default rank 0); a sweep's run
        ``run`` (default run 0)."""
        params: dict[str, Any] = {"follow": "1" if follow else "0"}
        if tail is not None:
            params["tail"] = tail
        if rank:
            params["rank"] = rank
        if run is not None:
            params["run"] = run
        timeout = None if follow else self._http.timeout
        with self._http.stream(
            "GET", f"/jobs/{job_id}/logs", params=params, timeout=timeout
        ) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            yield from response.iter_text()

    def download(self, url: str, dest, on_progress=None) -> int:
        """Stream a presigned URL to `dest` (a path); returns bytes written."""
        written = 0
        # Presigned URLs carry their own credential: never send the hub token to S3.
        with httpx.stream("GET", url, timeout=60.0) as response:
            if response.status_code >= 400:
                raise GatewayError(response.status_code, f"download failed: {response.text[:200]}")
            total = int(response.headers.get("Content-Length") or 0)
            with open(dest, "wb") as fh:
                for chunk in response.iter_bytes(65536):
                    fh.write(chunk)
                    written += len(chunk)
                    if on_progress:
                        on_progress(written, total)
        return written

    # ------------------------------------------------------------------ plumbing
    def _json(self, method: str, path: str, retry: bool | None = None, **kwargs: Any) -> Any:
        """One call, repeated on a transient failure when ``retry`` (default: for GETs)."""
        delays = self._retry_delays if (method == "GET" if retry is None else retry) else ()
        for attempt in range(len(delays) + 1):
            last = attempt == len(delays)
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                # Refused, reset or timed out: the request may or may not have arrived.
                if last or not isinstance(exc, httpx.TransportError):
                    raise GatewayError(
                        0, f"cannot reach the jobs API at {self.config.jobs_api}: {exc}"
                    ) from None
                time.sleep(delays[attempt])
                continue
            if response.status_code in TRANSIENT_STATUSES and not last:
                time.sleep(_retry_after(response, delays[attempt]))
                continue
            if response.status_code >= 400:
                raise _error(response)
            return response.json() if response.content else None
        raise AssertionError("unreachable: the last attempt returns or raises")


def _retry_after(response: httpx.Response, default: float) -> float:
    """The server's wait in seconds when it gives one (capped), else ``default``: the
    ``Retry-After`` header, or ``retry_after`` in a JSON error body (the proxy passes on the
    hub's error body while a service is down, but not its headers)."""
    hint: object = response.headers.get("Retry-After")
    if hint is None:
        try:
            body = response.json()
        except ValueError:
            body = None
        hint = body.get("retry_after") if isinstance(body, dict) else None
    try:
        return min(max(float(hint), default), RETRY_AFTER_MAX)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _error(response: httpx.Response) -> GatewayError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code == 401 or response.status_code == 403 and not body:
        message = body.get("error") or "the hub refused this token (is it expired or revoked?)"
    else:
        message = body.get("error") or response.reason_phrase or "request failed"
    return GatewayError(response.status_code, message, body.get("problems"))
