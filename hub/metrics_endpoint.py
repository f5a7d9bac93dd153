"""``GET <prefix>metrics`` of gpulab's services, protected as JupyterHub's ``/hub/metrics`` is.

JupyterHub lets a request read its metrics when its token carries the ``read:metrics`` scope
(``c.JupyterHub.authenticate_prometheus``, on by default). The gateway and the culler do the
same with the hub's own answer for the token (``GET /hub/api/user``, cached by ``HubAuth``):

* ``Authorization: Bearer <token>`` (or ``token <token>``), the way Prometheus sends one; a
  token in the URL or a browser cookie is not accepted (a scrape is a machine's request);
* no token, or one the hub does not know: 401; a token without ``read:metrics``: 403;
* the token needs nothing else (not the services' ``access:services`` scope), so the one
  token a Prometheus server uses for ``/hub/metrics`` reads the services' metrics too;
* ``authenticate=False`` (the services' ``authenticate_prometheus`` option) serves anyone.

The answer is the text exposition format of the default registry (process-wide metrics) plus
the service's own registry (gauges computed from its caches at scrape time).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from jupyterhub.services.auth import HubAuth
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from tornado import web

__all__ = ["METRICS_SCOPE", "MetricsHandler", "metrics_route"]

log = logging.getLogger("gpulab.metrics")

METRICS_SCOPE = "read:metrics"


class _Both:
    """The default registry followed by a service's own (what ``generate_latest`` reads)."""

    def __init__(self, *registries: CollectorRegistry) -> None:
        self.registries = registries

    def collect(self) -> Iterator[Metric]:
        for registry in self.registries:
            yield from registry.collect()


class MetricsHandler(web.RequestHandler):
    """Prometheus' scrape of one service (module docstring)."""

    def initialize(
        self,
        hub_auth: HubAuth,
        registry: CollectorRegistry | None = None,
        authenticate: bool = True,
    ) -> None:
        self.hub_auth = hub_auth
        self.registry = registry
        self.authenticate = authenticate

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Content-Type-Options", "nosniff")

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = getattr(exc, "log_message", None) or self._reason
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code}: {message}\n")

    async def _check(self) -> None:
        match = self.hub_auth.auth_header_pat.match(self.request.headers.get("Authorization", ""))
        token = match.group(1).strip() if match else ""
        if not token:
            self.set_header("WWW-Authenticate", "Bearer")
            raise web.HTTPError(401, f"send a hub API token with the scope {METRICS_SCOPE!r}")
        try:
            model = await self.hub_auth.user_for_token(token, sync=False)
        except web.HTTPError:
            raise web.HTTPError(503, "the hub did not answer; retry shortly") from None
        if not model:
            self.set_header("WWW-Authenticate", "Bearer")
            raise web.HTTPError(401, "the hub does not know this token")
        if METRICS_SCOPE not in set(model.get("scopes") or ()):
            raise web.HTTPError(403, f"access to metrics requires the scope {METRICS_SCOPE!r}")

    async def get(self) -> None:
        if self.authenticate:
            await self._check()
        registries = [REGISTRY] + ([self.registry] if self.registry is not None else [])
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(_Both(*registries)))  # type: ignore[arg-type]


def metrics_route(
    prefix: str,
    hub_auth: HubAuth,
    registry: CollectorRegistry | None,
    authenticate: bool = True,
) -> tuple[str, type, dict[str, Any]]:
    """The route a service adds (before its catch-all): ``<prefix>metrics``."""
    return (
        prefix.rstrip("/") + "/metrics",
        MetricsHandler,
        {"hub_auth": hub_auth, "registry": registry, "authenticate": authenticate},
    )
