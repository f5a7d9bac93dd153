"""gpulab.spawner: ``GPULabSpawner`` (KubeSpawner subclass) and the pure builders it uses.

``overrides`` (pod plans over :mod:`gpulab.hub.workload.pod`), ``checks`` (spawn request re-validation), ``form`` (profile list),
``quota`` (GPU counting) are pure; ``cluster`` (watch-backed cache) and ``spawner`` talk to
Kubernetes. ``GPULabSpawner`` is imported lazily so that the pure modules stay light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GPULabSpawner", "SpawnRefused"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import spawner

        return getattr(spawner, name)
    raise AttributeError(name)
