"""The scheduler: binds pending pods to the simulated nodes that fit them.

Filters, per node, in the real default order (the first failing filter is the node's
reason): taints/tolerations (NoSchedule, NoExecute), node selector and required node
affinity, then resources (requests against allocatable minus the requests of every
non-terminal pod bound there; requests default to limits at admission). A pod that fits
nowhere gets ``PodScheduled=False`` / ``Unschedulable`` and a ``FailedScheduling`` event
with the real message; it is tried again only when capacity may have changed (a bound pod
finished or went away, a node changed), never in a polling loop. A pod with
``spec.schedulingGates`` is not tried: it stays Pending with ``PodScheduled=False`` /
``SchedulingGated`` until its gates are removed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from fractions import Fraction
from typing import Any

from gpulab.kubesim.events import EventRecorder
from gpulab.kubesim.quantity import parse_quantity
from gpulab.kubesim.store import ApiError, ResourceType, Store, WatchEvent, now_rfc3339, resource

log = logging.getLogger(__name__)
SCHEDULER_NAME = "default-scheduler"
_Key = tuple[str, str]


def pod_requests(spec: dict[str, Any]) -> dict[str, Fraction]:
    """Effective requests: sum over containers, at least the largest init container's."""
    total: dict[str, Fraction] = {}
    for c in spec.get("containers") or []:
        for name, value in _container_requests(c).items():
            total[name] = total.get(name, Fraction(0)) + value
    for c in spec.get("initContainers") or []:
        for name, value in _container_requests(c).items():
            total[name] = max(total.get(name, Fraction(0)), value)
    return total


def _container_requests(c: dict[str, Any]) -> dict[str, Fraction]:
    resources = c.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    out = {}
    for name, value in merged.items():
        try:
            out[name] = parse_quantity(value)
        except ValueError:
            continue
    return out


def is_terminal(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def tolerates(tolerations: list[dict[str, Any]], taint: dict[str, Any]) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if op == "Exists":
            if not t.get("key") or t["key"] == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (
            taint.get("value") or ""
        ):
            return True
    return False


def _expression_matches(expr: dict[str, Any], values: dict[str, str]) -> bool:
    key, op, want = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    have = values.get(key)
    if op == "In":
        return have is not None and have in want
    if op == "NotIn":
        return have is None or have not in want
    if op == "Exists":
        return have is not None
    if op == "DoesNotExist":
        return have is None
    if op in ("Gt", "Lt") and have is not None and want:
        try:
            return int(have) > int(want[0]) if op == "Gt" else int(have) < int(want[0])
        except ValueError:
            return False
    return False


def matches_node(spec: dict[str, Any], node: dict[str, Any]) -> bool:
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    fields = {"metadata.name": node["metadata"]["name"]}
    return any(
        (term.get("matchExpressions") or term.get("matchFields"))
        and all(_expression_matches(e, labels) for e in term.get("matchExpressions") or [])
        and all(_expression_matches(e, fields) for e in term.get("matchFields") or [])
        for term in terms
    )


class Scheduler:
    def __init__(self, store: Store, recorder: EventRecorder) -> None:
        self._store = store
        self._recorder = recorder
        self._active: set[_Key] = set()  # to try on the next pass
        self._unschedulable: set[_Key] = set()  # waiting for capacity to change
        self._pass_scheduled = False
        # Requests in use per node, recomputed only after a bound pod or a node changed: a
        # burst of pending pods costs one pass each, not one scan of all pods each.
        self._used: dict[str, dict[str, Fraction]] | None = None
        self._unsubscribe = store.subscribe(self._on_event, read_only=True)
        for pod in store.list(resource("pods"))[0]:
            self._consider(pod)

    def close(self) -> None:
        self._unsubscribe()

    # -- triggers -----------------------------------------------------------------------
    def _on_event(self, rt: ResourceType, event: WatchEvent) -> None:
        if rt.kind == "Node":
            self._used = None
            self._retry_unschedulable()
        elif rt.kind == "Pod":
            pod = event.object
            key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
            if (pod.get("spec") or {}).get("nodeName"):
                self._used = None
            if event.type == "DELETED":
                self._active.discard(key)
                self._unschedulable.discard(key)
                if (pod.get("spec") or {}).get("nodeName"):
                    self._retry_unschedulable()
            elif (pod.get("spec") or {}).get("nodeName") and is_terminal(pod):
                self._retry_unschedulable()  # a finished pod frees its requests
            else:
                self._consider(pod)

    def _consider(self, pod: dict[str, Any]) -> None:
        spec = pod.get("spec") or {}
        if spec.get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            return
        if spec.get("schedulerName", SCHEDULER_NAME) != SCHEDULER_NAME:
            return
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        if key in self._unschedulable:
            return  # a status write of our own: nothing changed for the scheduler
        self._active.add(key)
        self._schedule_pass()

    def _retry_unschedulable(self) -> None:
        if self._unschedulable:
            self._active |= self._unschedulable
            self._unschedulable.clear()
            self._schedule_pass()

    def _schedule_pass(self) -> None:
        # One pass per loop iteration however many events arrived: writes never happen
        # inside the store's dispatch.
        if not self._pass_scheduled:
            self._pass_scheduled = True
            asyncio.get_running_loop().call_soon(self._run_pass)

    # -- the pass -------------------------------------------------------------------------
    def _run_pass(self) -> None:
        self._pass_scheduled = False
        todo, self._active = self._active, set()
        if not todo:
            return
        pods_rt = resource("pods")
        # Read-only snapshots (no deep copy).
        nodes = self._store.list(resource("nodes"), copy_objects=False)[0]
        used = self._used
        if used is None:
            used = {n["metadata"]["name"]: {} for n in nodes}
            for p in self._store.list(pods_rt, copy_objects=False)[0]:
                node = (p.get("spec") or {}).get("nodeName")
                if node in used and not is_terminal(p):
                    for name, value in pod_requests(p["spec"]).items():
                        used[node][name] = used[node].get(name, Fraction(0)) + value
                    used[node]["pods"] = used[node].get("pods", Fraction(0)) + 1
        pending = [self._store.get(pods_rt, ns, name) for ns, name in todo]
        queue = [p for p in pending if p is not None]
        queue.sort(
            key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])
        )
        for pod in queue:
            if (pod.get("spec") or {}).get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                continue
            if (pod.get("spec") or {}).get("schedulingGates"):
                self._mark_gated(pod)  # not a scheduling attempt: it waits for its gates
                continue
            try:
                self._schedule_one(pod, nodes, used)
            except ApiError as e:  # deleted meanwhile
                log.debug("scheduling %s: %s", pod["metadata"]["name"], e)
        # Binding wrote pods (which reset the cache); `used` already counts those bindings.
        self._used = used

    def _schedule_one(
        self,
        pod: dict[str, Any],
        nodes: list[dict[str, Any]],
        used: dict[str, dict[str, Fraction]],
    ) -> None:
        spec = pod["spec"]
        requests = pod_requests(spec)
        requests["pods"] = Fraction(1)
        reasons: Counter[str] = Counter()
        resource_failures = 0
        chosen = None
        for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
            why = self._filter(spec, requests, node, used[node["metadata"]["name"]])
            if not why:
                chosen = node
                break
            if why[0].startswith("Insufficient") or why[0] == "Too many pods":
                resource_failures += 1
            reasons.update(why)
        md = pod["metadata"]
        ns, name = md["namespace"], md["name"]
        if chosen is None:
            self._unschedulable.add((ns, name))
            message = fit_error(len(nodes), reasons, resource_failures)
            self._mark_unschedulable(pod, message)
            return
        node_name = chosen["metadata"]["name"]
        for rname, value in requests.items():
            used[node_name][rname] = used[node_name].get(rname, Fraction(0)) + value
        now = now_rfc3339()

        def bind(p: dict[str, Any]) -> None:
            p["spec"]["nodeName"] = node_name
            _set_condition(p, {"type": "PodScheduled", "status": "True"}, now)

        bound = self._store.mutate(resource("pods"), ns, name, bind)
        self._recorder.record(
            bound,
            "Normal",
            "Scheduled",
            f"Successfully assigned {ns}/{name} to {node_name}",
            component=SCHEDULER_NAME,
        )

    @staticmethod
    def _filter(
        spec: dict[str, Any],
        requests: dict[str, Fraction],
        node: dict[str, Any],
        used: dict[str, Fraction],
    ) -> list[str]:
        if (node.get("spec") or {}).get("unschedulable"):
            return ["node(s) were unschedulable"]
        tolerations = spec.get("tolerations") or []
        for taint in (node.get("spec") or {}).get("taints") or []:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(
                tolerations, taint
            ):
                return [
                    f"node(s) had untolerated taint {{{taint.get('key', '')}: "
                    f"{taint.get('value', '')}}}"
                ]
        if not matches_node(spec, node):
            return ["node(s) didn't match Pod's node affinity/selector"]
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        why = []
        for rname, want in sorted(requests.items()):
            if want <= 0 or rname == "ephemeral-storage" or rname.startswith("hugepages-"):
                continue
            have = parse_quantity(allocatable.get(rname, "0"))
            if used.get(rname, Fraction(0)) + want > have:
                why.append("Too many pods" if rname == "pods" else f"Insufficient {rname}")
        return why

    def _mark_gated(self, pod: dict[str, Any]) -> None:
        """``PodScheduled=False`` with reason ``SchedulingGated``, once (no event, as upstream)."""
        for c in (pod.get("status") or {}).get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
                return
        self._not_scheduled(
            pod, "SchedulingGated", "Scheduling is blocked due to non-empty scheduling gates"
        )

    def _mark_unschedulable(self, pod: dict[str, Any], message: str) -> None:
        updated = self._not_scheduled(pod, "Unschedulable", message)
        self._recorder.record(
            updated, "Warning", "FailedScheduling", message, component=SCHEDULER_NAME
        )

    def _not_scheduled(self, pod: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
        md = pod["metadata"]
        now = now_rfc3339()
        cond = {"type": "PodScheduled", "status": "False", "reason": reason, "message": message}

        def mark(p: dict[str, Any]) -> None:
            _set_condition(p, cond, now)

        return self._store.mutate(resource("pods"), md["namespace"], md["name"], mark)


def fit_error(num_nodes: int, reasons: Counter[str], resource_failures: int) -> str:
    """The scheduler's FitError text, with the default preemption plugin's postfix."""
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
    message = f"0/{num_nodes} nodes are available: {', '.join(parts)}."
    if num_nodes == 0:
        return "no nodes available to schedule pods"
    others = num_nodes - resource_failures
    post = []
    if resource_failures:
        post.append(f"{resource_failures} No preemption victims found for incoming pod")
    if others:
        post.append(f"{others} Preemption is not helpful for scheduling")
    return f"{message} preemption: 0/{num_nodes} nodes are available: {', '.join(sorted(post))}."


def _set_condition(pod: dict[str, Any], cond: dict[str, Any], now: str) -> None:
    """Set a pod condition, keeping lastTransitionTime when the status did not change."""
    conditions = pod.setdefault("status", {}).setdefault("conditions", [])
    for c in conditions:
        if c.get("type") == cond["type"]:
            if c.get("status") != cond["status"]:
                c["lastTransitionTime"] = now
            for k in ("reason", "message"):
                c.pop(k, None)
            c.update(cond)
            c.setdefault("lastProbeTime", None)
            return
    conditions.append({**cond, "lastProbeTime": None, "lastTransitionTime": now})
