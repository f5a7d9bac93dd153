"""What gpulab's hub services (the jobs gateway, the culler) share as processes.

Each is a traitlets :class:`~traitlets.config.Application`, configured the way JupyterHub is:
``--Class.trait=value`` or the short aliases on the command line, a config file
(``-f``/``--config``: Python like ``jupyterhub_config.py``, or JSON), and defaults from the
environment the hub gives a managed service (``JUPYTERHUB_API_TOKEN``, ``JUPYTERHUB_API_URL``,
``JUPYTERHUB_SERVICE_URL``, ``JUPYTERHUB_SERVICE_PREFIX``) and gpulab's own
(``GPULAB_POLICY``). The command line wins over the file, the file over the environment.
``--help-all`` lists every option.

A service subclasses :class:`ServiceApp`, sets ``name``, ``description``, ``default_url`` and
``default_prefix``, and implements :meth:`ServiceApp.serve` with :meth:`ServiceApp.listen` and
:func:`until_stopped`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any, ClassVar
from urllib.parse import urlparse

from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Bool, Integer, Unicode, default
from traitlets.config import Application, catch_config_error

# Listen address that overrides the service URL's host (the chart sets 0.0.0.0).
SERVICE_IP_ENV = "GPULAB_SERVICE_IP"

__all__ = ["ServiceApp", "service_aliases", "until_stopped"]


def service_aliases(app_class: str, **traits: str) -> dict[str, str]:
    """Command-line aliases: the ones every service has (``-f``/``--config``, ``--policy``,
    ``--port``, ``--log-level``) and ``traits`` (alias -> trait name), all naming
    ``app_class``'s traits so that ``--help-all`` shows one name for each."""
    own = {"f": "config_file", "config": "config_file", "policy": "policy_path", "port": "port"}
    aliases = {alias: f"{app_class}.{trait}" for alias, trait in {**own, **traits}.items()}
    aliases["log-level"] = "Application.log_level"
    return aliases


class ServiceApp(Application):
    """The configuration and process life every gpulab hub service shares."""

    # Where to listen and under which prefix when the hub did not say (run by hand).
    default_url: ClassVar[str] = "http://127.0.0.1:8000"
    default_prefix: ClassVar[str] = "/"

    config_file = Unicode(
        "", help="config file to load (Python, like jupyterhub_config.py, or JSON)"
    ).tag(config=True)
    policy_path = Unicode(help="the policy file (default $GPULAB_POLICY)").tag(config=True)
    service_url = Unicode(help="where to listen (default $JUPYTERHUB_SERVICE_URL)").tag(config=True)
    port = Integer(0, help="listen port (default: the port of service_url)").tag(config=True)
    service_prefix = Unicode(help="URL prefix (default $JUPYTERHUB_SERVICE_PREFIX)").tag(
        config=True
    )
    hub_api_url = Unicode(help="hub API URL (default $JUPYTERHUB_API_URL)").tag(config=True)
    api_token = Unicode(
        help="the service's hub API token (default $JUPYTERHUB_API_TOKEN, which the hub sets)"
    ).tag(config=True)
    authenticate_prometheus = Bool(
        True,
        help="/metrics only for hub tokens with the read:metrics scope, as JupyterHub's own "
        "c.JupyterHub.authenticate_prometheus (False: anyone who reaches the service)",
    ).tag(config=True)

    @default("policy_path")
    def _policy_default(self) -> str:
        return os.environ.get("GPULAB_POLICY", "")

    @default("service_url")
    def _service_url_default(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_URL", self.default_url)

    @default("service_prefix")
    def _prefix_default(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", self.default_prefix)

    @default("hub_api_url")
    def _api_url_default(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    @default("api_token")
    def _api_token_default(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @default("log_format")
    def _log_format_default(self) -> str:
        return "%(asctime)s %(name)s %(levelname)s %(message)s"

    @catch_config_error
    def initialize(self, argv: Any = None) -> None:
        super().initialize(argv)  # the command line
        if self.config_file:
            if not os.path.isfile(self.config_file):
                raise SystemExit(f"{self.name}: no config file {self.config_file!r}")
            # load_config_file re-applies the command line on top of the file.
            self.load_config_file(self.config_file)
        # The services' modules log through their own loggers ("gpulab.*"), not self.log.
        logging.basicConfig(level=self.log_level, format=self.log_format)

    def require_policy(self) -> str:
        if not self.policy_path:
            raise SystemExit(
                f"no policy: pass --policy or --{type(self).__name__}.policy_path, "
                "or set GPULAB_POLICY"
            )
        return self.policy_path

    def start(self) -> None:
        asyncio.run(self.serve())

    async def serve(self) -> None:
        """Run the service until :func:`until_stopped` returns, then release everything."""
        raise NotImplementedError

    def listen(self, app: web.Application, **settings: Any) -> HTTPServer:
        """Serve ``app`` on the host and port of ``service_url`` (``port`` overrides).

        ``$GPULAB_SERVICE_IP`` overrides the host: on Kubernetes the service URL names the hub
        Service (``http://hub:8181``), an address the hub pod cannot bind, so the chart sets
        0.0.0.0."""
        url = urlparse(self.service_url)
        port = self.port or url.port or urlparse(self.default_url).port
        address = os.environ.get(SERVICE_IP_ENV) or url.hostname or "127.0.0.1"
        return app.listen(port, address=address, **settings)


async def until_stopped() -> None:
    """Return at SIGTERM (how the hub stops a managed service) or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
