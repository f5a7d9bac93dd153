"""The culler service (a JupyterHub managed service at ``/services/culler/``):
``python -m gpulab.hub.culler.service`` (:class:`~gpulab.hub.culler.service.app.CullerApp`).

The hub registers it with :func:`gpulab.hub.services.service_definition` (``CULLER``).
"""
