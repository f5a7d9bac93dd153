"""ResourceQuota: admission of new objects and the controller keeping ``status.used``.

Admission computes usage from the live objects (not from ``status.used``) so that two
creates in a row cannot both slip under the limit. Only what gpulab relies on is
evaluated: compute resources of non-terminal pods (cpu, memory, extended resources such as
``nvidia.com/gpu``, requests and limits), ``pods`` and ``count/<resource>`` object counts.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

from gpulab.kubesim.errors import ApiError
from gpulab.kubesim.quantity import format_quantity, parse_quantity
from gpulab.kubesim.store import ResourceType, Store, WatchEvent, resource

_TERMINAL = ("Succeeded", "Failed")
_OBJECT_COUNTS = {
    "services": "services",
    "secrets": "secrets",
    "configmaps": "configmaps",
    "persistentvolumeclaims": "persistentvolumeclaims",
    "resourcequotas": "resourcequotas",
}


def pod_usage(pod: dict[str, Any]) -> dict[str, Fraction]:
    """Quota usage of one pod: requests default to limits; init containers count by max."""
    spec = pod.get("spec") or {}

    def effective(
        containers: list[dict[str, Any]], combine: Callable[..., Fraction]
    ) -> dict[str, Fraction]:
        total: dict[str, Fraction] = {}
        for c in containers:
            res = c.get("resources") or {}
            limits = res.get("limits") or {}
            requests = {**limits, **(res.get("requests") or {})}
            for section, values in (("requests", requests), ("limits", limits)):
                for name, qty in values.items():
                    key = f"{section}.{name}"
                    total[key] = combine(total.get(key, Fraction(0)), parse_quantity(qty))
        return total

    usage = effective(spec.get("containers") or [], lambda a, b: a + b)
    for key, value in effective(spec.get("initContainers") or [], max).items():
        usage[key] = max(usage.get(key, Fraction(0)), value)
    for short in ("cpu", "memory"):
        if f"requests.{short}" in usage:
            usage[short] = usage[f"requests.{short}"]
    usage["pods"] = Fraction(1)
    usage["count/pods"] = Fraction(1)
    return usage


def _counts_for(hard_key: str, rt: ResourceType) -> bool:
    if hard_key == rt.plural and rt.plural in _OBJECT_COUNTS:
        return True
    qualified = rt.plural + (f".{rt.group}" if rt.group else "")
    return hard_key == f"count/{qualified}"


def namespace_usage(store: Store, namespace: str, keys: set[str]) -> dict[str, Fraction]:
    used = {k: Fraction(0) for k in keys}
    pods, _ = store.list(resource("pods"), namespace, copy_objects=False)
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in _TERMINAL:
            continue
        for k, v in pod_usage(pod).items():
            if k in used:
                used[k] += v
    for rt_ in {r for k in keys for r in _count_types(k)}:
        items, _ = store.list(rt_, namespace, copy_objects=False)
        for k in keys:
            if _counts_for(k, rt_):
                used[k] += len(items)
    return used


def _count_types(key: str) -> list[ResourceType]:
    from gpulab.kubesim.store import RESOURCES  # noqa: PLC0415 - avoid widening the import

    return [rt for rt in RESOURCES.values() if rt.kind != "Pod" and _counts_for(key, rt)]


def _is_binary(key: str) -> bool:
    return "memory" in key or "storage" in key


def _fmt(key: str, value: Fraction) -> str:
    return format_quantity(value, binary=_is_binary(key))


def admit(store: Store, rt: ResourceType, namespace: str, obj: dict[str, Any]) -> None:
    """Raise 403 Forbidden "exceeded quota" if creating ``obj`` would pass a hard limit."""
    quotas, _ = store.list(resource("resourcequotas"), namespace, copy_objects=False)
    if not quotas:
        return
    if rt.kind == "Pod":
        requested = pod_usage(obj)
        if (obj.get("status") or {}).get("phase") in _TERMINAL:
            return
    else:
        requested = {}
    for quota in quotas:
        hard = _hard(quota)
        wanted = {k: v for k, v in requested.items() if k in hard}
        for k in hard:
            if _counts_for(k, rt):
                wanted[k] = Fraction(1)
        if rt.kind == "Pod":
            _require_compute(quota, hard, obj)
        if not wanted:
            continue
        used = namespace_usage(store, namespace, set(wanted))
        over = sorted(k for k, v in wanted.items() if used[k] + v > hard[k])
        if over:
            name = quota["metadata"]["name"]
            raise ApiError(
                403,
                "Forbidden",
                f'{rt.plural} "{obj["metadata"].get("name") or obj["metadata"].get("generateName", "")}" '
                f"is forbidden: exceeded quota: {name}, "
                f"requested: {','.join(f'{k}={_fmt(k, wanted[k])}' for k in over)}, "
                f"used: {','.join(f'{k}={_fmt(k, used[k])}' for k in over)}, "
                f"limited: {','.join(f'{k}={_fmt(k, hard[k])}' for k in over)}",
                {"name": obj["metadata"].get("name", ""), "kind": rt.plural},
            )


def _hard(quota: dict[str, Any]) -> dict[str, Fraction]:
    """Parsed hard limits; admission validates them, so a bad value here is just skipped."""
    out = {}
    for key, value in ((quota.get("spec") or {}).get("hard") or {}).items():
        try:
            out[key] = parse_quantity(value)
        except ValueError:
            continue
    return out


def _require_compute(quota: dict[str, Any], hard: dict[str, Fraction], pod: dict[str, Any]) -> None:
    """A quota on cpu/memory requires every container to state them (as the real evaluator)."""
    tracked = [
        k
        for k in ("limits.cpu", "limits.memory", "requests.cpu", "requests.memory", "cpu", "memory")
        if k in hard
    ]
    missing: set[str] = set()
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        limits = res.get("limits") or {}
        requests = {**limits, **(res.get("requests") or {})}
        for k in tracked:
            section, _, name = k.rpartition(".")
            values = limits if section == "limits" else requests
            if name not in values:
                missing.add(k if section else f"requests.{k}")
    if missing:
        raise ApiError(
            403,
            "Forbidden",
            f'pods "{pod["metadata"].get("name", "")}" is forbidden: failed quota: '
            f"{quota['metadata']['name']}: must specify {','.join(sorted(missing))}",
            {"name": pod["metadata"].get("name", ""), "kind": "pods"},
        )


class QuotaController:
    """Keeps every ResourceQuota's ``status.hard`` and ``status.used`` current."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._unsubscribe = store.subscribe(self._on_change, read_only=True)
        for quota in store.list(resource("resourcequotas"))[0]:
            self._refresh(quota["metadata"]["namespace"])

    def _on_change(self, rt: ResourceType, event: WatchEvent) -> None:
        namespace = event.object["metadata"].get("namespace")
        if not namespace:
            return
        if (
            rt.kind == "ResourceQuota"
            or rt.kind == "Pod"
            or rt.plural in _OBJECT_COUNTS
            or rt.group
        ):
            self._refresh(namespace)

    def _refresh(self, namespace: str) -> None:
        quotas, _ = self._store.list(resource("resourcequotas"), namespace, copy_objects=False)
        for quota in quotas:
            hard = dict((quota.get("spec") or {}).get("hard") or {})
            used = namespace_usage(self._store, namespace, set(hard))
            status = {"hard": hard, "used": {k: _fmt(k, v) for k, v in used.items()}}
            if quota.get("status") != status:

                def update(o: dict[str, Any], status: dict[str, Any] = status) -> None:
                    o["status"] = status

                self._store.mutate(
                    resource("resourcequotas"), namespace, quota["metadata"]["name"], update
                )

    def stop(self) -> None:
        self._unsubscribe()
