"""JSON error answers for API requests the proxy could not deliver.

When a service (the jobs gateway, the culler) or a user's server does not answer, the proxy
(configurable-http-proxy, also in Zero to JupyterHub) asks the hub for an error page: ``GET
/hub/error/<code>?url=<the request's path>`` (JupyterHub's ``ProxyErrorHandler``), and sends
that page's body and Content-Type with ``<code>``. JupyterHub's page is HTML, which API clients
cannot read. For a request to an API path (:func:`is_api_path`) the hub here answers
``application/json`` ``{"status", "message", "error", "retry_after"}`` instead; pages keep
JupyterHub's HTML.

The hook: JupyterHub routes the hub's handlers in order, and only the authenticator's own
handlers (``Authenticator.get_handlers``) come before its default ``/error/<code>`` route
(``JupyterHub.extra_handlers`` come after it, and an error template cannot change the
Content-Type). :func:`with_api_error_pages` gives whatever authenticator is configured this
one extra route; ``configure(c)`` applies it last.

The proxy passes on only the Content-Type (and Content-Encoding) of the hub's answer, so the
``Retry-After`` header set here reaches callers of the hub directly, not through the proxy:
API clients behind the proxy read ``retry_after`` from the body.
"""

from __future__ import annotations

import json
import re
from http.client import responses
from typing import Any
from urllib.parse import urlsplit

from jupyterhub.handlers.pages import ProxyErrorHandler

__all__ = ["RETRY_AFTER", "ApiErrorPages", "error_body", "is_api_path", "with_api_error_pages"]

RETRY_AFTER = 10  # seconds: about what a service or server restart takes

# After the hub's base URL: a service's API, a server's Jupyter API, gpulab's extension API
# (also on named servers; not Jupyter's own pages, whose paths may go on with "api").
_API_PATH = re.compile(
    r"^(services/[^/]+/api(/|$)"
    r"|user/[^/]+/(?:(?!(?:lab|tree|notebooks|edit|files|view|doc|terminals)/)[^/]+/)?"
    r"(?:gpulab/)?api(/|$))"
)


def is_api_path(path: str, base_url: str = "/") -> bool:
    """Whether ``path`` (a request path, maybe with its query) is one of an API, whose callers
    want JSON: ``/services/<name>/api/...``, ``/user/<name>[/<server>]/api/...``,
    ``/user/<name>[/<server>]/gpulab/api/...``, under the hub's ``base_url``."""
    path = urlsplit(path).path
    if not path.startswith(base_url):
        return False
    return bool(_API_PATH.match(path[len(base_url) :]))


def error_body(status: int, path: str) -> dict[str, Any]:
    """The JSON answer for a request to ``path`` the proxy could not deliver with ``status``."""
    what = _what(path)
    if status == 503:
        message = f"{what} is not answering (starting, restarting or stopped); retry shortly"
    elif status == 404:
        message = f"nothing answers at {path[:200]}"
    else:
        message = f"{what}: {responses.get(status, 'error')}"
    return {"status": status, "message": message, "error": message, "retry_after": RETRY_AFTER}


def _what(path: str) -> str:
    parts = urlsplit(path).path.strip("/").split("/")
    for i, part in enumerate(parts[:-1]):
        if part == "services":
            return f"the {parts[i + 1]} service"
        if part == "user":
            return f"{parts[i + 1]}'s server"
    return "the server"


class ApiAwareProxyErrorHandler(ProxyErrorHandler):
    """JupyterHub's proxy error page, as JSON for API paths."""

    async def get(self, status_code_s: str) -> None:
        path = self.get_argument("url", "")
        if not is_api_path(path, self.base_url):
            await super().get(status_code_s)
            return
        status = int(status_code_s)
        body = error_body(status, urlsplit(path).path)
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        if status in (429, 502, 503, 504):
            self.set_header("Retry-After", str(RETRY_AFTER))
        self.finish(json.dumps(body))


class ApiErrorPages:
    """Mixin for an Authenticator: routes ``/hub/error/<code>`` (ahead of JupyterHub's own)
    to :class:`ApiAwareProxyErrorHandler`."""

    def get_handlers(self, app: Any) -> list[tuple[Any, ...]]:
        return [(r"/error/(\d+)", ApiAwareProxyErrorHandler), *super().get_handlers(app)]  # type: ignore[misc]


def with_api_error_pages(authenticator_class: Any) -> type:
    """``authenticator_class`` (a class, an entry-point name such as ``generic-oauth``, a dotted
    path, or None for JupyterHub's default) with :class:`ApiErrorPages`. Its settings still
    apply: traitlets reads a class's config sections along its MRO."""
    from jupyterhub.app import JupyterHub

    trait = JupyterHub.class_traits()["authenticator_class"]
    cls = trait.validate(None, authenticator_class or trait.default_value)
    if issubclass(cls, ApiErrorPages):
        return cls
    return type(cls.__name__, (ApiErrorPages, cls), {"__module__": __name__})
