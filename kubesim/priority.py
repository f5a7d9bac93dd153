"""The Priority admission plugin: a pod's ``priorityClassName`` resolved to ``spec.priority``.

A pod naming a PriorityClass gets its value (and ``preemptionPolicy``); one naming no class
gets the class marked ``globalDefault`` if there is one, else priority 0. A pod naming a
class that does not exist is refused with the apiserver's 403.
"""

from __future__ import annotations

from typing import Any

from gpulab.kubesim.errors import forbidden
from gpulab.kubesim.store import Store, resource


def admit(store: Store, obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    classes = resource("priorityclasses", "scheduling.k8s.io")
    name = spec.get("priorityClassName")
    if name:
        pc = store.get(classes, None, str(name))
        if pc is None:
            pod = (obj.get("metadata") or {}).get("name") or ""
            raise forbidden("pods", pod, f"no PriorityClass with name {name} was found")
    else:
        pc = next(
            (c for c in store.list(classes, copy_objects=False)[0] if c.get("globalDefault")),
            None,
        )
        if pc is not None:
            spec["priorityClassName"] = pc["metadata"]["name"]
    spec["priority"] = int(pc.get("value", 0)) if pc is not None else 0
    if pc is not None:
        spec["preemptionPolicy"] = pc.get("preemptionPolicy", "PreemptLowerPriority")
