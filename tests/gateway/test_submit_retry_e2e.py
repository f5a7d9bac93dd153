"""A submit whose answer is lost is retried with the same Idempotency-Key and makes one job.

The real ``gpulab jobs`` command line talks to the real gateway through a small proxy that
forwards the first submit to the gateway (which creates the job) and then answers the client
503, as a proxy does when the gateway dies before it answers. The client's retry must get the
same job back, and the cluster must hold exactly one Job.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

GATEWAY_PATH = "/services/jobs-gateway"


@dataclass
class LossyProxy:
    url: str
    submits: list[dict[str, str | int | None]] = field(default_factory=list)


@pytest.fixture
def lossy_proxy(gw) -> Iterator[LossyProxy]:
    upstream = httpx.Client(base_url=gw.platform.hub_url + GATEWAY_PATH, timeout=60)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _forward(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
            }
            r = upstream.request(self.command, self.path, content=body, headers=headers)
            status, content = r.status_code, r.content
            if self.command == "POST" and self.path.rstrip("/").endswith("/jobs"):
                with lock:
                    first = not proxy.submits
                    proxy.submits.append(
                        {"key": self.headers.get("Idempotency-Key"), "gateway_status": status}
                    )
                if first:  # the gateway made the job; its answer is lost on the way back
                    status, content = 503, b'{"error": "the jobs gateway is restarting"}'
            self.send_response(status)
            self.send_header("Content-Type", r.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_DELETE = _forward

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    proxy = LossyProxy(url=f"http://127.0.0.1:{server.server_port}/")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        upstream.close()


def _cli_submit(gw, proxy: LossyProxy, spec_file, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GPULAB_GATEWAY_URL": proxy.url, "GPULAB_TOKEN": gw.tokens["alice"]}
    env.pop("GPULAB_HUB_URL", None)
    env.pop("JUPYTERHUB_API_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "gpulab.cli", "jobs", "--json", "submit", str(spec_file), *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _jobs_named(gw, name: str) -> list[str]:
    return [
        j["metadata"]["name"]
        for j in gw.kubesim.jobs()
        if j["metadata"]["name"].startswith(name + "-")
    ]


@pytest.mark.parametrize("given_key", [None, "retry-e2e-"], ids=["fresh-key", "cli-key"])
def test_a_lost_submit_answer_is_retried_into_the_same_job(gw, lossy_proxy, tmp_path, given_key):
    name = f"lost-answer-{uuid.uuid4().hex[:8]}"
    spec = tmp_path / "job.yaml"
    spec.write_text(
        f"name: {name}\nimage: harbor.local/shared/scipy:2024.10\n"
        "command: [python, -c, \"print('once')\"]\n"
    )
    extra = ("--idempotency-key", given_key + name) if given_key else ()
    done = _cli_submit(gw, lossy_proxy, spec, *extra)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)

    first, retry = lossy_proxy.submits[:2]
    assert first["gateway_status"] == 201, "the gateway made the job on the first attempt"
    assert first["key"] and first["key"] == retry["key"], lossy_proxy.submits
    if given_key:
        assert first["key"] == given_key + name
    assert len(lossy_proxy.submits) == 2
    assert _jobs_named(gw, name) == [job["id"]], "a retried submit made a second Job"

    with gw.client("alice") as c:
        c.delete(f"/jobs/{job['id']}")  # its pod is not needed: one Job is what was checked
