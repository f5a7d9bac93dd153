"""GPULabSpawner end to end: the real hub, proxy and kubesim of the shared ``platform`` fixture.

Users log in through the hub's login page (local shared-password authenticator), read the
spawn page, post the form (tampered or not), and the pods are read back from kubesim.
Each test uses its own users (``sp-*``) so that other suites sharing the platform see nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import re
import subprocess
import time
import urllib.error
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from gpulab.hub.names import escape_username
from gpulab.hub.workload.security import CONTAINER_SECURITY_CONTEXT, POD_SECURITY_CONTEXT

pytestmark = pytest.mark.e2e

PASSWORD = "gpulab"
READY_DEADLINE = 120  # seconds for a server to come up: a deadline, not a measured assertion
NAMESPACE = "default"
VISION_IMG = "harbor.local/vision/pytorch:2.4-cuda12.4"
NLP_IMG = "harbor.local/nlp/pytorch:2.4-cuda12.4"
CPU_IMG = "harbor.local/shared/scipy:2024.10"


# ----------------------------------------------------------------------------- helpers


def kubectl(platform: Any, *args: str, input: str | None = None, check: bool = True) -> str:
    env = {"KUBECONFIG": str(platform.kubeconfig), "PATH": "/usr/local/bin:/usr/bin:/bin"}
    result = subprocess.run(
        ["kubectl", *args], env=env, input=input, capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
    return result.stdout


def get_pod(platform: Any, name: str) -> dict[str, Any] | None:
    out = kubectl(platform, "get", "pod", "-n", NAMESPACE, name, "-o", "json", check=False)
    return json.loads(out) if out.strip() else None


def pod_name(user: str, server: str = "") -> str:
    return f"jupyter-{user}" + (f"--{server}" if server else "")


def new_user(platform: Any, group: str | None) -> str:
    name = f"sp-{uuid.uuid4().hex[:6]}"
    platform.api("POST", f"/hub/api/users/{name}")
    if group:
        with contextlib.suppress(urllib.error.HTTPError):
            platform.api("POST", f"/hub/api/groups/{group}")
        platform.api("POST", f"/hub/api/groups/{group}/users", {"users": [name]})
    return name


class Browser:
    """A logged-in user's browser session (cookies + xsrf), with plain HTTP."""

    def __init__(self, hub_url: str, name: str) -> None:
        self.hub_url = hub_url
        self.client = httpx.Client(base_url=hub_url, follow_redirects=False, timeout=60)
        self.client.get("/hub/login")
        r = self.client.post(
            "/hub/login",
            data={"username": name, "password": PASSWORD, "_xsrf": self.xsrf},
        )
        assert r.status_code == 302, r.text[:500]

    @property
    def xsrf(self) -> str:
        return self.client.cookies.get("_xsrf", "")

    def spawn_page(self, server: str = "") -> str:
        r = self.client.get(f"/hub/spawn{'/' + server if server else ''}")
        assert r.status_code == 200, r.status_code
        return r.text

    def post_form(self, form: dict[str, str], user: str = "", server: str = "") -> httpx.Response:
        path = f"/hub/spawn/{user}/{server}" if user else "/hub/spawn"
        return self.client.post(path, data={**form, "_xsrf": self.xsrf})

    def close(self) -> None:
        self.client.close()


@pytest.fixture
def browser(platform: Any) -> Iterator[Any]:
    opened: list[Browser] = []

    def login(name: str) -> Browser:
        b = Browser(platform.hub_url, name)
        opened.append(b)
        return b

    yield login
    for b in opened:
        b.close()


@pytest.fixture
def users(platform: Any) -> Iterator[Any]:
    """Make users; stop their servers at the end."""
    made: list[str] = []

    def make(group: str | None) -> str:
        name = new_user(platform, group)
        made.append(name)
        return name

    yield make
    for name in made:
        stop_server(platform, name)


@pytest.fixture(scope="module", autouse=True)
def dataset_claim(platform: Any) -> None:
    """The policy's dataset claim; in production the admin makes it (helm-values/manifests)."""
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "dataset-imagenet-mini", "namespace": NAMESPACE},
        "spec": {"accessModes": ["ReadOnlyMany"], "resources": {"requests": {"storage": "1Gi"}}},
    }
    kubectl(platform, "apply", "-f", "-", input=json.dumps(pvc))


def server_model(platform: Any, name: str, server: str = "") -> dict[str, Any] | None:
    return platform.api("GET", f"/hub/api/users/{name}")["servers"].get(server)


def wait_ready(platform: Any, name: str, server: str = "") -> dict[str, Any]:
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        model = server_model(platform, name, server)
        if model and model["ready"]:
            return model
        if model is None:
            raise AssertionError(f"{name}/{server}: the spawn failed (see jupyterhub.log)")
        time.sleep(0.5)
    raise AssertionError(f"{name}/{server}: not ready within {READY_DEADLINE}s")


def start_server(platform: Any, name: str, options: dict[str, str], server: str = "") -> None:
    path = f"/hub/api/users/{name}/servers/{server}" if server else f"/hub/api/users/{name}/server"
    platform.api("POST", path, options)
    wait_ready(platform, name, server)


def stop_server(platform: Any, name: str, server: str = "") -> None:
    path = f"/hub/api/users/{name}/servers/{server}" if server else f"/hub/api/users/{name}/server"
    with contextlib.suppress(urllib.error.HTTPError):
        platform.api("DELETE", path)
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        model = server_model(platform, name, server)
        if model is None or not model.get("pending") and not model.get("ready"):
            break
        time.sleep(0.5)
    while time.monotonic() < deadline and get_pod(platform, pod_name(name, server)):
        time.sleep(0.5)


def error_message(page: str) -> str:
    m = re.search(r'class="spawn-error-msg[^"]*">(.*?)</p>', page, re.S)
    return html.unescape(re.sub(r"\s+", " ", m.group(1)).strip()) if m else ""


def container(pod: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")


# ----------------------------------------------------------------------------- the form


def test_a_user_sees_only_their_groups_profiles_and_images(platform, users, browser):
    vision = users("vision")
    page = browser(vision).spawn_page()
    assert 'id="profile-item-gpu"' in page and 'id="profile-item-cpu"' in page
    assert VISION_IMG in page and NLP_IMG not in page
    assert '<option value="2" >2 GPUs (a100)</option>' in page
    # Above the group's per-server cap (2): shown, but disabled with the reason.
    gpus = page.split('id="profile-option-gpu--gpus"')[1].split("</select>")[0]
    assert re.search(
        r'<option value="4" disabled[^>]*>[^<]*above your group&#39;s limit of 2', gpus
    )

    nobody = users(None)
    page = browser(nobody).spawn_page()
    assert 'id="profile-item-gpu"' not in page and 'id="profile-item-cpu"' in page
    assert VISION_IMG not in page


def test_the_spawn_page_shows_free_gpus_and_the_quota_left(platform, users, browser):
    page = browser(users("vision")).spawn_page()
    assert "GPUs right now" in page
    assert re.search(r"a100</strong>: \d+ of 8 GPUs free", page)
    assert "Your GPU quota: 4 of 4 left" in page


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (
            {"profile-option-gpu--image": NLP_IMG, "profile-option-gpu--gpus": "1"},
            f"image '{NLP_IMG}' is not allowed for your groups (vision)",
        ),
        (
            {"profile-option-gpu--image": VISION_IMG, "profile-option-gpu--gpus": "16"},
            "gpus: 16 exceeds your groups' limit of 2 GPUs per server (allowed: 1, 2)",
        ),
    ],
    ids=["image-not-allowed", "16-gpus"],
)
def test_a_tampered_form_is_refused_with_a_clear_message(platform, users, browser, form, message):
    name = users("vision")
    r = browser(name).post_form({"profile": "gpu", **form})
    assert r.status_code == 403
    shown = error_message(r.text)
    assert shown.startswith("Error: Cannot start your server:") and message in shown
    assert 'id="profile-item-gpu"' in r.text  # the form is shown again
    assert server_model(platform, name) is None
    assert get_pod(platform, pod_name(name)) is None


def test_a_user_over_quota_is_refused(platform, users, browser):
    name = users("vision")
    # A job of this user holding 3 GPUs (Pending: it counts as soon as it exists).
    job_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"job-{name}",
            "namespace": NAMESPACE,
            "labels": {
                "app.kubernetes.io/managed-by": "gpulab",
                "app.kubernetes.io/component": "job",
                "gpulab.io/user": escape_username(name),
                "gpulab.io/group": "vision",
                "gpulab.io/gpus": "3",
                "gpulab.io/job-id": f"j-{name}",
            },
        },
        "spec": {
            "nodeSelector": {"kubesim.test/never": "true"},
            "containers": [
                {
                    "name": "main",
                    "image": "busybox",
                    "command": ["sleep", "600"],
                    "resources": {"limits": {"nvidia.com/gpu": "3"}},
                    # The namespace enforces Pod Security "restricted", as gpulab's does.
                    "securityContext": CONTAINER_SECURITY_CONTEXT,
                }
            ],
            "securityContext": POD_SECURITY_CONTEXT,
        },
    }
    kubectl(platform, "apply", "-f", "-", input=json.dumps(job_pod))
    try:
        deadline = time.monotonic() + 30
        r = None
        while time.monotonic() < deadline:  # until the hub's pod cache has seen the job
            r = browser(name).post_form(
                {
                    "profile": "gpu",
                    "profile-option-gpu--image": VISION_IMG,
                    "profile-option-gpu--gpus": "2",
                }
            )
            if r.status_code == 403:
                break
            stop_server(platform, name)
            time.sleep(0.5)
        assert r is not None and r.status_code == 403
        assert (
            f"GPU quota: you already use 3 of your 4 GPUs (your job j-{name} holds 3)"
            in error_message(r.text)
        )
        assert get_pod(platform, pod_name(name)) is None
    finally:
        kubectl(platform, "delete", "pod", "-n", NAMESPACE, f"job-{name}", "--wait=false")


# ----------------------------------------------------------------------------- the pod


def test_a_gpu_server_pod_has_everything_the_policy_says(platform, users, browser):
    name = users("vision")
    r = browser(name).post_form(
        {"profile": "gpu", "profile-option-gpu--image": VISION_IMG, "profile-option-gpu--gpus": "2"}
    )
    assert r.status_code == 302, error_message(r.text)
    wait_ready(platform, name)
    pod = get_pod(platform, pod_name(name))
    assert pod is not None
    c = container(pod)
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["spec"][
        "tolerations"
    ]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert vols[mounts["/home/jovyan"]["name"]]["persistentVolumeClaim"]["claimName"] == (
        f"home-{escape_username(name)}"
    )
    assert mounts["/datasets/imagenet-mini"]["readOnly"] is True
    assert vols["dataset-imagenet-mini"]["persistentVolumeClaim"]["readOnly"] is True
    assert vols[mounts["/dev/shm"]["name"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "1Gi"}
    psc, csc = pod["spec"]["securityContext"], c["securityContext"]
    assert psc["runAsNonRoot"] and psc["runAsUser"] == 1000 and psc["fsGroup"] == 100
    assert psc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert csc["allowPrivilegeEscalation"] is False and csc["capabilities"] == {"drop": ["ALL"]}
    # No Kubernetes credentials: no token automount, no service-account volume, no S3 key.
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert not any("serviceaccount" in m["mountPath"] for m in c["volumeMounts"])
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    assert env["GPULAB_IMAGE"] == VISION_IMG and env["GPULAB_GPUS"] == "2"
    assert env["GPULAB_GATEWAY_URL"].endswith("/services/jobs-gateway/")
    assert not any("S3" in k or "KUBE" in k for k in env)
    labels = pod["metadata"]["labels"]
    assert (
        labels["gpulab.io/user"] == escape_username(name) and labels["gpulab.io/group"] == "vision"
    )
    assert labels["gpulab.io/gpus"] == "2" and labels["gpulab.io/gpu-type"] == "a100"
    assert labels["app.kubernetes.io/managed-by"] == "gpulab"


def test_a_file_in_the_home_survives_a_stop_and_a_new_start(platform, users):
    name = users("vision")
    token = platform.user_token(name)
    start_server(platform, name, {"profile": "cpu", "image": CPU_IMG})
    headers = {"Authorization": f"token {token}"}
    url = f"{platform.hub_url}/user/{name}/api/contents/survivor.txt"
    body = {"type": "file", "format": "text", "content": "still here"}
    r = httpx.put(url, json=body, headers=headers, timeout=30)
    assert r.status_code in (200, 201), r.text
    stop_server(platform, name)
    assert kubectl(
        platform, "get", "pvc", "-n", NAMESPACE, f"home-{escape_username(name)}", "-o", "name"
    ).strip()
    start_server(platform, name, {"profile": "gpu", "gpus": "1"})
    r = httpx.get(url, headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["content"] == "still here"


def test_two_users_servers_run_side_by_side(platform, users):
    a, b = users("vision"), users("nlp")
    start_server(platform, a, {"profile": "gpu", "gpus": "1"})
    start_server(platform, b, {"profile": "gpu", "gpus": "1", "image": NLP_IMG})
    pa, pb = get_pod(platform, pod_name(a)), get_pod(platform, pod_name(b))
    assert pa and pb and pa["status"]["podIP"] != pb["status"]["podIP"]
    for name in (a, b):
        token = platform.user_token(name)
        r = httpx.get(
            f"{platform.hub_url}/user/{name}/api/status",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert r.status_code == 200


def test_no_override_leaks_after_a_gpu_server_and_a_failed_spawn(platform, users, browser):
    name = users("vision")
    start_server(platform, name, {"profile": "gpu", "gpus": "2"})
    stop_server(platform, name)
    r = browser(name).post_form(
        {"profile": "gpu", "profile-option-gpu--image": NLP_IMG, "profile-option-gpu--gpus": "2"}
    )
    assert r.status_code == 403
    start_server(platform, name, {"profile": "cpu", "image": CPU_IMG})
    pod = get_pod(platform, pod_name(name))
    assert pod is not None
    assert "nvidia.com/gpu" not in container(pod)["resources"].get("limits", {})
    assert not pod["spec"].get("nodeSelector")
    assert pod["metadata"]["labels"]["gpulab.io/gpus"] == "0"
    shm = next(v for v in pod["spec"]["volumes"] if v["name"] == "dshm")
    assert shm["emptyDir"]["sizeLimit"] == "64Mi"  # the CPU profile's default, not the GPU one


def test_named_servers_follow_the_policy(platform, users):
    nlp = users("nlp")  # named_servers: 0
    with pytest.raises((urllib.error.HTTPError, AssertionError)):
        start_server(platform, nlp, {"profile": "cpu"}, server="second")
    vision = users("vision")  # named_servers: 2
    start_server(platform, vision, {"profile": "cpu"}, server="second")
    stop_server(platform, vision, "second")


# ----------------------------------------------------------------------------- inside the server


async def run_in_terminal(platform: Any, name: str, token: str, command: str) -> str:
    """Run ``command`` in a Jupyter terminal of the user's server (a shell in the pod, as the
    user runs one from JupyterLab) and return its output up to an end marker."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    headers = {"Authorization": f"token {token}"}
    base = f"{platform.hub_url}/user/{name}"
    async with httpx.AsyncClient(headers=headers, timeout=30) as client:
        r = await client.post(f"{base}/api/terminals")
        assert r.status_code == 200, r.text
        term = r.json()["name"]
        ws_url = f"{base.replace('http://', 'ws://')}/terminals/websocket/{term}"
        conn = await websocket_connect(HTTPRequest(ws_url, headers=headers))
        try:
            # "END-$((6*7))" prints END-42; the echoed command line does not contain END-42.
            conn.write_message(json.dumps(["stdin", f"{command}; echo END-$((6*7))\r"]))
            out = ""
            deadline = time.monotonic() + 60
            while "END-42" not in out and time.monotonic() < deadline:
                msg = await conn.read_message()
                if msg is None:
                    break
                kind, *data = json.loads(msg)
                if kind == "stdout":
                    out += str(data[0])
            assert "END-42" in out, out
            return out
        finally:
            conn.close()
            await client.delete(f"{base}/api/terminals/{term}")


async def test_dev_shm_and_read_only_datasets_inside_the_server(platform, users):
    """In the running GPU server (a process in the pod): /dev/shm is a tmpfs of the profile's
    shm_size (1Gi), and writing to the shared dataset fails while reading it works."""
    name = users("vision")
    token = platform.user_token(name)
    await asyncio.to_thread(start_server, platform, name, {"profile": "gpu", "gpus": "1"})
    out = await run_in_terminal(
        platform,
        name,
        token,
        "stat -f -c 'SHM type=%T bytes=%b*%S' /dev/shm; "
        "grep ' /dev/shm ' /proc/self/mounts; "
        "head -1 /datasets/imagenet-mini/README.txt; "
        "echo x > /datasets/imagenet-mini/probe.txt; echo WRITE-RC=$?",
    )
    shm = re.search(r"SHM type=(\S+) bytes=(\d+)\*(\d+)", out)
    assert shm is not None, out
    assert shm.group(1) == "tmpfs" and int(shm.group(2)) * int(shm.group(3)) == 1024**3, out
    mounts = [line for line in out.splitlines() if line.startswith("tmpfs /dev/shm ")]
    assert mounts and "size=1048576k" in mounts[-1], out  # the last mount is the one seen
    assert "Shared dataset 'imagenet-mini'" in out  # readable
    rc = re.search(r"WRITE-RC=(\d+)", out)
    assert "Read-only file system" in out and rc is not None and rc.group(1) != "0", out
    dataset = platform.state_dir / "kubesim" / "volumes" / NAMESPACE / "dataset-imagenet-mini"
    assert not (dataset / "probe.txt").exists()
