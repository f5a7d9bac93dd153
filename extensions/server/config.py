"""Configuration of the server extension (traitlets: ``c.GPULabExtension.<name>``)."""

from __future__ import annotations

import os

from traitlets import Float, Unicode
from traitlets.config import Configurable

__all__ = ["GPULabExtension"]


def _with_slash(url: str) -> str:
    return url.rstrip("/") + "/" if url else ""


class GPULabExtension(Configurable):
    """gpulab's server extension: jobs API forwarding, activity reporter, kernel reaper."""

    report_interval = Float(
        60.0,
        config=True,
        help="Seconds between two activity reports to the culler (and kernel-reaper checks).",
    )
    gateway_url = Unicode(
        "",
        config=True,
        help="URL of the jobs gateway service (default: $GPULAB_GATEWAY_URL).",
    )
    culler_url = Unicode(
        "",
        config=True,
        help="URL of the culler service (default: $GPULAB_CULLER_URL).",
    )
    request_timeout = Float(
        30.0, config=True, help="Seconds to wait for the gateway or the culler to answer."
    )
    follow_timeout = Float(
        24 * 3600.0,
        config=True,
        help="Longest time one followed log stream stays open (the browser reconnects).",
    )

    @property
    def resolved_gateway_url(self) -> str:
        return _with_slash(self.gateway_url or os.environ.get("GPULAB_GATEWAY_URL", ""))

    @property
    def resolved_culler_url(self) -> str:
        return _with_slash(self.culler_url or os.environ.get("GPULAB_CULLER_URL", ""))

    @property
    def api_token(self) -> str:
        """The server's own hub token: used towards the services, never sent to the browser."""
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @property
    def server_name(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVER_NAME", "")
