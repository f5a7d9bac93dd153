"""The jobs page, its static files and the ``gpulab/api`` answers are never framed.

A framed jobs page could be click-jacked into cancelling or resubmitting a job. Jupyter's own
handlers already send a ``frame-ancestors`` policy (JupyterHub's single-user server makes it
``'none'``); this adds ``X-Frame-Options: DENY`` for browsers that ignore CSP, and
``frame-ancestors 'none'`` where a handler (``StaticFileHandler``) sends no policy at all.
"""

from __future__ import annotations

from typing import Any

from tornado import web

__all__ = ["NoFraming", "NoFramingStaticFileHandler"]

FRAME_ANCESTORS = "frame-ancestors 'none'"


class NoFraming:
    """Mixin for a tornado handler (list it before the handler class)."""

    def set_default_headers(self: Any) -> None:
        super().set_default_headers()  # type: ignore[misc]
        csp = self._headers.get("Content-Security-Policy", "")
        if "frame-ancestors" not in csp:
            self.set_header("Content-Security-Policy", f"{csp}; {FRAME_ANCESTORS}".lstrip("; "))
        self.set_header("X-Frame-Options", "DENY")


class NoFramingStaticFileHandler(NoFraming, web.StaticFileHandler):
    """The jobs page's JS and CSS."""
