"""Label and field selectors, parsed once and matched against stored objects.

Label selectors follow apimachinery's grammar: equality (``a=b``, ``a==b``, ``a!=b``) and
set-based (``a in (x,y)``, ``a notin (x)``, ``a``, ``!a``) requirements joined by commas.
Field selectors support only the field labels the real apiserver registers per kind; any
other label is the real ``400 BadRequest "field label not supported"`` so that code which
works here also works against a real cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpulab.kubesim.errors import bad_request

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str]

    def matches(self, labels: dict[str, str]) -> bool:
        if self.op == "exists":
            return self.key in labels
        if self.op == "!":
            return self.key not in labels
        if self.op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        # "!=" and "notin" match objects without the key, as in Kubernetes.
        return labels.get(self.key) not in self.values


@dataclass(frozen=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]

    def matches(self, obj: dict[str, Any]) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside ``( )`` (set-based value lists)."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


_SET_RE = re.compile(r"^(\S+)\s+(in|notin)\s*\((.*)\)$")
_EQ_RE = re.compile(r"^([^=!\s]+)\s*(==|=|!=)\s*(.*)$")


def parse_label_selector(text: str | None) -> LabelSelector:
    if not text:
        return LabelSelector(())
    reqs: list[Requirement] = []
    for part in _split_top_level(text):
        if m := _SET_RE.match(part):
            key, op, raw = m.group(1), m.group(2), m.group(3)
            values = frozenset(v.strip() for v in raw.split(",") if v.strip())
            reqs.append(Requirement(key, op, values))
        elif m := _EQ_RE.match(part):
            key, op, value = m.group(1), m.group(2), m.group(3).strip()
            reqs.append(Requirement(key, "!=" if op == "!=" else "=", frozenset([value])))
        elif part.startswith("!") and re.fullmatch(r"![^\s=!(),]+", part):
            reqs.append(Requirement(part[1:], "!", frozenset()))
        elif re.fullmatch(r"[^\s=!(),]+", part):
            reqs.append(Requirement(part, "exists", frozenset()))
        else:
            raise bad_request(f"unable to parse requirement: {part!r}")
    for r in reqs:
        for v in r.values:
            if not _LABEL_VALUE.match(v) or len(v) > 63:
                raise bad_request(
                    f"unable to parse requirement: values[0][{r.key}]: Invalid value: {v!r}: "
                    "a valid label must be an empty string or consist of alphanumeric "
                    "characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character"
                )
    return LabelSelector(tuple(reqs))


def _path(*keys: str) -> Callable[[dict[str, Any]], str]:
    def get(obj: dict[str, Any]) -> str:
        cur: Any = obj
        for k in keys:
            cur = cur.get(k) if isinstance(cur, dict) else None
            if cur is None:
                return ""
        return str(cur).lower() if isinstance(cur, bool) else str(cur)

    return get


_COMMON = {
    "metadata.name": _path("metadata", "name"),
    "metadata.namespace": _path("metadata", "namespace"),
}

# The field labels the real apiserver registers per kind (pkg/registry/*/strategy.go).
FIELD_LABELS: dict[str, dict[str, Callable[[dict[str, Any]], str]]] = {
    "Pod": {
        "spec.nodeName": _path("spec", "nodeName"),
        "spec.restartPolicy": _path("spec", "restartPolicy"),
        "spec.schedulerName": _path("spec", "schedulerName"),
        "spec.serviceAccountName": _path("spec", "serviceAccountName"),
        "spec.hostNetwork": lambda o: str(bool((o.get("spec") or {}).get("hostNetwork"))).lower(),
        "status.phase": _path("status", "phase"),
        "status.podIP": _path("status", "podIP"),
        "status.nominatedNodeName": _path("status", "nominatedNodeName"),
    },
    "Event": {
        "involvedObject.kind": _path("involvedObject", "kind"),
        "involvedObject.namespace": _path("involvedObject", "namespace"),
        "involvedObject.name": _path("involvedObject", "name"),
        "involvedObject.uid": _path("involvedObject", "uid"),
        "involvedObject.apiVersion": _path("involvedObject", "apiVersion"),
        "involvedObject.resourceVersion": _path("involvedObject", "resourceVersion"),
        "involvedObject.fieldPath": _path("involvedObject", "fieldPath"),
        "reason": _path("reason"),
        "reportingComponent": _path("reportingComponent"),
        "source": _path("source", "component"),
        "type": _path("type"),
    },
    "Namespace": {"status.phase": _path("status", "phase")},
    "Secret": {"type": _path("type")},
    "Node": {
        "spec.unschedulable": lambda o: str(
            bool((o.get("spec") or {}).get("unschedulable"))
        ).lower()
    },
    "Job": {"status.successful": _path("status", "succeeded")},
    "PersistentVolumeClaim": {},
}


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[tuple[Callable[[dict[str, Any]], str], bool, str], ...]  # getter, equal?, value

    def matches(self, obj: dict[str, Any]) -> bool:
        return all((get(obj) == value) == equal for get, equal, value in self.terms)

    @property
    def empty(self) -> bool:
        return not self.terms


def parse_field_selector(text: str | None, kind: str) -> FieldSelector:
    if not text:
        return FieldSelector(())
    labels = {**_COMMON, **FIELD_LABELS.get(kind, {})}
    terms = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = re.match(r"^([^=!]+)(==|=|!=)(.*)$", part)
        if not m:
            raise bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.group(1).strip(), m.group(2), m.group(3).strip()
        getter = labels.get(field)
        if getter is None:
            raise bad_request(f"field label not supported: {field}")
        terms.append((getter, op != "!=", value))
    return FieldSelector(tuple(terms))
