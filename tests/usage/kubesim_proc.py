"""``gpulab kubesim serve`` in its own process group (one node with 4 fake GPUs), for the usage
recorder tests: ``url``, ``kubeconfig``, ``api(method, path, body)``; ``stop()`` ends it and
every pod it runs."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

READY = "kubesim ready at "


class KubesimProc:
    def __init__(self, folder: Path, nodes: str = "1x4") -> None:
        self.folder = folder
        self.kubeconfig = folder / "kubeconfig"
        self.log_path = folder / "kubesim.log"
        self.nodes = nodes
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> KubesimProc:
        cmd = [
            sys.executable,
            "-m",
            "gpulab.cli",
            "kubesim",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(self.folder / "data"),
            "--kubeconfig",
            str(self.kubeconfig),
            "--nodes",
            self.nodes,
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if line.startswith(READY):
                    self.url = line[len(READY) :].split()[0]
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"kubesim did not start; log {self.log_path}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")
