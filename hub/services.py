"""How the hub registers gpulab's services: their ``c.JupyterHub.services`` entries, their own
roles, the scopes users and servers need to reach them, and gpulab's admin scope.

Pure (no import of the services' code), so ``hub/config.py`` stays cheap to load::

    from gpulab.hub.services import CULLER, GATEWAY, service_definition, service_roles
    c.JupyterHub.services.append(
        service_definition(GATEWAY, policy_path=POLICY, namespace="gpulab")
    )
    c.JupyterHub.load_roles.extend(service_roles(GATEWAY, CULLER))

``configure(c)`` (``hub/config.py``) already gives the ``user`` role and the servers' tokens
access to every service here (:func:`user_scopes`, :func:`server_token_scopes`), and defines
gpulab's admin scope and role (:data:`ADMIN_SCOPE`, :func:`admin_role`).

Admin rights in gpulab's services come from the *token*, never from the user's admin flag: a
request is an admin's when the hub's answer for its token (``GET /hub/api/user``, which
HubAuth caches per token) lists :data:`ADMIN_SCOPE`. Only tokens that inherit their owner's
roles carry it (the owner's own API tokens, their browser sessions with the services); a
notebook server's ``$JUPYTERHUB_API_TOKEN`` gets :func:`server_token_scopes` only, so code
running in an admin's notebook is not an admin.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from gpulab.hub.die_with_parent import dying_with_this_process

__all__ = [
    "ADMIN_ROLE",
    "ADMIN_SCOPE",
    "CULLER",
    "GATEWAY",
    "SERVICES",
    "HubService",
    "access_scope",
    "admin_role",
    "custom_scopes",
    "holds_admin_scope",
    "server_token_scopes",
    "service_definition",
    "service_roles",
    "user_scopes",
]

Option = str | int | float | bool | None


@dataclass(frozen=True)
class HubService:
    """One gpulab service as the hub sees it: a process the hub starts and restarts
    (``python -m module``, a :class:`gpulab.hub.service_app.ServiceApp`) and a role."""

    name: str  # the hub's service name, also its URL: /services/<name>/
    module: str
    app_class: str  # the Application's class name: options are --<app_class>.<trait>=value
    port: int  # the default listen port on 127.0.0.1
    role: str
    scopes: tuple[str, ...]  # what the service's own token may do in the hub
    # Variables copied from the hub's environment into the service's, when set: JupyterHub
    # gives a managed service only a few of its own (PATH, LANG, ...).
    pass_env: tuple[str, ...] = ()


# A custom scope (JupyterHub >= 3.0) of gpulab's own: the hub itself grants nothing with it.
ADMIN_SCOPE = "custom:gpulab:admin"

GATEWAY = HubService(
    name="jobs-gateway",
    module="gpulab.hub.jobs.gateway",
    app_class="GatewayApp",
    port=10102,
    role="gpulab-jobs-gateway",
    # Read names and groups (identity), and group members (group quotas).
    scopes=("read:users", "read:users:groups", "read:groups", "list:users"),
    # Kubernetes, S3 and Harbor credentials: never on the command line.
    pass_env=(
        "KUBECONFIG",
        "KUBERNETES_SERVICE_HOST",
        "KUBERNETES_SERVICE_PORT",
        "GPULAB_NAMESPACE",
        "GPULAB_GATEWAY_PUBLIC_URL",
        "GPULAB_S3_ENDPOINT",
        "GPULAB_S3_PUBLIC_ENDPOINT",
        "GPULAB_S3_ACCESS_KEY",
        "GPULAB_S3_SECRET_KEY",
        "GPULAB_S3_CA_BUNDLE",
        "HARBOR_USERNAME",
        "HARBOR_PASSWORD",
    ),
)

CULLER = HubService(
    name="culler",
    module="gpulab.hub.culler.service",
    app_class="CullerApp",
    port=10101,
    role="gpulab-culler",
    # Read users and their servers, stop servers; never start one or touch users. Cancel
    # jobs for the dashboard's admins through the jobs gateway: find it, reach it, as an admin
    # (the gateway lets a service's token only cancel, naming the admin).
    # helm-values/values.yaml lists the same (tests/ship keeps them equal).
    scopes=(
        "list:users",
        "read:users",
        "read:groups",
        "read:servers",
        "delete:servers",
        f"read:services!service={GATEWAY.name}",
        f"access:services!service={GATEWAY.name}",
        ADMIN_SCOPE,
    ),
)

SERVICES = (GATEWAY, CULLER)

ADMIN_ROLE = "gpulab-admin"
_ADMIN_SCOPE_DESCRIPTION = (
    "Act as a gpulab admin in gpulab's services: every user's jobs and outputs, "
    "the culler's dashboard and usage, stopping any server."
)


def access_scope(service: HubService) -> str:
    return f"access:services!service={service.name}"


def user_scopes(services: Iterable[HubService] = SERVICES) -> list[str]:
    """The ``user`` role: JupyterHub's default (``self``) plus access to gpulab's services,
    and reading the jobs gateway's hub entry, whose ``info.public_url`` tells a command line
    on a laptop where the gateway is when services have their own origins."""
    services = tuple(services)
    readable = [f"read:services!service={s.name}" for s in services if s is GATEWAY]
    return ["self", *(access_scope(s) for s in services), *readable]


def custom_scopes() -> dict[str, dict[str, str]]:
    """``c.JupyterHub.custom_scopes``: gpulab's admin scope."""
    return {ADMIN_SCOPE: {"description": _ADMIN_SCOPE_DESCRIPTION}}


def admin_role(users: Iterable[str] = (), groups: Iterable[str] = ()) -> dict[str, Any]:
    """The ``c.JupyterHub.load_roles`` entry granting :data:`ADMIN_SCOPE`.

    JupyterHub makes a loaded role's members exactly the listed ones at every start, and its
    built-in ``admin`` role cannot be given more scopes: hub admins get gpulab admin rights
    by being listed here (``configure(c)`` lists ``Authenticator.admin_users`` and the
    identity provider's ``admin_groups``)."""
    return {
        "name": ADMIN_ROLE,
        "description": "gpulab admin: " + _ADMIN_SCOPE_DESCRIPTION,
        "scopes": [ADMIN_SCOPE],
        "users": sorted(set(users)),
        "groups": sorted(set(groups)),
    }


def holds_admin_scope(token_scopes: Iterable[str]) -> bool:
    """Whether a token's scopes, as the hub lists them for that token, make it a gpulab
    admin's. Only the unfiltered scope counts."""
    return ADMIN_SCOPE in set(token_scopes)


def server_token_scopes(services: Iterable[HubService] = SERVICES) -> list[str]:
    """A server's ``$JUPYTERHUB_API_TOKEN``: JupyterHub's default server scopes plus access to
    gpulab's services (the panel submits jobs, the extension reports activity)."""
    return [
        "users:activity!user",
        "access:servers!server",
        *(access_scope(s) for s in services),
    ]


def service_definition(
    service: HubService,
    *,
    port: int | None = None,
    environment: Mapping[str, str] | None = None,
    pass_env: Iterable[str] = (),
    extra_args: Iterable[str] = (),
    **options: Option,
) -> dict[str, Any]:
    """The ``c.JupyterHub.services`` entry: a managed service on ``127.0.0.1:port``, reached
    through the proxy at ``/services/<name>/``.

    ``options`` are the service's traits (``policy_path=...``, ``namespace=...``), passed as
    ``--<AppClass>.<trait>=<value>``; None leaves a trait at its default. Secrets go through
    the environment: ``service.pass_env`` and ``pass_env`` are copied from the hub's
    environment when set, then ``environment`` is applied. The entry names
    :data:`ADMIN_SCOPE`, so the hub must define it (:func:`custom_scopes`; ``configure(c)``
    does).

    Call it in the hub's config (the hub's own process): the command is wrapped so that the
    service dies with the hub, even a SIGKILLed one (:mod:`gpulab.hub.die_with_parent`); the
    next hub then never finds an old copy holding the service's port."""
    cmd = [sys.executable, "-m", service.module]
    cmd += [f"--{service.app_class}.{k}={v}" for k, v in options.items() if v is not None]
    cmd += list(extra_args)
    cmd = dying_with_this_process(cmd)
    names = (*service.pass_env, *pass_env)
    env = {k: os.environ[k] for k in names if k in os.environ}
    env.update(environment or {})
    return {
        "name": service.name,
        "url": f"http://127.0.0.1:{port or service.port}",
        "command": cmd,
        "display": False,
        "oauth_no_confirm": True,
        # Browser sessions with the service (the dashboard) carry the admin scope when their
        # user holds it; the hub drops it for everyone else.
        "oauth_client_allowed_scopes": [ADMIN_SCOPE],
        "environment": env,
        # How long the hub waits for the service at start before giving up (JupyterHub's
        # default, 30 s, is less than importing JupyterHub takes on a loaded two-core machine).
        "timeout": SERVICE_START_TIMEOUT,
    }


SERVICE_START_TIMEOUT = 120


def service_roles(*services: HubService) -> list[dict[str, Any]]:
    """``c.JupyterHub.load_roles`` entries for the services' own tokens. The user-facing
    scopes belong in the single ``user`` role (JupyterHub refuses a role defined twice):
    :func:`user_scopes`."""
    return [{"name": s.role, "scopes": list(s.scopes), "services": [s.name]} for s in services]
