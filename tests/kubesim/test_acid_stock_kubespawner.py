"""The acid test: stock JupyterHub + stock KubeSpawner + the real configurable-http-proxy
spawn real ``jupyterhub-singleuser`` servers through kubesim, for two users at once.

Nothing of gpulab runs in the hub: it is the stock ``jupyterhub`` command with
``kubespawner.KubeSpawner`` pointed at kubesim through ``KUBECONFIG``. The test drives the hub
with a service token over its REST API, reaches each server through the proxy with the
user's own token, checks each runs in its own pod on its own pod IP (as uid 1000, with a PVC
home), and that stopping a server removes the pod and ends the process.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubelet_testlib import pid_alive, wait_for

from gpulab.platform import free_port

REPO = Path(__file__).resolve().parents[2]
CHP = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
USERS = ("alice", "bob")
SPAWN_SECONDS = 180  # a bound for a hung spawn, not an assertion on speed

pytestmark = [
    pytest.mark.skipif(not CHP.exists(), reason="configurable-http-proxy not installed (npm ci)"),
    pytest.mark.skipif(
        os.geteuid() != 0, reason="jupyter server refuses root; needs uid switching"
    ),
]


HUB_CONFIG = """
c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {proxy_port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.JupyterHub.hub_connect_ip = "127.0.0.1"
c.JupyterHub.db_url = "sqlite:///{tmp}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.pid_file = "{tmp}/jupyterhub.pid"
c.ConfigurableHTTPProxy.command = ["{chp}"]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.pid_file = "{tmp}/proxy.pid"
# Answer spawn requests at once (202) so that both users' spawns run concurrently.
c.JupyterHub.tornado_settings = {{"slow_spawn_timeout": 0}}
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "acid", "api_token": "{service_token}"}}]
c.JupyterHub.load_roles = [
    {{
        "name": "acid",
        "scopes": ["admin:users", "admin:servers", "tokens", "proxy"],
        "services": ["acid"],
    }}
]
c.JupyterHub.spawner_class = "kubespawner.KubeSpawner"
c.KubeSpawner.namespace = "{namespace}"
c.KubeSpawner.cmd = ["jupyterhub-singleuser"]
c.KubeSpawner.image = "quay.io/jupyter/base-notebook:2024-07-29"
c.KubeSpawner.uid = 1000
c.KubeSpawner.fs_gid = 100
c.KubeSpawner.storage_pvc_ensure = True
c.KubeSpawner.pvc_name_template = "claim-{{username}}"
c.KubeSpawner.storage_capacity = "1Gi"
c.KubeSpawner.volumes = [
    {{"name": "home", "persistentVolumeClaim": {{"claimName": "claim-{{username}}"}}}}
]
c.KubeSpawner.volume_mounts = [{{"name": "home", "mountPath": "/home/jovyan"}}]
c.KubeSpawner.start_timeout = {spawn_seconds}
c.KubeSpawner.http_timeout = {spawn_seconds}
"""


class Hub:
    def __init__(self, url: str, token: str, proc: subprocess.Popen[bytes]) -> None:
        self.url = url
        self.proc = proc
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"token {token}"

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.url}/hub/api{path}", timeout=30, **kwargs)


@pytest.fixture
def hub(kubesim: Any, namespace: str, tmp_path: Path) -> Iterator[Hub]:
    proxy_port, hub_port, api_port = free_port(), free_port(), free_port()
    token = secrets.token_hex(16)
    config = HUB_CONFIG.format(
        proxy_port=proxy_port,
        hub_port=hub_port,
        proxy_api_port=api_port,
        tmp=tmp_path,
        chp=CHP,
        service_token=token,
        namespace=namespace,
        spawn_seconds=SPAWN_SECONDS,
    )
    (tmp_path / "jupyterhub_config.py").write_text(config)
    env = {
        **os.environ,
        "KUBECONFIG": str(kubesim.kubeconfig),
        "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(16),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
    }
    log = (tmp_path / "jupyterhub.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "jupyterhub"),
            "-f",
            str(tmp_path / "jupyterhub_config.py"),
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    hub = Hub(f"http://127.0.0.1:{proxy_port}", token, proc)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"jupyterhub exited; see {tmp_path / 'jupyterhub.log'}")
        try:
            return hub.api("GET", "/").status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_for("the hub behind the proxy", up, timeout=60)
        yield hub
    finally:
        proc.send_signal(signal.SIGTERM)  # the hub stops its proxy (and servers) itself
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def singleuser_pid(user: str, pod_ip: str) -> int | None:
    """The pid of the user's jupyterhub-singleuser process in the pod at ``pod_ip`` (found
    through its environment: another hub on this machine, as a parallel test worker runs, may
    have a server for the same user)."""
    service_url = f"JUPYTERHUB_SERVICE_URL=http://{pod_ip}:".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            if b"jupyterhub-singleuser" not in cmdline:
                continue
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = f"JUPYTERHUB_USER={user}".encode() in environ and any(
            e.startswith(service_url) for e in environ
        )
        if ours and pid_alive(int(entry)):
            return int(entry)
    return None


def proc_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line")


def test_stock_kubespawner_two_users(kubesim: Any, k8s: Any, hub: Hub, namespace: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(k8s)
    for user in USERS:
        assert hub.api("POST", f"/users/{user}").status_code in (201, 409)
    for user in USERS:  # both spawns in flight at once
        assert hub.api("POST", f"/users/{user}/server").status_code in (201, 202)

    def ready(user: str) -> bool:
        model = hub.api("GET", f"/users/{user}").json()
        server = (model.get("servers") or {}).get("")
        if server and server.get("ready"):
            return True
        if not model.get("pending") and not server:
            raise AssertionError(f"spawn of {user} failed: {json.dumps(model)}")
        return False

    for user in USERS:
        wait_for(f"{user}'s server", lambda u=user: ready(u), timeout=SPAWN_SECONDS)

    pods = {
        p.metadata.labels["hub.jupyter.org/username"]: p
        for p in core.list_namespaced_pod(
            namespace, label_selector="component=singleuser-server"
        ).items
    }
    assert set(pods) == set(USERS)
    ips = {user: pods[user].status.pod_ip for user in USERS}
    assert len(set(ips.values())) == 2 and all(ip.startswith("127.0.0.") for ip in ips.values())
    routes = hub.api("GET", "/proxy").json()
    for user in USERS:
        assert routes[f"/user/{user}/"]["target"] == f"http://{ips[user]}:8888"

    pids = {}
    for user in USERS:
        token = hub.api("POST", f"/users/{user}/tokens", json={"note": "acid"}).json()["token"]
        resp = requests.get(
            f"{hub.url}/user/{user}/api/status",
            headers={"Authorization": f"token {token}"},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        assert "started" in resp.json()
        pid = singleuser_pid(user, ips[user])
        assert pid is not None
        assert proc_uid(pid) == 1000  # the security context really applied
        pids[user] = pid

    for user in USERS:
        assert hub.api("DELETE", f"/users/{user}/server").status_code in (202, 204)
    for user in USERS:

        def stopped(u: str = user) -> bool:
            model = hub.api("GET", f"/users/{u}").json()
            return not model.get("servers") and not model.get("pending")

        wait_for(f"{user}'s server to stop", stopped, timeout=SPAWN_SECONDS)
        wait_for(
            f"{user}'s pod to go",
            lambda u=user: (
                not core.list_namespaced_pod(
                    namespace, label_selector=f"hub.jupyter.org/username={u}"
                ).items
            ),
        )
        wait_for(f"{user}'s process to end", lambda u=user: not pid_alive(pids[u]))
    # The home claims stay (KubeSpawner keeps them), and so do their folders.
    for user in USERS:
        assert (kubesim.data_dir / "volumes" / namespace / f"claim-{user}").is_dir()
