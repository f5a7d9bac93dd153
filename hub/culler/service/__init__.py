"""The culler service (a JupyterHub managed service at ``/services/culler/``).

Registration helpers for ``hub/config.py``::

    from gpulab.hub.culler.service import service_definition, roles, SERVER_TOKEN_SCOPES
    c.JupyterHub.services.append(service_definition(policy_path=...))
    c.JupyterHub.load_roles.extend(roles())
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["SERVER_TOKEN_SCOPES", "SERVICE_NAME", "roles", "service_definition"]

SERVICE_NAME = "culler"
# What a server's $JUPYTERHUB_API_TOKEN needs (JupyterHub's defaults + reaching the culler).
SERVER_TOKEN_SCOPES = [
    "users:activity!user",
    "access:servers!server",
    f"access:services!service={SERVICE_NAME}",
]


def service_definition(
    *,
    policy_path: str,
    port: int = 10101,
    interval: float = 60.0,
    dry_run: bool = False,
    db_url: str | None = None,
    kubeconfig: str | None = None,
    namespace: str | None = None,
    page_size: int = 200,
    environment: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The entry for ``c.JupyterHub.services``."""
    cmd = [
        sys.executable,
        "-m",
        "gpulab.hub.culler.service",
        "--policy",
        policy_path,
        "--interval",
        str(interval),
        "--page-size",
        str(page_size),
    ]
    if dry_run:
        cmd.append("--dry-run")
    if db_url:
        cmd += ["--db", db_url]
    if kubeconfig:
        cmd += ["--kubeconfig", kubeconfig]
    if namespace:
        cmd += ["--namespace", namespace]
    return {
        "name": SERVICE_NAME,
        "url": f"http://127.0.0.1:{port}",
        "command": cmd,
        "display": False,
        "oauth_no_confirm": True,
        "environment": dict(environment or {}),
    }


def roles() -> list[dict[str, Any]]:
    """``c.JupyterHub.load_roles`` entries: the service's own scopes, and users (and their
    servers' tokens, via ``SERVER_TOKEN_SCOPES``) may reach the service."""
    return [
        {
            "name": "gpulab-culler",
            # Read users and their servers, stop servers; never start one or touch users.
            # helm-values/values.yaml lists the same (tests/ship keeps them equal).
            "scopes": [
                "list:users",
                "read:users",
                "read:groups",
                "read:servers",
                "delete:servers",
            ],
            "services": [SERVICE_NAME],
        },
        {
            "name": "user",
            "scopes": ["self", f"access:services!service={SERVICE_NAME}"],
        },
    ]
