"""``gpulab kubesim serve`` in its own process group (one node with 4 fake GPUs), for the usage
recorder tests: ``url``, ``kubeconfig``, ``api(method, path, body)``; ``stop()`` ends it and
every pod it runs."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from gpulab.kubesim.launch import KubesimChild


class KubesimProc(KubesimChild):
    """kubesim for the usage tests, with ``api()`` for raw calls."""

    @classmethod
    def for_usage(cls, folder: Path, nodes: str = "1x4") -> KubesimProc:
        return cls.start(folder, nodes=nodes)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")
