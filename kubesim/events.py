"""Kubernetes Events as the scheduler, kubelet and job controller record them.

Repeated events (same object, reason and message) are aggregated like the real event
recorder does: one Event whose ``count`` and ``lastTimestamp`` grow, so a pod that stays
unschedulable does not flood the store.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from gpulab.kubesim.store import ApiError, Store, now_rfc3339, resource

log = logging.getLogger(__name__)


class EventRecorder:
    def __init__(self, store: Store, component: str, host: str | None = None) -> None:
        self._store = store
        self._component = component
        self._host = host
        # (object uid, reason, message) -> event name, for aggregation.
        self._seen: dict[tuple[str, str, str], tuple[str, str]] = {}

    def record(
        self,
        obj: dict[str, Any],
        type_: str,
        reason: str,
        message: str,
        *,
        component: str | None = None,
        host: str | None = None,
    ) -> None:
        md = obj["metadata"]
        namespace = md.get("namespace") or "default"
        events = resource("events")
        key = (md.get("uid", ""), reason, message)
        now = now_rfc3339()
        seen = self._seen.get(key)
        if seen is not None and self._store.get(events, seen[0], seen[1]) is not None:

            def bump(e: dict[str, Any]) -> None:
                e["count"] = int(e.get("count", 1)) + 1
                e["lastTimestamp"] = now

            try:
                self._store.mutate(events, seen[0], seen[1], bump)
                return
            except ApiError:
                pass
        source: dict[str, str] = {"component": component or self._component}
        if host or self._host:
            source["host"] = host or self._host or ""
        event = {
            "metadata": {
                "name": f"{md['name']}.{secrets.token_hex(8)}",
                "namespace": namespace,
            },
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "v1"),
                "kind": obj.get("kind", ""),
                "name": md["name"],
                "namespace": namespace,
                "uid": md.get("uid", ""),
                "resourceVersion": md.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": None,
            "source": source,
            "reportingComponent": component or self._component,
            "reportingInstance": host or self._host or "",
        }
        try:
            created = self._store.create(events, namespace, event)
        except ApiError as e:  # e.g. the namespace is being terminated
            log.debug("event %s on %s/%s not recorded: %s", reason, namespace, md["name"], e)
            return
        self._seen[key] = (namespace, created["metadata"]["name"])
        if len(self._seen) > 10000:  # bounded memory: forget the oldest half
            for k in list(self._seen)[:5000]:
                del self._seen[k]
