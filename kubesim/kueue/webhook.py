"""What Kueue's mutating webhooks do at creation, for kubesim's API server (with --kueue).

* A ``batch/v1`` Job with the ``kueue.x-k8s.io/queue-name`` label is created suspended
  (Kueue's job webhook), so no pod starts before its Workload is admitted.
* A plain Pod with that label (not one of a Job's) gets the scheduling gate
  ``kueue.x-k8s.io/admission`` and the ``kueue.x-k8s.io/managed`` label (Kueue's pod
  webhook), so the scheduler leaves it Pending until Kueue ungates it. Pods in
  ``kube-system`` are left alone, as Kueue's default namespace selector does.
"""

from __future__ import annotations

from typing import Any

from gpulab.kubesim.kueue import names
from gpulab.kubesim.store import ResourceType


def default_on_create(rt: ResourceType, namespace: str | None, obj: dict[str, Any]) -> None:
    md = obj.get("metadata") or {}
    labels = md.get("labels") or {}
    if not isinstance(labels, dict) or names.QUEUE_LABEL not in labels:
        return
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    if rt.group == "batch" and rt.kind == "Job":
        spec["suspend"] = True
    elif rt.group == "" and rt.kind == "Pod" and namespace != "kube-system":
        if any(r.get("kind") == "Job" for r in md.get("ownerReferences") or []):
            return
        gates = spec.get("schedulingGates") or []
        if not any(g.get("name") == names.POD_GATE for g in gates):
            spec["schedulingGates"] = [*gates, {"name": names.POD_GATE}]
        labels[names.MANAGED_LABEL] = "true"
