"""The extension in a real user server on the platform: kubesim runs ``jupyterhub-singleuser``
as uid 1000 with the pod's env; every call goes through the real proxy to
``/user/NAME/gpulab/...`` with the user's own hub token. The extension forwards to the real
jobs gateway and culler with the server's ``$JUPYTERHUB_API_TOKEN``, which never shows up in
what the browser gets."""

from __future__ import annotations

import contextlib
import time
import urllib.error
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.extension.jupyter_testlib import until

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

CPU_IMG = "harbor.local/shared/scipy:2024.10"
NAMESPACE = "default"
WRITE_OUTPUT = (
    "import os, pathlib\n"
    "print('hello from the extension job', flush=True)\n"
    "out = pathlib.Path(os.environ['GPULAB_OUTPUT_DIR'])\n"
    "out.mkdir(parents=True, exist_ok=True)\n"
    "(out / 'model.txt').write_text('weights 7')\n"
)


@dataclass
class UserServer:
    name: str
    token: str
    url: str  # .../user/NAME/
    server_token: str

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"token {self.token}"}, timeout=60
        )


def _new_user(platform, group: str) -> str:
    name = f"ext-{uuid.uuid4().hex[:6]}"
    platform.api("POST", f"/hub/api/users/{name}")
    with contextlib.suppress(urllib.error.HTTPError):
        platform.api("POST", f"/hub/api/groups/{group}")
    platform.api("POST", f"/hub/api/groups/{group}/users", {"users": [name]})
    return name


def _server_model(platform, name: str):
    return platform.api("GET", f"/hub/api/users/{name}")["servers"].get("")


@pytest.fixture(scope="module")
def server(ext_platform) -> Iterator[UserServer]:
    platform = ext_platform.platform
    name = _new_user(platform, "vision")
    platform.api("POST", f"/hub/api/users/{name}/server", {"profile": "cpu", "image": CPU_IMG})
    try:

        def ready():
            model = _server_model(platform, name)
            if model is None:
                raise AssertionError(f"{name}: the spawn failed (see jupyterhub.log)")
            return model["ready"]

        until(ready, f"{name}'s server ready", limit=180, every=0.5)
        pod = ext_platform.kubesim.get(f"/api/v1/namespaces/{NAMESPACE}/pods/jupyter-{name}")
        env = {e["name"]: e.get("value", "") for e in pod["spec"]["containers"][0]["env"]}
        assert env.get("GPULAB_GATEWAY_URL") and env.get("GPULAB_CULLER_URL"), env
        yield UserServer(
            name,
            platform.user_token(name),
            f"{platform.hub_url}/user/{name}/",
            env["JUPYTERHUB_API_TOKEN"],
        )
    finally:
        with contextlib.suppress(urllib.error.HTTPError):
            platform.api("DELETE", f"/hub/api/users/{name}/server")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and _server_model(platform, name):
            time.sleep(0.5)


def test_the_extension_is_active_in_the_spawned_server(server: UserServer) -> None:
    with server.client() as c:
        r = c.get("gpulab/api/cull-status")
        assert r.status_code == 200, r.text
        assert r.json()["culler"] is True
        me = c.get("gpulab/api/me")
        assert me.status_code == 200, me.text
        assert me.json()["name"] == server.name
        assert server.server_token not in me.text


def test_submit_list_succeed_logs_outputs_through_the_extension(server: UserServer) -> None:
    spec = {"name": "ext-train", "image": CPU_IMG, "command": ["python", "-c", WRITE_OUTPUT]}
    with server.client() as c:
        r = c.post("gpulab/api/jobs", json=spec, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert r.status_code == 201, r.text
        job = r.json()
        assert job["owner"] == server.name
        job_id = job["id"]

        listed = c.get("gpulab/api/jobs").json()["items"]
        assert job_id in {j["id"] for j in listed}

        # the followed log streams through the extension until the job ends
        with c.stream("GET", f"gpulab/api/jobs/{job_id}/logs", params={"follow": "1"}) as s:
            assert s.status_code == 200
            assert s.headers["Content-Type"].startswith("text/plain")
            followed = "".join(s.iter_text())
        assert "hello from the extension job" in followed

        def finished():
            j = c.get(f"gpulab/api/jobs/{job_id}").json()
            return j if j["state"] in ("Succeeded", "Failed", "Cancelled") else None

        done = until(finished, f"job {job_id} finished", limit=180)
        assert done["state"] == "Succeeded", done

        logs = c.get(f"gpulab/api/jobs/{job_id}/logs")
        assert logs.status_code == 200 and "hello from the extension job" in logs.text

        def uploaded():
            o = c.get(f"gpulab/api/jobs/{job_id}/outputs").json()
            return o if o.get("upload") == "ok" else None

        outputs = until(uploaded, "outputs uploaded", limit=120)
        assert "outputs/model.txt" in {i["path"] for i in outputs["items"]}

        r = c.get(f"gpulab/api/jobs/{job_id}/outputs/outputs/model.txt", params={"redirect": "0"})
        assert r.status_code == 200, r.text
        url = r.json()["url"]
        assert "X-Amz-Signature" in url
        assert httpx.get(url, timeout=30).content == b"weights 7"
        r = c.get(f"gpulab/api/jobs/{job_id}/outputs/outputs/model.txt", follow_redirects=False)
        assert r.status_code == 307 and r.headers["Location"].startswith("http")

        resubmitted = c.post(f"gpulab/api/jobs/{job_id}/resubmit")
        assert resubmitted.status_code == 201, resubmitted.text
        new_id = resubmitted.json()["id"]
        assert new_id != job_id
        cancelled = c.delete(f"gpulab/api/jobs/{new_id}")
        assert cancelled.status_code == 202, cancelled.text


def test_gateway_errors_pass_through_with_status_and_problems(server: UserServer) -> None:
    with server.client() as c:
        r = c.post("gpulab/api/jobs", json={"name": "Not A Label", "command": ["true"]})
        assert r.status_code == 422, r.text
        assert any(p["field"] == "name" for p in r.json()["problems"])
        r = c.get("gpulab/api/jobs/no-such-job-123")
        assert r.status_code == 404 and "error" in r.json()
        r = c.post("gpulab/api/jobs", json={"name": "nb", "notebook": "../../etc/x.ipynb"})
        assert r.status_code == 422 and r.json()["problems"][0]["field"] == "notebook"


def test_the_reporter_posts_activity_and_the_culler_answers(ext_platform, server) -> None:
    with server.client() as c:

        def reported():
            body = c.get("gpulab/api/cull-status").json()
            return body if body["reporter"]["reports_sent"] >= 2 and body["known"] else None

        body = until(reported, "two activity reports answered by the culler", limit=120)
        assert body["reporter"]["last_error"] is None
        assert body["status"]["state"] in ("active", "idle", "warned", "kept", "exempt")
        assert body["status"]["server"] == ""
    # the culler's own view, asked with the user's token
    r = httpx.get(
        f"{ext_platform.hub_url}/services/culler/api/v1/servers/me",
        params={"server": ""},
        headers={"Authorization": f"token {server.token}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    # the same server, as the culler sees it now (its state may have moved on since the report)
    assert r.json()["server"] == body["status"]["server"]
    assert r.json()["state"] in ("active", "idle", "warned", "kept", "exempt")


def test_the_culler_hands_the_server_its_kernel_rules_from_the_policy(server) -> None:
    with server.client() as c:
        body = until(
            lambda: (
                (b := c.get("gpulab/api/cull-status").json()).get("status", {}).get("kernels") and b
            ),
            "a culler status carrying the kernel rules",
            limit=120,
        )
    # the user is in `vision`: tests/e2e/policy.yaml says kernels idle 2 h -> shutdown, warn 10 m
    assert body["status"]["kernels"] == {
        "gpu_idle_after_seconds": 7200,
        "action": "shutdown",
        "warn_before_seconds": 600,
    }


def test_keep_my_server_is_forwarded_to_the_culler(server: UserServer) -> None:
    with server.client() as c:
        r = c.post("gpulab/api/keep")
        assert r.status_code in (200, 409), r.text
        body = r.json()
        assert "state" in body and "keeps_left" in body
        assert body.get("message") or body.get("error")


def test_the_jobs_page_renders_without_the_server_token(server: UserServer) -> None:
    with server.client() as c:
        r = c.get("gpulab/jobs")
        assert r.status_code == 200, r.text
        for element in ('id="jobs-table"', 'id="submit-form"', 'id="keep-button"',
                        f'"/user/{server.name}/gpulab/api/"'):  # fmt: skip
            assert element in r.text, element
        assert server.server_token not in r.text
        assert CPU_IMG in r.text  # the image field defaults to the server's image
        js = c.get("gpulab/static/jobs.js")
        assert js.status_code == 200 and server.server_token not in js.text
        status = c.get("gpulab/api/cull-status")
        assert server.server_token not in status.text
