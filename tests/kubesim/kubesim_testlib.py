"""The session kubesim handle and manifests shared by the kubesim tests.

(A plain module, not conftest, so test modules can import it: tests/ has no packages.)

Pods here never run: either a node selector no node has keeps them Pending, or they are
bound to ``ghost-node``, a node no kubelet serves. So the API tests behave the same with or
without the kubelet half of kubesim.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from typing import Any

from gpulab.kubesim.launch import KubesimChild

GHOST_NODE = "ghost-node"


def pod(
    name: str, *, labels: dict[str, str] | None = None, bound: bool = False, **spec: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}],
            **spec,
        },
    }
    if bound:
        body["spec"]["nodeName"] = GHOST_NODE
    else:
        body["spec"].setdefault("nodeSelector", {"kubesim.test/never": "true"})
    return body


class KubesimProcess(KubesimChild):
    """The session kubesim, with kubectl and kubesim's admin endpoints at hand."""

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        result = subprocess.run(
            ["kubectl", *args], env=env, input=input, capture_output=True, text=True, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def _admin(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback URL
            return json.loads(resp.read())

    def set_faults(self, **settings: Any) -> dict[str, Any]:
        return self._admin("POST", "/kubesim/faults", settings)

    def clear_faults(self) -> dict[str, Any]:
        return self._admin("DELETE", "/kubesim/faults")

    def requests(self) -> dict[str, Any]:
        return self._admin("GET", "/kubesim/requests")
