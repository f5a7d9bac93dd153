"""The jobs gateway: a JupyterHub managed service at ``/services/jobs-gateway/``, the only
component with Kubernetes rights over Jobs (docs/gateway.md):
``python -m gpulab.hub.jobs.gateway`` (:class:`~gpulab.hub.jobs.gateway.app.GatewayApp`).

The hub registers it with :func:`gpulab.hub.services.service_definition` (``GATEWAY``).
"""
