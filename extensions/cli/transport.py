"""Where the CLI's requests go, and with which token: the one place that decides.

- **Flags and environment** (``--hub-url``/``--token``, ``GPULAB_HUB_URL``/``GPULAB_TOKEN``)
  win, so a script says exactly what it means.
- **Inside a gpulab server** (``JUPYTERHUB_API_TOKEN`` and ``GPULAB_GATEWAY_URL`` or
  ``JUPYTERHUB_API_URL`` in the environment) the CLI uses the server's own token, and its jobs
  calls go through the server extension's ``gpulab/api/`` (``JUPYTERHUB_SERVICE_URL``), as the
  panel's and the jobs page's do, so they get the server's checks of the spec's paths. ``GPULAB_GATEWAY_URL`` with ``GPULAB_TOKEN`` names the gateway
  outright (no question to the hub).
- **On a laptop**, the login ``gpulab login`` stored (:mod:`.config`).

Commands get clients from a :class:`Transport` and never build URLs of their own, so changing
the route (say, through the server extension) is a change to this module alone.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from gpulab.extensions.client import (
    ClientConfig,
    ConfigError,
    GatewayClient,
    locate_gateway,
    server_api_url,
)

from .config import LoginStore
from .globals import GlobalOptions
from .hub_client import HubClient
from .hub_url import HubUrlError, normalise_hub_url

__all__ = ["ConfigError", "Route", "Transport", "resolve_route"]

NO_HUB = (
    "where is the hub? run `gpulab login` (or pass --hub-url https://hub.example.org, "
    "or set GPULAB_HUB_URL); inside a gpulab server this is set for you"
)
NO_TOKEN = (
    "no API token: run `gpulab login`, or create one on the hub's token page (/hub/token) "
    "and pass --token or set GPULAB_TOKEN"
)


@dataclass(frozen=True)
class Route:
    """The addresses and the token every command of one invocation uses."""

    token: str
    hub_url: str  # the hub's public base URL ("" inside a server that did not say)
    hub_api_url: str  # .../hub/api
    gateway_url: str  # "" when it is to be asked of the hub (locate_gateway)
    inside_server: bool = False
    # Inside a server with its own token: the server extension's jobs API (same paths and
    # answers as the gateway's api/v1, plus the server's path checks); "" for the gateway.
    jobs_api_url: str = ""


def resolve_route(
    options: GlobalOptions,
    environ: Mapping[str, str] | None = None,
    store: LoginStore | None = None,
) -> Route:
    env = os.environ if environ is None else environ
    hub_text = options.hub_url or env.get("GPULAB_HUB_URL", "")
    token = options.token or env.get("GPULAB_TOKEN", "")
    server_token = env.get("JUPYTERHUB_API_TOKEN", "")
    server_hub_api = env.get("JUPYTERHUB_API_URL", "")
    server_gateway = env.get("GPULAB_GATEWAY_URL", "")
    # Inside a server; or a script that names the gateway itself (GPULAB_GATEWAY_URL with
    # GPULAB_TOKEN), which skips asking the hub where it is.
    if not hub_text and (token or server_token) and (server_gateway or server_hub_api):
        return Route(
            token=token or server_token,
            hub_url="",
            hub_api_url=server_hub_api.rstrip("/"),
            gateway_url=server_gateway,
            inside_server=bool(server_token),
            jobs_api_url=server_api_url(env) if server_token and not token else "",
        )
    login = (store or LoginStore()).load()
    if not hub_text and login:
        hub_text = login.hub_url
    if not hub_text:
        raise ConfigError(NO_HUB)
    try:
        hub = normalise_hub_url(hub_text)
    except HubUrlError as exc:
        raise ConfigError(f"--hub-url: {exc}") from None
    if not token and login and login.hub_url == hub:
        token = login.token
    if not token:
        raise ConfigError(NO_TOKEN)
    return Route(token=token, hub_url=hub, hub_api_url=hub + "/hub/api", gateway_url="")


class Transport:
    """Clients for one invocation, made when first needed."""

    def __init__(self, route: Route) -> None:
        self.route = route

    @cached_property
    def gateway(self) -> GatewayClient:
        if self.route.jobs_api_url:
            api = self.route.jobs_api_url
            return GatewayClient(ClientConfig(api + "/", self.route.token, api_url=api))
        gateway = self.route.gateway_url or locate_gateway(self.route.hub_url, self.route.token)
        return GatewayClient(ClientConfig(gateway.rstrip("/") + "/", self.route.token))

    @cached_property
    def hub(self) -> HubClient:
        if not self.route.hub_api_url:
            raise ConfigError(
                "this server does not know the hub's API address (JUPYTERHUB_API_URL); "
                "pass --hub-url"
            )
        return HubClient(self.route.hub_api_url, self.route.token)

    def public_url(self, path: str) -> str:
        """A hub path (``/user/alice/``) as a link people can open."""
        if path.startswith(("http://", "https://")) or not self.route.hub_url:
            return path
        return self.route.hub_url + path

    def close(self) -> None:
        for name in ("gateway", "hub"):
            client = self.__dict__.get(name)
            if client is not None:
                client.close()
