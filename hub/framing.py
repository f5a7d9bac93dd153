"""Who may put gpulab's hub-side pages in a frame: nobody.

A page that can be framed by another origin can be click-jacked (an admin tricked into
pressing the dashboard's "cancel job" under a decoy), so every answer of the jobs gateway and
the culler (its API, the admin dashboard, their static files, their error pages) says so twice:
``Content-Security-Policy: frame-ancestors 'none'`` for current browsers and
``X-Frame-Options: DENY`` for older ones. The hub's own pages already send JupyterHub's
``frame-ancestors 'none'``; :func:`gpulab.hub.config.configure` adds ``X-Frame-Options``.

The headers are added by an output transform (:meth:`tornado.web.Application.add_transform`)
rather than by each handler, so a handler added later, ``StaticFileHandler`` and tornado's own
error pages cannot forget them.
"""

from __future__ import annotations

from tornado import httputil, web

__all__ = ["DENY_FRAMING", "DenyFraming", "deny_framing"]

# Header -> value: the one statement of "never framed", shared with the hub's configuration.
DENY_FRAMING: dict[str, str] = {
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
}


class DenyFraming(web.OutputTransform):
    """Adds :data:`DENY_FRAMING` to every response; a handler's own stricter CSP is kept and
    gets ``frame-ancestors 'none'`` appended when it has none."""

    def transform_first_chunk(
        self, status_code: int, headers: httputil.HTTPHeaders, chunk: bytes, finishing: bool
    ) -> tuple[int, httputil.HTTPHeaders, bytes]:
        csp = headers.get("Content-Security-Policy", "")
        if "frame-ancestors" not in csp:
            ancestors = DENY_FRAMING["Content-Security-Policy"]
            headers["Content-Security-Policy"] = f"{csp}; {ancestors}" if csp else ancestors
        headers["X-Frame-Options"] = DENY_FRAMING["X-Frame-Options"]
        return status_code, headers, chunk


def deny_framing(app: web.Application) -> web.Application:
    """``app`` with :class:`DenyFraming` on every answer."""
    app.add_transform(DenyFraming)
    return app
