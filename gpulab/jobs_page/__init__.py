"""The jobs page both the server extension and the jobs gateway serve (one template, one script).

Inside a server (``{base_url}gpulab/jobs``) the page also submits and shows the idle-cull
warning; served by the jobs gateway (no server needed) it lists, shows, follows logs and
fetches outputs. Which parts appear is the caller's :class:`JobsPage`; the page's script reads
the same JSON API under ``api_url`` either way (the extension's ``gpulab/api/`` mirrors the
gateway's ``api/v1/``).

It lives in the ``gpulab`` root package because the hub must not import the notebook side
(``tests/test_layering.py``) and the notebook side should not carry hub modules: both import
this one, which imports nothing else of gpulab.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

import jinja2

__all__ = ["STATIC_DIR", "JobsPage", "render_jobs_page", "static_version"]

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(HERE / "templates")),
    autoescape=jinja2.select_autoescape(["html"]),
)


@dataclass(frozen=True)
class JobsPage:
    """What one rendering of the page knows: only what the browser may know."""

    api_url: str  # where the JSON API is: ends with "/"
    static_url: str  # where STATIC_DIR is served: ends with "/"
    xsrf_token: str
    user: str
    back_url: str  # the "back" link: JupyterLab, or the hub's home
    back_label: str
    server: bool  # served by the user's server: submit form and cull warning too
    image: str = ""
    gpus: int = 0
    server_name: str = ""
    culler: bool = False  # the server knows the culler: show its warning

    def script_config(self) -> dict[str, object]:
        """The JSON the script reads (``apiUrl``, ``xsrfToken``, ...)."""
        fields = asdict(self)
        return {
            "apiUrl": fields["api_url"],
            "xsrfToken": fields["xsrf_token"],
            "user": fields["user"],
            "server": fields["server"],
            "serverName": fields["server_name"],
            "image": fields["image"],
            "gpus": fields["gpus"],
            "culler": fields["culler"],
        }


@cache
def static_version() -> str:
    """A hash of the static files, appended to their URLs so a new version is fetched."""
    h = hashlib.sha256()
    for f in sorted(STATIC_DIR.glob("*")):
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def render_jobs_page(page: JobsPage) -> str:
    return _env.get_template("jobs.html").render(
        page=page,
        config_json=json.dumps(page.script_config()).replace("</", "<\\/"),
        version=static_version(),
    )
