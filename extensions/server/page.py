"""The jobs web page at ``{base_url}gpulab/jobs`` and its static files.

The page and its script are :mod:`gpulab.jobs_page`, shared with the jobs gateway's own page;
served here it also submits and shows the idle-cull warning, and talks to ``gpulab/api/...``
on this server. It gets only what the browser may know: the XSRF token, the user's name, the
server's image and GPU count.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from gpulab.jobs_page import STATIC_DIR, JobsPage, render_jobs_page

from .framing import NoFraming, NoFramingStaticFileHandler
from .state import SETTINGS_KEY, ExtensionState

__all__ = ["page_handlers"]


class JobsPageHandler(NoFraming, JupyterHandler):
    _track_activity = False

    @property
    def gpulab(self) -> ExtensionState:
        return self.settings[SETTINGS_KEY]

    @web.authenticated
    def get(self) -> None:
        state = self.gpulab
        user = self.current_user
        name = getattr(user, "username", None) or getattr(user, "name", "") or ""
        xsrf = self.xsrf_token
        page = JobsPage(
            api_url=self.base_url + "gpulab/api/",
            static_url=self.base_url + "gpulab/static/",
            xsrf_token=xsrf.decode() if isinstance(xsrf, bytes) else str(xsrf),
            user=name,
            back_url=self.base_url + "lab",
            back_label="Back to JupyterLab",
            server=True,
            image=state.image,
            gpus=state.gpus,
            server_name=state.config.server_name,
            culler=state.culler.configured,
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(render_jobs_page(page))


def page_handlers(base_url: str) -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    p = base_url.rstrip("/") + "/gpulab"
    return [
        (f"{p}/jobs/?", JobsPageHandler),
        (f"{p}/static/(.*)", NoFramingStaticFileHandler, {"path": str(STATIC_DIR)}),
    ]
