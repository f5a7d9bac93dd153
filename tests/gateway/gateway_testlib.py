"""Helpers for the jobs gateway tests (imported by conftest and the tests).

The jobs gateway on the real platform: kubesim + Ceph RGW + JupyterHub + proxy.

The session ``platform`` (:class:`gpulab.platform.LocalPlatform`) registers the gateway as a
managed service. Calls go through the proxy at
``/services/jobs-gateway/api/v1`` with the users' own hub tokens.

The cluster gets what an installed gpulab has before anyone submits: the dataset PVC of the
policy (helm-values/manifests/datasets.yaml in production) and each demo user's home PVC (the
spawner makes it on the first server start).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "tests" / "e2e" / "policy.yaml"
NAMESPACE = "default"
USERS = ("alice", "bob", "carol", "admin")
API = "/services/jobs-gateway/api/v1"


@dataclass
class Kubesim:
    """kubesim as the launcher's admin (its token, verifying kubesim's CA)."""

    http: httpx.Client

    @classmethod
    def of(cls, platform: Any) -> Kubesim:
        return cls(platform.kube_client())

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        r = self.http.get(path, params=params)
        r.raise_for_status()
        return r.json()

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(path, json=body)
        if r.status_code not in (200, 201, 409):
            raise AssertionError(f"create {path}: {r.status_code} {r.text}")
        return r.json()

    def jobs(self, selector: str = "app.kubernetes.io/managed-by=gpulab") -> list[dict[str, Any]]:
        return self.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs", labelSelector=selector)[
            "items"
        ]

    def pods(self, selector: str) -> list[dict[str, Any]]:
        return self.get(f"/api/v1/namespaces/{NAMESPACE}/pods", labelSelector=selector)["items"]

    def faults(self, **settings: Any) -> None:
        if settings:
            self.http.post("/kubesim/faults", json=settings).raise_for_status()
        else:
            self.http.delete("/kubesim/faults").raise_for_status()

    def requests(self) -> dict[str, Any]:
        return self.get("/kubesim/requests")


def pvc(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


@dataclass
class GatewayEnv:
    platform: Any
    kubesim: Kubesim
    tokens: dict[str, str]
    port: int

    @property
    def base(self) -> str:
        return self.platform.hub_url + API

    def client(self, user: str | None) -> httpx.Client:
        headers = {"Authorization": f"token {self.tokens[user]}"} if user else {}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60)

    def wait_state(
        self, user: str, job_id: str, states: tuple[str, ...], timeout: float = 120
    ) -> dict[str, Any]:
        """Poll GET /jobs/{id} until the state is one of ``states`` (a bound on waiting,
        not a timed assertion: the failure message shows the last state)."""
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        with self.client(user) as c:
            while time.monotonic() < deadline:
                r = c.get(f"/jobs/{job_id}")
                if r.status_code == 200:
                    job = r.json()
                    if job["state"] in states:
                        return job
                time.sleep(0.3)
        raise AssertionError(f"job {job_id} never reached {states}: {json.dumps(job)[:800]}")


def gateway_env(platform: Any) -> GatewayEnv:
    """The jobs gateway a platform registered (:mod:`gpulab.platform`), once it answers."""
    if platform.s3 is None:
        pytest.skip("no Ceph S3 gateway on this machine (ceph-mon, ceph-osd, radosgw)")
    config_text = (platform.state_dir / "jupyterhub_config.py").read_text()
    match = re.search(r"service_definition\(\s*GATEWAY,(.*?)\)", config_text, re.S)
    assert match, "the platform does not register the jobs gateway"
    port = int(re.search(r"port=(\d+)", match.group(1)).group(1))
    # The dataset claim comes from the launcher (as an admin provisions it); each user's home
    # claim is made by the gateway at their first submit (or by the spawner).
    tokens = {u: platform.user_token(u) for u in USERS}
    wait_gateway(platform.hub_url + API, tokens["alice"])
    return GatewayEnv(platform, Kubesim.of(platform), tokens, port)


def wait_gateway(base: str, token: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            r = httpx.get(base + "/me", headers={"Authorization": f"token {token}"}, timeout=10)
            if r.status_code == 200:
                return
            last = f"{r.status_code} {r.text[:200]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.3)
    raise AssertionError(f"the jobs gateway did not come up: {last}")


def command_job(name: str, script: str, **extra: Any) -> dict[str, Any]:
    """A CPU job running ``python -c script`` in the shared scipy image."""
    return {
        "name": name,
        "image": "harbor.local/shared/scipy:2024.10",
        "command": ["python", "-c", script],
        **extra,
    }


@dataclass
class SubmitProxy:
    """A proxy in front of the gateway (see :func:`submit_proxy`): its URL (give it to a client
    as the gateway URL) and, per submit that went through, its key and the gateway's status."""

    url: str
    submits: list[dict[str, str | int | None]] = field(default_factory=list)


@contextlib.contextmanager
def submit_proxy(gateway_url: str, *, lose_first_answer: bool = False) -> Iterator[SubmitProxy]:
    """Forward every request to ``gateway_url`` and record each submit (``POST .../jobs``).
    ``lose_first_answer``: the first submit reaches the gateway, which makes the job, but its
    client gets 503, as from a proxy when the gateway dies before it answers."""
    upstream = httpx.Client(base_url=gateway_url, timeout=60)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
            }
            r = upstream.request(self.command, self.path, content=body, headers=headers)
            status, content = r.status_code, r.content
            if self.command == "POST" and self.path.split("?")[0].rstrip("/").endswith("/jobs"):
                with lock:
                    first = not proxy.submits
                    proxy.submits.append(
                        {"key": self.headers.get("Idempotency-Key"), "gateway_status": status}
                    )
                if first and lose_first_answer:
                    status, content = 503, b'{"error": "the jobs gateway is restarting"}'
            self.send_response(status)
            self.send_header("Content-Type", r.headers.get("Content-Type", "application/json"))
            if "Retry-After" in r.headers:
                self.send_header("Retry-After", r.headers["Retry-After"])
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_DELETE = _forward

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy = SubmitProxy(url=f"http://127.0.0.1:{server.server_port}/")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        upstream.close()


def gateway_pid(port: int) -> int | None:
    """The gateway process the hub started for this platform (found by its service URL)."""
    want = f"JUPYTERHUB_SERVICE_URL=http://127.0.0.1:{port}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            if b"gpulab.hub.jobs.gateway" not in cmdline:
                continue
            if want in (entry / "environ").read_bytes().split(b"\0"):
                return int(entry.name)
        except OSError:
            continue
    return None


def restart_gateway(gw: GatewayEnv) -> None:
    """Kill the gateway; the hub starts it again. Returns once the new one answers."""
    pid = gateway_pid(gw.port)
    assert pid is not None, "gateway process not found"
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        new = gateway_pid(gw.port)
        if new is not None and new != pid:
            break
        time.sleep(0.1)
    wait_gateway(gw.base, gw.tokens["alice"])
