"""gpulab: multi-user GPU workspaces on JupyterHub and Kubernetes.

The distribution is one import namespace; each concern lives in its own subpackage:
``gpulab.hub`` (hub pod), ``gpulab.spawner``, ``gpulab.extensions`` (user pod and laptop),
``gpulab.kubesim`` (embedded Kubernetes for demos and tests).
"""

__version__ = "0.1.0"
