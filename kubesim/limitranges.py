"""LimitRange: the LimitRanger admission plugin for containers (defaults, then min and max).

On a pod create through the API, for each LimitRange of the namespace and each of its
``type: Container`` items, in order:

1. every container and init container without a limit for a resource of ``default`` gets
   it; one without a request gets its own limit (the apiserver defaults requests to limits
   before admission), else the item's ``defaultRequest``;
2. a request or limit below ``min`` or above ``max`` (or no limit where ``max`` is set, no
   request where ``min`` is) refuses the pod with 403 Forbidden, in the apiserver's words.

The LimitRange object itself is defaulted on create as the apiserver does
(:func:`gpulab.kubesim.defaults.limit_range_defaults`: ``default`` from ``max``, ``defaultRequest`` from ``default``,
then from ``min``). Like ResourceQuota, pods that kubesim's own Job controller creates skip
this plugin (their Job was admitted; the real controller's creates are admitted too).
"""

from __future__ import annotations

import operator
from fractions import Fraction
from typing import Any

from gpulab.kubesim.errors import ApiError
from gpulab.kubesim.quantity import parse_quantity
from gpulab.kubesim.store import Store, resource

__all__ = ["admit"]


def _q(value: Any) -> Fraction | None:
    try:
        return parse_quantity(value)
    except (TypeError, ValueError):
        return None


def _fill(container: dict[str, Any], item: dict[str, Any]) -> None:
    resources = container.setdefault("resources", {})
    limits = dict(resources.get("limits") or {})
    requests = dict(resources.get("requests") or {})
    for name, value in limits.items():  # before the plugin: requests default to set limits
        requests.setdefault(name, value)
    for name, value in (item.get("default") or {}).items():
        limits.setdefault(name, value)
    for name, value in (item.get("defaultRequest") or {}).items():
        requests.setdefault(name, value)
    if limits:
        resources["limits"] = limits
    if requests:
        resources["requests"] = requests


_BOUNDS = (
    # (key, word, the side that must be set and is checked first, out of bounds when)
    ("max", "maximum", "limit", operator.gt),
    ("min", "minimum", "request", operator.lt),
)


def _violations(container: dict[str, Any], item: dict[str, Any]) -> list[str]:
    resources = container.get("resources") or {}
    sides = {"limit": resources.get("limits") or {}, "request": resources.get("requests") or {}}
    out: list[str] = []
    for key, word, first, beyond in _BOUNDS:
        second = "request" if first == "limit" else "limit"
        for name, bound in (item.get(key) or {}).items():
            enforced = _q(bound)
            if enforced is None:
                continue
            what = f"{word} {name} usage per Container is {bound}"
            if name not in sides[first]:
                out.append(f"{what}.  No {first} is specified")
                continue
            for side in (first, second):
                value = sides[side].get(name)
                if value is not None and beyond(_q(value) or 0, enforced):
                    out.append(f"{what}, but {side} is {value}")
                    break
    return out


def admit(store: Store, namespace: str, pod: dict[str, Any]) -> None:
    """Fill ``pod``'s containers from the namespace's LimitRanges, or raise 403 Forbidden."""
    ranges, _ = store.list(resource("limitranges"), namespace, copy_objects=False)
    if not ranges:
        return
    spec = pod.get("spec") or {}
    containers = [
        c
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
        if isinstance(c, dict)
    ]
    problems: list[str] = []
    for limit_range in ranges:
        for item in (limit_range.get("spec") or {}).get("limits") or []:
            if item.get("type") != "Container":
                continue
            for c in containers:
                _fill(c, item)
                problems += _violations(c, item)
    if problems:
        name = pod["metadata"].get("name") or pod["metadata"].get("generateName", "")
        joined = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
        raise ApiError(
            403,
            "Forbidden",
            f'pods "{name}" is forbidden: {joined}',
            {"name": pod["metadata"].get("name", ""), "kind": "pods"},
        )
