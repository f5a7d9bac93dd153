"""gpulab's one way to talk to Kubernetes, for the hub, the spawner and the hub services.

* :mod:`.client`: :class:`KubeClient` (raw-JSON calls, the kubeconfig / in-cluster fallback)
  and :class:`KubeError`, the one error every caller catches; :class:`Retry`, how transient
  failures are retried;
* :mod:`.paths`: REST paths of collections and objects;
* :mod:`.watchcache`: :class:`WatchCache`, the one list + watch cache;
"""

from .client import NO_RETRY, KubeClient, KubeError, Obj, Retry, load_configuration
from .paths import resource_path
from .watchcache import WatchCache, object_key

__all__ = [
    "NO_RETRY",
    "KubeClient",
    "KubeError",
    "Obj",
    "Retry",
    "WatchCache",
    "load_configuration",
    "object_key",
    "resource_path",
]
