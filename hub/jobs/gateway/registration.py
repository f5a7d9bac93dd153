"""How the hub registers the gateway: the ``c.JupyterHub.services`` entry and the roles.

Pure: no import of the app, so ``hub/config.py`` stays cheap to load.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["SERVICE_NAME", "USER_SCOPES", "roles", "service_definition"]

SERVICE_NAME = "jobs-gateway"
# Add these to the hub's "user" role and to c.Spawner.server_token_scopes, so that a
# researcher's API token and a server's $JUPYTERHUB_API_TOKEN both reach the gateway.
USER_SCOPES = [f"access:services!service={SERVICE_NAME}"]
# What the gateway's own token may do in the hub: read names, groups and the admin flag.
PASS_ENV = (
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
)
SERVICE_SCOPES = ["read:users", "read:users:groups", "read:groups", "list:users"]


def service_definition(
    *,
    policy_path: str,
    port: int = 10102,
    namespace: str | None = None,
    kubeconfig: str | None = None,
    public_url: str | None = None,
    environment: dict[str, str] | None = None,
    extra_args: list[str] | None = None,
    pass_env: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The entry for ``c.JupyterHub.services``: a managed service the hub starts (and
    restarts) on ``127.0.0.1:port``, reached through the proxy at ``/services/jobs-gateway/``.

    S3 keys reach the gateway through the hub's environment (the variables the policy's
    ``s3`` section names): :data:`PASS_ENV` and ``pass_env`` are copied from the hub's
    environment when set; never put on the command line."""
    cmd = [
        sys.executable,
        "-m",
        "gpulab.hub.jobs.gateway",
        f"--GatewayApp.policy_path={policy_path}",
    ]
    if namespace:
        cmd.append(f"--GatewayApp.namespace={namespace}")
    if kubeconfig:
        cmd.append(f"--GatewayApp.kubeconfig={kubeconfig}")
    if public_url:
        cmd.append(f"--GatewayApp.public_url={public_url}")
    cmd += list(extra_args or [])
    # JupyterHub gives a managed service only a few variables of its own environment
    # (PATH, LANG, ...): copy the ones the gateway reads, by name, from the hub's environment.
    env = {k: os.environ[k] for k in (*PASS_ENV, *(pass_env or ())) if k in os.environ}
    env.update(environment or {})
    return {
        "name": SERVICE_NAME,
        "url": f"http://127.0.0.1:{port}",
        "command": cmd,
        "display": False,
        "oauth_no_confirm": True,
        "environment": env,
    }


def roles() -> list[dict[str, Any]]:
    """``c.JupyterHub.load_roles`` entries for the gateway's own token. The user-facing
    scopes (:data:`USER_SCOPES`) belong in the single "user" role that ``hub/config.py``
    assembles (JupyterHub refuses a role defined twice)."""
    return [
        {"name": "gpulab-jobs-gateway", "scopes": list(SERVICE_SCOPES), "services": [SERVICE_NAME]}
    ]
