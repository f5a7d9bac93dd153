"""gpulab's JupyterHub configuration, one function for both ways the hub runs.

Zero to JupyterHub (``hub.extraConfig``)::

    from gpulab.hub.config import configure; configure(c)

(policy from ``$GPULAB_POLICY``, in-cluster Kubernetes credentials, the authenticator chosen in
the chart's values, e.g. GenericOAuthenticator). A plain ``jupyterhub_config.py`` (``gpulab
up``, tests)::

    configure(c, policy_path="policy.yaml", local=True)

(``$KUBECONFIG``: KubeSpawner's ``load_config`` falls back to it when not in a cluster; the local
shared-password authenticator with the demo users' groups). OIDC from the environment or
``oidc={...}``: :func:`oidc_settings`. Per-user and per-service origins with
``subdomain_host=...`` or ``JupyterHub.subdomain_host`` set before the call (the Helm values).

gpulab's services (the jobs gateway, the culler) are registered with ``services=[...]``
(entries from :func:`gpulab.hub.services.service_definition`) or appended to
``c.JupyterHub.services`` after this call; the ``user`` role and the servers' tokens already
carry ``access:services`` for them (:mod:`gpulab.hub.services`). gpulab's admin scope and its
``gpulab-admin`` role are defined here too, granted to the hub's configured admins (users and
admin groups) and to whoever an earlier ``gpulab-admin`` entry of ``load_roles`` names (the
Helm values' ``hub.loadRoles``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyterhub.utils import subdomain_hook_idna

from .framing import DENY_FRAMING
from .proxy_errors import with_api_error_pages
from .services import (
    ADMIN_ROLE,
    CULLER,
    GATEWAY,
    admin_role,
    custom_scopes,
    server_token_scopes,
    user_scopes,
)
from .shared_policy import shared_policy_file

__all__ = ["SPAWNER_CLASS", "configure", "oidc_settings"]

REPO_HUB = Path(__file__).resolve().parent
# JupyterHub imports the spawner by name: the hub configuration never imports notebook- or
# spawner-side code itself.
SPAWNER_CLASS = "gpulab.spawner.GPULabSpawner"
_SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def oidc_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """GenericOAuthenticator settings from the environment, or None when no OIDC is configured.

    ``GPULAB_OIDC_ISSUER`` (e.g. ``https://keycloak/realms/research``; the standard endpoints
    ``/protocol/openid-connect/...`` are not assumed: give ``GPULAB_OIDC_AUTHORIZE_URL``,
    ``_TOKEN_URL``, ``_USERINFO_URL``, or let them default to ``{issuer}/authorize``, ``/token``,
    ``/userinfo``), ``GPULAB_OIDC_CLIENT_ID``, ``GPULAB_OIDC_CLIENT_SECRET``,
    ``GPULAB_OIDC_CALLBACK_URL``, ``GPULAB_OIDC_GROUPS_CLAIM`` (default ``groups``),
    ``GPULAB_OIDC_USERNAME_CLAIM`` (default ``preferred_username``),
    ``GPULAB_OIDC_ADMIN_GROUPS`` / ``GPULAB_OIDC_ALLOWED_GROUPS`` (comma-separated).
    """
    env = os.environ if environ is None else environ
    issuer = env.get("GPULAB_OIDC_ISSUER", "").rstrip("/")
    if not issuer:
        return None
    settings: dict[str, Any] = {
        "client_id": env.get("GPULAB_OIDC_CLIENT_ID", "gpulab"),
        "client_secret": env.get("GPULAB_OIDC_CLIENT_SECRET", ""),
        "authorize_url": env.get("GPULAB_OIDC_AUTHORIZE_URL", f"{issuer}/authorize"),
        "token_url": env.get("GPULAB_OIDC_TOKEN_URL", f"{issuer}/token"),
        "userdata_url": env.get("GPULAB_OIDC_USERINFO_URL", f"{issuer}/userinfo"),
        "scope": env.get("GPULAB_OIDC_SCOPE", "openid profile email").split(),
        "username_claim": env.get("GPULAB_OIDC_USERNAME_CLAIM", "preferred_username"),
        "groups_claim": env.get("GPULAB_OIDC_GROUPS_CLAIM", "groups"),
        "login_service": env.get("GPULAB_OIDC_LOGIN_SERVICE", "your institution"),
    }
    if env.get("GPULAB_OIDC_CALLBACK_URL"):
        settings["oauth_callback_url"] = env["GPULAB_OIDC_CALLBACK_URL"]
    for key in ("admin_groups", "allowed_groups"):
        raw = env.get(f"GPULAB_OIDC_{key.upper()}", "")
        if raw:
            settings[key] = {g.strip() for g in raw.split(",") if g.strip()}
    return settings


def _apply_oidc(c: Any, settings: Mapping[str, Any]) -> None:
    """GenericOAuthenticator (oauthenticator 17) with the identity provider's group claim as the
    user's JupyterHub groups, replaced at every login (``manage_groups``).

    oauthenticator 17 reads groups from the auth state: the userinfo response is stored under
    ``oauth_user``, so the claim ``groups`` is ``auth_state_groups_key = "oauth_user.groups"``
    (``claim_groups_key`` is deprecated). ``allowed_groups``/``admin_groups``/
    ``auth_state_groups_key`` refuse to be set unless ``manage_groups`` is True (traitlets
    observers), so ``manage_groups`` is set first. The groups come from the login's auth model
    whether or not auth state is persisted; persisting it (``enable_auth_state``, which also
    turns on ``refresh_pre_spawn``) needs ``$JUPYTERHUB_CRYPT_KEY`` -- without a key JupyterHub
    exits at startup -- so it is enabled only when a key is set (z2jh sets one) or when
    ``enable_auth_state`` is given explicitly.
    """
    c.JupyterHub.authenticator_class = "gpulab.hub.auth.GPULabOAuthenticator"
    g = c.GenericOAuthenticator
    settings = dict(settings)
    groups_claim = str(settings.pop("groups_claim", "groups"))
    enable_auth_state = settings.pop("enable_auth_state", None)
    g.manage_groups = True
    # oauthenticator >= 17: groups come from auth_state; the userinfo is under "oauth_user".
    g.auth_state_groups_key = f"oauth_user.{groups_claim}"
    for key, value in settings.items():
        setattr(g, key, value)
    if enable_auth_state is None:
        enable_auth_state = bool(os.environ.get("JUPYTERHUB_CRYPT_KEY"))
    g.enable_auth_state = bool(enable_auth_state)
    if not settings.get("allowed_groups") and not settings.get("allowed_users"):
        # Who may log in is the identity provider's business; the policy decides what they get
        # (users in no policy group get default_group, or nothing).
        g.allow_all = True


def _config_set(section: Any, key: str) -> set[str]:
    """A set-valued setting of a config section, whether assigned or only added to."""
    if key not in section:
        return set()
    value = section[key]
    if hasattr(value, "get_value"):  # LazyConfigValue: c.Authenticator.admin_users.add(...)
        value = value.get_value(set())
    return {str(v) for v in value or ()}


def _apply_admin_role(c: Any) -> None:
    """gpulab's admin scope, and the ``gpulab-admin`` role granting it to the configured hub
    admins and to the members of a ``gpulab-admin`` role already in ``load_roles``.

    JupyterHub's own ``admin`` role cannot be given a custom scope, and a role's members are
    exactly the configured ones, so the hub's admins are listed as they are configured:
    ``admin_users`` and the identity provider's ``admin_groups`` (groups of the same name
    once ``manage_groups`` is on)."""
    defined = dict(c.JupyterHub.custom_scopes) if "custom_scopes" in c.JupyterHub else {}
    c.JupyterHub.custom_scopes = {**defined, **custom_scopes()}
    roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
    given = [r for r in roles if r.get("name") == ADMIN_ROLE]
    users = set().union(
        *(_config_set(c[s], "admin_users") for s in ("Authenticator", "GenericOAuthenticator"))
    )
    groups = _config_set(c.GenericOAuthenticator, "admin_groups")
    role = admin_role(
        users.union(*(r.get("users") or () for r in given)),
        groups.union(*(r.get("groups") or () for r in given)),
    )
    extra = {s for r in given for s in r.get("scopes") or ()} - set(role["scopes"])
    role["scopes"] += sorted(extra)
    services = sorted({s for r in given for s in r.get("services") or ()})
    if services:
        role["services"] = services
    c.JupyterHub.load_roles = [r for r in roles if r.get("name") != ADMIN_ROLE] + [role]


def _allow_named_servers(policy_path: str) -> bool:
    # The shared PolicyFile, not a bare load: a broken file at start falls back to the last
    # good copy here too, and the spawners then read the same object.
    policy = shared_policy_file(policy_path).policy
    return any(g.named_servers > 0 for g in policy.groups.values())


def _named_server_limit(handler: Any) -> int:
    """``JupyterHub.named_server_limit_per_user``: the policy's ``named_servers`` for the
    requesting user (0 = JupyterHub's "unlimited"; GPULabSpawner then refuses named servers)."""
    user = handler.current_user
    if not hasattr(user, "groups"):  # a service (or nobody): GPULabSpawner still checks
        return 0
    path = handler.settings["config"].GPULabSpawner.get("policy_path") or os.environ.get(
        "GPULAB_POLICY", ""
    )
    if not path:
        return 0
    ent = shared_policy_file(str(path)).policy.entitlement([g.name for g in user.groups])
    return ent.named_servers if ent else 0


def _tornado_headers(c: Any) -> dict[str, str]:
    """``c.JupyterHub.tornado_settings["headers"]``, created if missing (assigned or lazy)."""
    settings = c.JupyterHub.tornado_settings
    if not isinstance(settings, dict):  # not assigned yet: a lazy value, maybe with updates
        settings = c.JupyterHub.tornado_settings = settings.get_value({})
    return settings.setdefault("headers", {})


def _deny_framing(c: Any) -> None:
    """The hub's pages are never framed. JupyterHub already sends ``frame-ancestors 'none'``
    (with its CSP report URI, kept by not replacing the header); ``X-Frame-Options`` covers
    browsers that ignore CSP."""
    _tornado_headers(c).setdefault("X-Frame-Options", DENY_FRAMING["X-Frame-Options"])


def service_public_url(subdomain_host: str, base_url: str = "/", name: str = GATEWAY.name) -> str:
    """Where browsers and laptops reach service ``name`` when services have their own origins:
    the host JupyterHub's default subdomain hook gives it, under the hub's ``base_url``."""
    host = subdomain_host if "://" in subdomain_host else f"https://{subdomain_host}"
    parsed = urlparse(host)
    domain = subdomain_hook_idna(name, parsed.hostname or "", "service")
    port = f":{parsed.port}" if parsed.port else ""
    path = f"{base_url.strip('/')}/services/{name}/".lstrip("/")
    return f"{parsed.scheme}://{domain}{port}/{path}"


def _apply_subdomains(c: Any, subdomain_host: str) -> None:
    """Every user's server on its own origin (``https://<user>.<host>``) and every service on
    its own (``https://<service>--service.<host>``, JupyterHub's default ``idna`` subdomain
    hook), so that a page one user serves cannot act with another user's (or an admin's)
    cookies. JupyterHub's cookies then stay host-only on the hub's origin.

    The proxy now routes by host name, so a pod can no longer reach the services through the
    proxy's in-cluster address under ``/services/<name>/``: the pods' gateway and culler URLs
    (``GPULabSpawner.gateway_url`` / ``culler_url``, unless set) become the services' own
    ``url`` from ``c.JupyterHub.services`` (in the chart ``http://hub:8181`` and
    ``http://hub:8182``; the network policies let user pods in on those ports)."""
    c.JupyterHub.subdomain_host = subdomain_host
    base_url = str(c.JupyterHub.base_url) if "base_url" in c.JupyterHub else "/"
    if "subdomain_hook" not in c.JupyterHub:  # a custom hook: its domains are not ours to guess
        for entry in c.JupyterHub.services:
            if entry.get("name") == GATEWAY.name:
                info = entry.setdefault("info", {})
                info.setdefault("public_url", service_public_url(subdomain_host, base_url))
    urls = {s.get("name"): s.get("url") for s in c.JupyterHub.services if s.get("url")}
    for trait, service in (("gateway_url", GATEWAY), ("culler_url", CULLER)):
        if trait in c.GPULabSpawner or not urls.get(service.name):
            continue
        prefix = f"{base_url.strip('/')}/services/{service.name}/".lstrip("/")
        c.GPULabSpawner[trait] = f"{str(urls[service.name]).rstrip('/')}/{prefix}"


TEMPLATES = Path(__file__).with_name("templates")


def _add_templates(c: Any) -> None:
    """gpulab's versions of hub pages (``hub/templates/``), searched before JupyterHub's own.

    Each file there extends the stock page of the same name (``{% extends "templates/..." %}``)
    and overrides only the blocks it must, so upgrades of JupyterHub keep working.
    """
    paths = list(c.JupyterHub.template_paths) if "template_paths" in c.JupyterHub else []
    if str(TEMPLATES) not in paths:
        c.JupyterHub.template_paths = [str(TEMPLATES), *paths]


def _add_notices(c: Any) -> None:
    """The home page's word on servers and jobs an admin stopped or cancelled, and why: a
    ``template_vars`` callable JupyterHub calls with the page's user (``hub/templates/home.html``
    shows it), reading the culler's database."""
    from .culler.user_notices import UserNotices, culler_db_url  # noqa: PLC0415

    variables = dict(c.JupyterHub.template_vars) if "template_vars" in c.JupyterHub else {}
    variables.setdefault(
        "gpulab_notices", UserNotices(culler_db_url(c.JupyterHub.services, CULLER.name))
    )
    c.JupyterHub.template_vars = variables


def _own_namespace() -> str:
    """The namespace KubeSpawner defaults to: the hub pod's own, else ``default``."""
    try:
        return Path(_SERVICE_ACCOUNT_NAMESPACE).read_text().strip() or "default"
    except OSError:
        return "default"


def _keep_kueue_objects(policy_path: str, namespace: str) -> None:
    """In a running hub (not when a tool or a test only loads the configuration): start the
    keeper that applies the policy's Kueue objects, or says at start that Kueue is missing
    (:mod:`gpulab.hub.kueue.keeper`)."""
    from jupyterhub.app import JupyterHub  # noqa: PLC0415

    if JupyterHub.initialized():
        from .kueue.keeper import start_in_hub  # noqa: PLC0415

        start_in_hub(shared_policy_file(policy_path), namespace)


def configure(
    c: Any,
    *,
    policy_path: str | os.PathLike[str] | None = None,
    local: bool = False,
    subdomain_host: str | None = None,
    namespace: str | None = None,
    services: Iterable[Mapping[str, Any]] = (),
    oidc: Mapping[str, Any] | None = None,
    users_file: str | os.PathLike[str] | None = None,
    start_timeout: int = 600,
    http_timeout: int = 120,
) -> None:
    """Configure JupyterHub ``c`` for gpulab (see the module docstring).

    Sets: the spawner class and its KubeSpawner settings (namespace, home PVC never deleted,
    ``jupyterhub-singleuser``, uid 1000 / fsGroup 100, no service account token, events,
    timeouts), ``default_url = /lab``, named servers from the policy, detached servers
    (``cleanup_servers = False``), the ``user`` role's and the servers' access to gpulab's
    services, gpulab's admin scope and role (after the authenticator, whose admins it
    lists), JSON proxy errors for API paths (:mod:`gpulab.hub.proxy_errors`), and the
    authenticator: OIDC when ``oidc`` or ``$GPULAB_OIDC_ISSUER`` is given (also
    with ``local=True``); else, locally, the shared password + demo groups; else whatever the
    chart configured.

    ``subdomain_host`` (e.g. ``https://hub.example.org``; or ``JupyterHub.subdomain_host``
    already set, as the Helm values do) puts every user's server and every service on its own
    origin (:func:`_apply_subdomains`): needed whenever users do not trust each other. Hub
    pages refuse to be framed either way.
    """
    path = str(policy_path or os.environ.get("GPULAB_POLICY", ""))
    if not path:
        raise ValueError("gpulab: no policy file (give policy_path= or set $GPULAB_POLICY)")
    path = str(Path(path).resolve())
    os.environ["GPULAB_POLICY"] = path  # services started by the hub read it too

    c.JupyterHub.spawner_class = SPAWNER_CLASS
    c.GPULabSpawner.policy_path = path
    c.JupyterHub.cleanup_servers = False  # servers are detached: they outlive a hub restart
    c.JupyterHub.allow_named_servers = _allow_named_servers(path)
    c.JupyterHub.named_server_limit_per_user = _named_server_limit
    c.Spawner.default_url = "/lab"

    k = c.KubeSpawner
    ns = namespace or os.environ.get("GPULAB_NAMESPACE")
    if ns:
        k.namespace = ns
    elif local:
        k.namespace = "default"
    _keep_kueue_objects(path, ns or ("default" if local else _own_namespace()))
    k.cmd = ["jupyterhub-singleuser"]
    k.delete_pvc = False
    k.storage_pvc_ensure = True
    k.uid = 1000
    k.gid = 100
    k.fs_gid = 100
    k.automount_service_account_token = False
    k.service_account = None
    k.events_enabled = True
    k.start_timeout = start_timeout
    k.http_timeout = http_timeout
    k.image_pull_policy = "IfNotPresent"
    if local:
        # kubesim's kubelet runs the command from the hub's own environment.
        k.image = "gpulab/local"
        c.GPULabSpawner.hub_public_url = os.environ.get("GPULAB_HUB_PUBLIC_URL", "")
    elif os.environ.get("GPULAB_HUB_PUBLIC_URL"):
        c.GPULabSpawner.hub_public_url = os.environ["GPULAB_HUB_PUBLIC_URL"]
    else:
        c.GPULabSpawner.hub_public_url = "http://proxy-public"  # z2jh's proxy Service

    # Roles and scopes: researchers' tokens and their servers' tokens reach gpulab services.
    roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
    roles = [r for r in roles if r.get("name") != "user"]
    roles.append({"name": "user", "scopes": user_scopes()})
    c.JupyterHub.load_roles = roles
    c.Spawner.server_token_scopes = server_token_scopes()

    existing = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
    names = {s.get("name") for s in existing}
    c.JupyterHub.services = existing + [dict(s) for s in services if s.get("name") not in names]

    _deny_framing(c)
    _add_templates(c)
    _add_notices(c)
    if subdomain_host is None and "subdomain_host" in c.JupyterHub:
        subdomain_host = str(c.JupyterHub.subdomain_host)
    if subdomain_host:
        _apply_subdomains(c, subdomain_host)

    settings = dict(oidc) if oidc is not None else oidc_settings()
    if settings is not None:
        # OIDC wins, also in local mode (gpulab up / tests against a real identity provider).
        _apply_oidc(c, settings)
    elif local:
        from gpulab.hub import demo as demo_files  # noqa: PLC0415
        from gpulab.hub.auth import load_demo_users  # noqa: PLC0415

        c.JupyterHub.authenticator_class = "gpulab.hub.auth.GPULabLocalAuthenticator"
        demo = str(users_file or demo_files.users_file())
        c.GPULabLocalAuthenticator.users_file = demo
        # Demo admins exist (as admins) from the start, so the launcher can group them.
        admins = {name for name, u in load_demo_users(demo).items() if u["admin"]}
        c.Authenticator.admin_users = admins
    # else: the chart's own authenticator settings are left alone.
    _apply_admin_role(c)
    # JSON, not HTML, when the proxy cannot reach a service's or a server's API (proxy_errors).
    chosen = c.JupyterHub.authenticator_class if "authenticator_class" in c.JupyterHub else None
    c.JupyterHub.authenticator_class = with_api_error_pages(chosen)
