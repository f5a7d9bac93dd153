"""The jobs web page at ``{base_url}gpulab/jobs`` and its static files (vanilla JS/CSS).

The page gets only what the browser may know: the base URL, the XSRF token, the user's name,
the server's image and GPU count. It talks to ``gpulab/api/...`` on this server.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import jinja2
from jupyter_server.base.handlers import JupyterHandler
from tornado import web

from .framing import NoFraming, NoFramingStaticFileHandler
from .state import SETTINGS_KEY, ExtensionState

__all__ = ["STATIC_DIR", "TEMPLATES_DIR", "page_handlers"]

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    autoescape=jinja2.select_autoescape(["html"]),
)


def _version() -> str:
    h = hashlib.sha256()
    for f in sorted(STATIC_DIR.glob("*")):
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


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
        config: dict[str, Any] = {
            "baseUrl": self.base_url,
            "apiUrl": self.base_url + "gpulab/api/",
            "xsrfToken": xsrf.decode() if isinstance(xsrf, bytes) else str(xsrf),
            "user": name,
            "serverName": state.config.server_name,
            "image": state.image,
            "gpus": state.gpus,
            "gateway": state.gateway.configured,
            "culler": state.culler.configured,
        }
        html = _env.get_template("jobs.html").render(
            config_json=json.dumps(config).replace("</", "<\\/"),
            static_url=self.base_url + "gpulab/static/",
            version=self.settings.setdefault("gpulab_static_version", _version()),
            user=name,
            image=state.image,
            gpus=state.gpus,
            base_url=self.base_url,
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(html)


def page_handlers(base_url: str) -> list[tuple[str, type, dict[str, Any]] | tuple[str, type]]:
    p = base_url.rstrip("/") + "/gpulab"
    return [
        (f"{p}/jobs/?", JobsPageHandler),
        (f"{p}/static/(.*)", NoFramingStaticFileHandler, {"path": str(STATIC_DIR)}),
    ]
