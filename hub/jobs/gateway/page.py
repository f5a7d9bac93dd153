"""The gateway's own jobs page: a researcher's jobs with no server running.

``{prefix}jobs/`` (and the service's root, where the hub's links to services point) serves
the page of :mod:`gpulab.jobs_page` that the server extension serves too, without its submit
form and cull warning: the list, a job's detail, its log and its outputs, read from this
gateway's ``api/v1/`` with the browser's OAuth cookie. A browser that is not logged in is sent
through the hub's OAuth login (``HubOAuthenticated``), as on any JupyterHub service page;
``{prefix}oauth_callback`` completes it. Whose jobs are shown is the API's business (another
user's job answers 404 there); the page only carries the requester's name and XSRF token.
Never framed (:func:`gpulab.hub.framing.deny_framing` covers every answer of the app).
"""

from __future__ import annotations

from typing import Any

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from gpulab.jobs_page import STATIC_DIR, JobsPage, render_jobs_page

__all__ = ["page_routes"]


class JobsPageHandler(HubOAuthenticated, web.RequestHandler):
    @property
    def hub_auth(self):  # type: ignore[override]
        return self.settings["hub_auth"]

    @web.authenticated
    def get(self) -> None:
        user = self.current_user or {}
        prefix = self.settings["prefix"]
        token = self.xsrf_token
        page = JobsPage(
            api_url=prefix + "api/v1/",
            static_url=prefix + "static/",
            xsrf_token=token.decode() if isinstance(token, bytes) else str(token),
            user=str(user.get("name", "")),
            back_url=self.hub_auth.hub_host + self.hub_auth.hub_prefix + "home",
            back_label="Back to the hub",
            server=False,
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(render_jobs_page(page))


def page_routes(prefix: str) -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    return [
        (prefix + "?", JobsPageHandler),
        (prefix + "jobs/?", JobsPageHandler),
        (prefix + "static/(.*)", web.StaticFileHandler, {"path": str(STATIC_DIR)}),
    ]
