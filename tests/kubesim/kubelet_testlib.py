"""Helpers for the kubelet and Job controller tests: manifests and waits over the real client.

Waits poll the API with a generous deadline: the deadline only bounds a hung test, it is not
an assertion on speed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

WAIT_SECONDS = 90


def wait_for(what: str, fn: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def run_pod(
    name: str,
    command: list[str],
    *,
    restart: str = "Never",
    node: str | None = None,
    **spec: Any,
) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox:1.36", "command": command}
    for key in ("env", "envFrom", "volumeMounts", "resources", "securityContext", "args",
                "readinessProbe", "ports", "workingDir"):  # fmt: skip
        if key in spec:
            container[key] = spec.pop(key)
    if "podSecurityContext" in spec:
        spec["securityContext"] = spec.pop("podSecurityContext")
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": restart, "containers": [container], **spec},
    }
    if node:
        body["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
    return body


def pod_phase(core: Any, ns: str, name: str) -> str | None:
    try:
        return core.read_namespaced_pod(name, ns).status.phase
    except Exception:  # noqa: BLE001 - gone
        return None


def wait_phase(core: Any, ns: str, name: str, *phases: str) -> Any:
    wait_for(f"pod {name} in {phases}", lambda: pod_phase(core, ns, name) in phases)
    return core.read_namespaced_pod(name, ns)


def wait_gone(core: Any, ns: str, name: str) -> None:
    from kubernetes.client.exceptions import ApiException

    def gone() -> bool:
        try:
            core.read_namespaced_pod(name, ns)
        except ApiException as e:
            return e.status == 404
        return False

    wait_for(f"pod {name} deleted", gone)


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def processes_with(marker: str) -> list[int]:
    """pids whose command line contains ``marker``."""
    import os

    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if marker.encode() in f.read() and pid_alive(int(entry)):
                    out.append(int(entry))
        except OSError:
            continue
    return out
