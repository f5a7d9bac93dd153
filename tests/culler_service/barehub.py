"""A real JupyterHub + configurable-http-proxy with the culler service and ``NullSpawner``,
without kubesim: for the culler-service tests and ``benchmarks/culler_cycle.py``."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from gpulab.platform import find_proxy, free_port

HERE = Path(__file__).resolve().parent


class BareHub:
    def __init__(
        self,
        state_dir: Path,
        policy: Path,
        *,
        culler: bool = True,
        interval: float = 1.0,
        dry_run: bool = False,
        extra_config: str = "",
        kubeconfig: Path | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.policy = policy.resolve()
        self.port = free_port()
        self.hub_port = free_port()
        self.culler_port = free_port()
        self.hub_url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(32)
        self.password = secrets.token_hex(8)
        self.servers_dir = state_dir / "servers"
        self.db_url = f"sqlite:///{state_dir / 'usage.sqlite'}"
        self.culler = culler
        self.interval = interval
        self.dry_run = dry_run
        self.extra_config = extra_config
        self.kubeconfig = kubeconfig
        self.proc: subprocess.Popen | None = None
        self.log_path = state_dir / "jupyterhub.log"

    def config_text(self) -> str:
        culler = ""
        if self.culler:
            culler = f"""
from gpulab.hub.services import (
    CULLER, admin_role, custom_scopes, server_token_scopes, service_definition, service_roles,
    user_scopes)
c.JupyterHub.services.append(service_definition(
    CULLER, policy_path={str(self.policy)!r}, port={self.culler_port}, interval={self.interval},
    dry_run={self.dry_run}, db_url={self.db_url!r},
    kubeconfig={str(self.kubeconfig) if self.kubeconfig else None!r}))
c.JupyterHub.load_roles.extend(service_roles(CULLER))
c.JupyterHub.load_roles.append({{"name": "user", "scopes": user_scopes([CULLER])}})
c.Spawner.server_token_scopes = server_token_scopes([CULLER])
c.JupyterHub.custom_scopes = custom_scopes()
c.JupyterHub.load_roles.append(admin_role(users=["admin"]))
"""
        return f"""
import sys
sys.path.insert(0, {str(HERE)!r})
from nullspawner import NullSpawner
c.JupyterHub.spawner_class = NullSpawner
c.NullSpawner.target = "http://127.0.0.1:{self.hub_port}/hub/health"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {self.password!r}
c.Authenticator.allow_all = True
c.Authenticator.admin_users = {{"admin"}}
c.JupyterHub.bind_url = "{self.hub_url}/"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{self.hub_port}"
c.JupyterHub.db_url = "sqlite:///{self.state_dir / "jupyterhub.sqlite"}"
c.JupyterHub.cookie_secret_file = {str(self.state_dir / "cookie_secret")!r}
c.JupyterHub.pid_file = {str(self.state_dir / "jupyterhub.pid")!r}
c.ConfigurableHTTPProxy.command = [{find_proxy()!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.JupyterHub.concurrent_spawn_limit = 0
c.JupyterHub.active_server_limit = 0
c.JupyterHub.last_activity_interval = 3600
c.JupyterHub.services = [{{"name": "tester", "api_token": {self.admin_token!r}}}]
c.JupyterHub.load_roles = [{{"name": "tester", "services": ["tester"],
  "scopes": ["admin:users", "admin:servers", "tokens", "admin:groups", "list:users",
             "read:users", "access:services"]}}]
{culler}
{self.extra_config}
"""

    def start(self) -> BareHub:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.servers_dir.mkdir(exist_ok=True)
        cfg = self.state_dir / "jupyterhub_config.py"
        cfg.write_text(self.config_text())
        bin_dir = Path(sys.executable).parent
        env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "GPULAB_NULLSPAWNER_DIR": str(self.servers_dir),
            "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(16),
        }
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(bin_dir / "jupyterhub"), "-f", str(cfg)],
            cwd=self.state_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited; log {self.log_path}")
            try:
                self.api("GET", "/hub/api/")
                if not self.culler or self._culler_up():
                    return self
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"hub not up in 90 s; log {self.log_path}")

    def _culler_up(self) -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.culler_port}/", timeout=2)
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def request(
        self,
        method: str,
        url: str,
        body=None,
        token: str | None = None,
        headers: dict | None = None,
    ):
        """(status, parsed JSON or text) for any URL behind the proxy."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            url if url.startswith("http") else self.hub_url + url, data=data, method=method
        )
        req.add_header("Authorization", f"token {token or self.admin_token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace")

    def api(self, method: str, path: str, body=None, token: str | None = None):
        status, reply = self.request(method, path, body, token)
        if status >= 400:
            raise urllib.error.HTTPError(path, status, str(reply), None, None)  # type: ignore[arg-type]
        return reply

    def add_user(self, name: str, groups: list[str] = (), admin: bool = False) -> None:
        with contextlib.suppress(urllib.error.HTTPError):  # admin exists (admin_users)
            self.api("POST", f"/hub/api/users/{name}")
        for g in groups:
            with contextlib.suppress(urllib.error.HTTPError):
                self.api("POST", f"/hub/api/groups/{g}")
            self.api("POST", f"/hub/api/groups/{g}/users", {"users": [name]})

    def user_token(self, name: str) -> str:
        return self.api("POST", f"/hub/api/users/{name}/tokens", {"note": "test"})["token"]

    def spawn(self, user: str, server: str = "") -> str:
        """Start a server and wait until ready; returns its $JUPYTERHUB_API_TOKEN."""
        path = (
            f"/hub/api/users/{user}/servers/{server}" if server else f"/hub/api/users/{user}/server"
        )
        self.api("POST", path, {})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            model = self.api("GET", f"/hub/api/users/{user}")
            if (model.get("servers") or {}).get(server, {}).get("ready"):
                env = json.loads((self.servers_dir / f"{user}-{server}.json").read_text())
                return env["JUPYTERHUB_API_TOKEN"]
            time.sleep(0.2)
        raise RuntimeError(f"{user}/{server} not ready")

    def running(self, user: str, server: str = "") -> bool:
        model = self.api("GET", f"/hub/api/users/{user}")
        return server in (model.get("servers") or {})

    def culler_url(self, path: str) -> str:
        return f"{self.hub_url}/services/culler/{path.lstrip('/')}"
