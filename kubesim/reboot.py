"""What a node reboot does to the pods an earlier kubesim run left in a restored store.

The earlier run's containers are gone (kubesim ends them when it stops, and a SIGKILLed
kubesim's leftovers are reaped at start), so a pod that was running cannot carry on. Like the
kubelet's graceful node shutdown upstream, such a pod ends ``Failed`` with reason
``Terminated`` and a ``DisruptionTarget`` condition; its containers are reported as
``ContainerStatusUnknown`` (exit code 137), as the kubelet does for containers it cannot find.
Controllers then do what they always do: the Job controller counts the failure against
``backoffLimit`` and makes a new pod; a spawner sees its server's pod stopped. Pods that were
being deleted are removed. Finished pods, and their logs on disk, are left as they were.
"""

from __future__ import annotations

from typing import Any

from gpulab.kubesim.store import Store, now_rfc3339, resource

__all__ = ["REASON", "end_pods_of_earlier_run"]

REASON = "Terminated"
MESSAGE = "Pod was terminated in response to imminent node shutdown."


def end_pods_of_earlier_run(store: Store) -> int:
    """Fail every bound, unfinished pod; remove those being deleted. Returns how many changed."""
    pods = resource("pods")
    changed = 0
    for pod in store.list(pods)[0]:
        md, status = pod["metadata"], pod.get("status") or {}
        if not (pod.get("spec") or {}).get("nodeName"):
            continue  # never scheduled: the scheduler places it as usual
        if status.get("phase") in ("Succeeded", "Failed"):
            continue
        if md.get("deletionTimestamp"):
            store.finalize_delete(pods, md["namespace"], md["name"])
        else:
            store.mutate(pods, md["namespace"], md["name"], _terminated_by_shutdown)
        changed += 1
    return changed


def _terminated_by_shutdown(pod: dict[str, Any]) -> None:
    now = now_rfc3339()
    status = pod.setdefault("status", {})
    status.update(phase="Failed", reason=REASON, message=MESSAGE)
    conditions = [
        c
        for c in status.get("conditions") or []
        if c.get("type") not in ("Ready", "ContainersReady")
    ]
    for type_ in ("Ready", "ContainersReady"):
        conditions.append(
            {"type": type_, "status": "False", "reason": "PodFailed", "lastTransitionTime": now}
        )
    conditions.append(
        {
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "TerminationByKubelet",
            "message": MESSAGE,
            "lastTransitionTime": now,
        }
    )
    status["conditions"] = conditions
    for key in ("containerStatuses", "initContainerStatuses"):
        for cs in status.get(key) or []:
            state = cs.get("state") or {}
            if "terminated" in state:
                continue
            started = (state.get("running") or {}).get("startedAt")
            terminated: dict[str, Any] = {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was terminated",
                "finishedAt": now,
            }
            if started:
                terminated["startedAt"] = started
            cs["state"] = {"terminated": terminated}
            cs["ready"] = False
            cs["started"] = False
