"""The jobs gateway: a JupyterHub managed service at ``/services/jobs-gateway/``, the only
component with Kubernetes rights over Jobs (docs/gateway.md).

Registration helpers for ``hub/config.py``::

    from gpulab.hub.jobs.gateway import service_definition, roles, USER_SCOPES
    c.JupyterHub.services.append(service_definition(policy_path=..., namespace=...))
    c.JupyterHub.load_roles.extend(roles())        # the service's own role
    # and add USER_SCOPES to the "user" role and to c.Spawner.server_token_scopes
"""

from __future__ import annotations

from .registration import SERVICE_NAME, USER_SCOPES, roles, service_definition

__all__ = ["SERVICE_NAME", "USER_SCOPES", "roles", "service_definition"]
