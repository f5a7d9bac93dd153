"""The extension in a real ``jupyter server`` (no hub): the page, XSRF, path confinement,
answers when no service is configured, and the idle-GPU-kernel reaper (fake GPU probe naming
the real kernel's pid) warning then shutting down a kernel while the server stays up."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from tests.extension.jupyter_testlib import JupyterServer, idle_kernel_holding_gpu, until


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("jserver")
    root = base / "home"
    (root / "work").mkdir(parents=True)
    (root / "work" / "train.ipynb").write_text(json.dumps({"cells": [], "nbformat": 4}))
    outside = base / "secret.ipynb"
    outside.write_text("{}")
    os.symlink(outside, root / "work" / "link.ipynb")
    gpus = base / "gpus.json"
    gpus.write_text(json.dumps({"gpus": [{"index": 0, "utilization_pct": 0}]}))
    env = {
        "HOME": str(root),
        "GPULAB_GPU_PROBE": f"fake:{gpus}",
        "GPULAB_KERNEL_GPU_IDLE_AFTER": "1",
        "GPULAB_KERNEL_WARN_BEFORE": "2",
        "GPULAB_KERNEL_ACTION": "shutdown",
        "GPULAB_GPUS": "1",
        "GPULAB_IMAGE": "harbor.local/shared/scipy:2024.10",
    }
    for key in ("GPULAB_GATEWAY_URL", "GPULAB_CULLER_URL", "JUPYTERHUB_API_TOKEN"):
        env[key] = ""
    s = JupyterServer(root, env, ["--GPULabExtension.report_interval=0.5"]).start()
    s.gpus_file = gpus  # type: ignore[attr-defined]
    try:
        yield s
    finally:
        s.stop()


def test_the_jobs_page_renders_with_its_parts(server: JupyterServer) -> None:
    with server.client() as c:
        r = c.get("/gpulab/jobs")
        assert r.status_code == 200
        page = r.text
        for element in ('id="jobs-table"', 'id="submit-form"', 'id="cull-banner"',
                        'id="keep-button"', 'id="log-view"', 'id="outputs-list"',
                        'id="cancel-button"', 'id="f-params"', "gpulab/static/jobs.js"):  # fmt: skip
            assert element in page, element
        config = json.loads(page.split('id="gpulab-config" type="application/json">')[1]
                            .split("</script>")[0])  # fmt: skip
        assert config["apiUrl"] == "/gpulab/api/"
        assert config["image"] == "harbor.local/shared/scipy:2024.10" and config["gpus"] == 1
        assert server.token not in page
        assert c.get("/gpulab/static/jobs.js").status_code == 200
        assert c.get("/gpulab/static/jobs.css").status_code == 200


def test_anonymous_requests_are_refused(server: JupyterServer) -> None:
    with server.client(token=False) as c:
        assert c.get("/gpulab/api/jobs").status_code == 403
        page = c.get("/gpulab/jobs", follow_redirects=False)
        assert page.status_code in (302, 403)


def test_post_and_delete_need_the_xsrf_token_with_a_cookie_session(server: JupyterServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        browser.get("/login")
        xsrf = browser.cookies["_xsrf"]
        r = browser.post("/login", data={"password": server.token, "_xsrf": xsrf})
        assert r.status_code in (200, 302)
        assert browser.get("/gpulab/api/cull-status").status_code == 200  # cookie works
        for method, path in (("POST", "/gpulab/api/keep"), ("POST", "/gpulab/api/jobs"),
                             ("DELETE", "/gpulab/api/jobs/abc")):  # fmt: skip
            r = browser.request(method, path, json={})
            assert r.status_code == 403, (method, path, r.text)
            assert "xsrf" in r.json()["error"].lower()
        # with the token the page gets, the request goes through to the (absent) culler
        r = browser.post("/gpulab/api/keep", headers={"X-XSRFToken": xsrf})
        assert r.status_code == 503 and "culler is not configured" in r.json()["error"]


def test_services_not_configured_answer_503_json(server: JupyterServer) -> None:
    with server.client() as c:
        for path in ("/gpulab/api/jobs", "/gpulab/api/me", "/gpulab/api/jobs/j1",
                     "/gpulab/api/jobs/j1/logs", "/gpulab/api/jobs/j1/outputs"):  # fmt: skip
            r = c.get(path)
            assert r.status_code == 503, path
            assert "jobs gateway is not configured" in r.json()["error"]
        status = c.get("/gpulab/api/cull-status").json()
        assert status["known"] is False and status["culler"] is False


@pytest.mark.parametrize(
    ("notebook", "message"),
    [
        ("../secret.ipynb", "outside your server's folder"),
        ("/etc/passwd", "outside your server's folder"),
        ("work/link.ipynb", "outside your server's folder"),  # a symlink pointing out
        ("work/missing.ipynb", "no such file"),
        ("work", "no such file"),
        (42, "is not a path"),
    ],
)
def test_notebook_paths_are_confined_to_the_root_dir(server, notebook, message) -> None:
    with server.client() as c:
        r = c.post("/gpulab/api/jobs", json={"name": "nb", "notebook": notebook})
    assert r.status_code == 422, r.text
    problem = r.json()["problems"][0]
    assert problem["field"] == "notebook" and message in problem["message"]


def test_bad_bodies_are_4xx_not_500(server: JupyterServer) -> None:
    with server.client() as c:
        assert c.post("/gpulab/api/jobs", content=b"{not json").status_code == 400
        assert c.post("/gpulab/api/jobs", json=[1, 2]).status_code == 422
        big = {"name": "x", "env": {"A": "x" * 70000}}
        assert c.post("/gpulab/api/jobs", json=big).status_code == 413
        r = c.post(
            "/gpulab/api/jobs", content=b"name: [", headers={"Content-Type": "application/yaml"}
        )
        assert r.status_code == 400
        assert c.get("/gpulab/api/jobs/j1/logs?tail=abc").status_code == 400
        assert c.get("/gpulab/api/jobs/j1/outputs/a/%2E%2E/b").status_code == 400


def test_an_idle_gpu_holding_kernel_is_warned_then_shut_down(server: JupyterServer) -> None:
    with server.client() as c:
        other = c.post("/api/kernels", json={"name": "python3"}).json()["id"]
        kid = idle_kernel_holding_gpu(server, c)

        def events(action: str) -> list[dict]:
            kernels = c.get("/gpulab/api/cull-status").json()["kernels"]
            return [e for e in kernels["events"] if e["kernel_id"] == kid and e["action"] == action]

        warned = until(lambda: events("warn"), "a warning for the GPU-holding kernel")
        assert "holds 2.0 GiB of GPU memory" in warned[0]["reason"]
        assert "shut down at" in warned[0]["reason"]
        until(lambda: events("shutdown"), "the kernel shut down")
        kernels = {k["id"] for k in c.get("/api/kernels").json()}
        assert kid not in kernels
        assert other in kernels  # a kernel holding no GPU memory is left alone
        assert c.get("/api/status").status_code == 200  # the server stays up
        rules = c.get("/gpulab/api/cull-status").json()["kernels"]["rules"]
        assert rules == {"gpu_idle_after_seconds": 1, "action": "shutdown",
                         "warn_before_seconds": 2}  # fmt: skip
        c.delete(f"/api/kernels/{other}")


def test_notification_settings_are_relayed_to_the_gateway(server: JupyterServer) -> None:
    with server.client() as c:
        for method, path in (("GET", "notify"), ("PUT", "notify"), ("POST", "notify/test"),
                             ("POST", "notify/secret")):  # fmt: skip
            r = c.request(method, f"/gpulab/api/{path}", json={})
            assert r.status_code == 503, (method, path)
            assert "jobs gateway is not configured" in r.json()["error"]
        assert c.put("/gpulab/api/notify", content=b"{not json").status_code == 400
        assert c.post("/gpulab/api/notify").status_code == 405
