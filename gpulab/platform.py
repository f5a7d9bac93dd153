"""The whole platform on one machine: kubesim, a real Ceph S3 gateway, JupyterHub and its proxy.

`gpulab up` and the end-to-end test fixtures both use :class:`LocalPlatform`, so what a newcomer
runs is what the tests check. Every part is a real server in its own process group on loopback;
:meth:`LocalPlatform.stop` ends all of them (and kubesim ends every pod it started).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from gpulab.hub import demo
from gpulab.hub.die_with_parent import set_parent_death_signal
from gpulab.hub.workload.labels import APP, COMPONENT_LABEL, DATASET_COMPONENT, NAME_LABEL
from gpulab.kube_identities import ADMIN, CULLER, GATEWAY, HUB, Identity
from gpulab.kubesim.launch import READY_PREFIX, ready_url, serve_command
from gpulab.local_kube import LocalKube, LocalKubeError

if TYPE_CHECKING:
    import httpx

# The checkout this module runs from, if it does (an editable install). An installed wheel has
# none: what the platform needs ships as package data (the demo, microceph.sh) or is looked up
# on PATH (configurable-http-proxy).
REPO_ROOT = Path(__file__).resolve().parent.parent
# The launcher's own hub service: it creates users and tokens for demos and tests.
LAUNCHER_SERVICE = "gpulab-launcher"
# The hub this launcher starts answers every request with this header, set to an id chosen
# for the run: the readiness probe accepts no other answer, so the launcher's token never goes
# to another program listening on the public port.
LAUNCH_HEADER = "X-Gpulab-Launch"
# Where the hub writes its proxy's pid (JupyterHub's default name, in the state dir).
PROXY_PID_FILE = "jupyterhub-proxy.pid"


class PlatformError(RuntimeError):
    """A part of the platform did not come up; the message says which and where its log is."""


PORT_RANGE_ENV = "GPULAB_PORT_RANGE"
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a child process to bind soon after.

    Between this check and the child's bind, another launcher on the machine could pick the
    same port: with ``$GPULAB_PORT_RANGE`` (``LOW-HIGH``) set differently per launcher (the
    test suite's parallel workers), ports come only from that range, so launchers never
    compete. A port is handed out once per process, so two children of one launcher never
    get the same one either."""
    span = os.environ.get(PORT_RANGE_ENV, "")
    if span:
        low, _, high = span.partition("-")
        candidates = list(range(int(low), int(high) + 1))
        random.shuffle(candidates)
    else:
        candidates = [0] * 64  # let the kernel choose
    for candidate in candidates:
        if candidate in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind((host, candidate))
            except OSError:
                continue
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port
    raise PlatformError(f"no free port on {host} (range {span or 'ephemeral'})")


def ensure_port_free(host: str, port: int) -> None:
    """Refuse a public port that something already listens on, without connecting to it.

    Binding tells, and sends nothing: with ``SO_REUSEADDR`` the bind fails only while a socket
    listens there (not for connections of a past run still in TIME_WAIT)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise PlatformError(
                f"port {port} on {host} is already in use ({exc.strerror}): another `gpulab "
                "up` or another program listens there. Stop it, or choose another port with "
                "--port."
            ) from None


def find_proxy() -> str:
    """The real configurable-http-proxy: the checkout's npm install first, then PATH (it is a
    Node.js program, so a wheel cannot ship it)."""
    local = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise PlatformError(
            "configurable-http-proxy not found: put it on PATH "
            "(`npm install -g configurable-http-proxy`), or run `npm install` in a gpulab "
            "checkout (the README's set-up does it)"
        )
    return found


def find_microceph() -> Path | None:
    """``$GPULAB_MICROCEPH_SH`` if set, else the script shipped in the package."""
    override = os.environ.get("GPULAB_MICROCEPH_SH")
    script = Path(override) if override else Path(str(files("gpulab") / "microceph.sh"))
    return script if script.is_file() else None


def ceph_available() -> bool:
    return all(shutil.which(b) for b in ("ceph-mon", "ceph-osd", "radosgw"))


@dataclass
class S3Endpoint:
    endpoint: str
    access_key: str
    secret_key: str
    # A second, unprivileged user: tests use it to show one RGW user cannot read another's data.
    other_access_key: str = ""
    other_secret_key: str = ""


@dataclass
class PlatformConfig:
    state_dir: Path
    policy_path: Path = field(default_factory=demo.policy_file)
    host: str = "127.0.0.1"
    port: int = 8000
    nodes: str = "2x4"
    s3: bool = True
    demo_users: bool = True
    # Seconds between culler cycles; tests shorten it to watch a cull happen.
    cull_interval: float = 60.0
    extra_hub_config: str = ""
    hub_env: dict[str, str] = field(default_factory=dict)
    # Every user's server and every service on its own origin under http://DOMAIN:PORT
    # (alice at http://alice.localhost:PORT): what users who do not trust each other need.
    # Browsers resolve *.localhost to loopback themselves; Python's resolver here may not, so
    # the test fixture shared by HTTP-client tests keeps one origin.
    subdomains: bool = False
    # The hub's host name with subdomains. Under a bare "localhost" two users' servers are
    # different *sites* to a browser (SameSite cookies stay home); under "gpulab.localhost"
    # they are one site, as alice.hub.example.org and bob.hub.example.org are in production.
    domain: str = "localhost"
    # kubesim serves Kueue's API and runs its Kueue: servers and jobs are queued by it (off:
    # gpulab admits them itself, as on a cluster without Kueue).
    kueue: bool = False


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path
    # Where this run's output starts: logs are appended across runs, and an earlier run's
    # lines (a stale ready line with a dead port) must not be read as this one's.
    log_offset: int = 0


class LocalPlatform:
    """Start and stop kubesim, microceph (optional) and JupyterHub as one unit."""

    def __init__(self, config: PlatformConfig) -> None:
        self.config = config
        self.state_dir = config.state_dir.resolve()
        self.procs: list[_Proc] = []
        self.kubesim_url = ""
        # The launcher's own kubeconfig (a cluster admin, for `kubectl` and the tests); the
        # hub and the services get their own in kube_dir (kube_identities).
        self.kubeconfig = self.state_dir / "kubeconfig"
        self.kube = LocalKube(self.state_dir, self.kubeconfig)
        # Where the proxy listens; with subdomains the hub's public URL is localhost's name,
        # as the users' hosts must be subdomains of it.
        self.bind_url = f"http://{config.host}:{config.port}"
        self.subdomain_host = f"http://{config.domain}:{config.port}" if config.subdomains else ""
        self.hub_url = self.subdomain_host or self.bind_url
        self.admin_token = ""
        self.s3: S3Endpoint | None = None
        self._microceph_dir: Path | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self, progress=None) -> LocalPlatform:
        say = progress or (lambda _msg: None)
        ensure_port_free(self.config.host, self.config.port)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)  # the hub db, logs, tokens, kubeconfig, Ceph keys
        try:
            say("starting kubesim (embedded Kubernetes)")
            self._start_kubesim()
            self._create_datasets()
            if self.config.s3 and ceph_available() and find_microceph():
                say("starting Ceph S3 gateway (microceph)")
                self._start_microceph()
            say("starting JupyterHub and configurable-http-proxy")
            self._start_hub()
            if self.config.demo_users:
                self._create_demo_users()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        # Hub first (it stops the proxy), then kubesim (it ends every pod), then Ceph.
        for proc in reversed(self.procs):
            _terminate(proc.popen)
        self.procs.clear()
        if self._microceph_dir is not None:
            script = find_microceph()
            if script:
                subprocess.run(
                    ["bash", str(script), "stop"],
                    env={**os.environ, "MC_DIR": str(self._microceph_dir)},
                    capture_output=True,
                    timeout=60,
                    check=False,
                )
            self._microceph_dir = None

    def __enter__(self) -> LocalPlatform:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ----------------------------------------------------------------- parts
    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> _Proc:
        log_path = self.state_dir / f"{name}.log"
        log = open(log_path, "ab", opener=_owner_only)  # noqa: SIM115 - closed at exit
        log.write(
            f"==== {name} started by gpulab at {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode()
        )
        log.flush()
        offset = os.fstat(log.fileno()).st_size
        popen = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.state_dir,
            start_new_session=True,
            umask=0o077,  # what the hub and kubesim write is their user's alone
            preexec_fn=_die_with_parent,
        )
        proc = _Proc(name, popen, log_path, offset)
        self.procs.append(proc)
        return proc

    def _start_kubesim(self) -> None:
        data_dir = self.state_dir / "kubesim"
        ready_file = self.state_dir / "kubesim.ready"
        ready_file.unlink(missing_ok=True)
        token_file = self._write_token_file()
        proc = self._spawn(
            "kubesim",
            serve_command(
                data_dir,
                self.kubeconfig,
                nodes=self.config.nodes,
                audit_log=self.state_dir / "kubesim-audit.jsonl",
                token_auth_file=token_file,
                # Every API object on disk: the next start finds the jobs, claims and pods.
                store_dir=data_dir / "store",
                kueue=self.config.kueue,
            ),
            dict(os.environ),
        )
        line = _wait_for_line(proc, READY_PREFIX, timeout=60)
        self.kubesim_url = ready_url(line[line.index(READY_PREFIX) :]) or ""
        self._write_kubeconfigs()
        self._apply_access()

    def _write_token_file(self) -> Path:
        self.kube = LocalKube(self.state_dir, self.kubeconfig)
        return self.kube.write_token_file()

    def _write_kubeconfigs(self) -> None:
        self.kube.url = self.kubesim_url
        self.kube.write_kubeconfigs()

    def _apply_access(self) -> None:
        try:
            self.kube.apply_access()
        except LocalKubeError as exc:
            raise PlatformError(str(exc)) from None

    # What tests and tools need to call kubesim as one of the identities (LocalKube).
    @property
    def kube_dir(self) -> Path:
        return self.kube.folder

    def kubeconfig_of(self, identity: Identity) -> Path:
        return self.kube.kubeconfig_of(identity)

    def kube_ssl_context(self) -> ssl.SSLContext:
        return self.kube.ssl_context()

    def kube_headers(self, identity: Identity = ADMIN) -> dict[str, str]:
        return self.kube.headers(identity)

    def kube_client(self, identity: Identity = ADMIN) -> httpx.Client:
        return self.kube.client(identity)

    def _kube(self, method: str, path: str, body: dict | None = None):
        """One call to kubesim as the launcher (a cluster admin)."""
        return self.kube.request(method, path, body)

    def _create_datasets(self) -> None:
        """The policy's shared datasets, as an admin would provision them: a claim per dataset
        (read-only in every pod) holding a small sample, so the demo has data to look at."""
        from gpulab.hub.policy import load_policy

        policy = load_policy(self.config.policy_path)
        namespace = "default"
        for dataset in policy.storage.datasets:
            claim = {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {
                    "name": dataset.claim,
                    "labels": {NAME_LABEL: APP, COMPONENT_LABEL: DATASET_COMPONENT},
                },
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            }
            with contextlib.suppress(urllib.error.HTTPError):  # 409: kept from a last run
                self._kube("POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", claim)
            folder = self.state_dir / "kubesim" / "volumes" / namespace / dataset.claim
            # The folders above it are kubesim's (0700), whether it or we make them first.
            for parent in reversed(folder.parents[:3]):
                parent.mkdir(mode=0o700, exist_ok=True)
            folder.mkdir(exist_ok=True)
            folder.chmod(0o755)  # every pod reads it (mounted read-only); only the admin writes
            readme = folder / "README.txt"
            if not readme.exists():
                readme.write_text(
                    f"Shared dataset '{dataset.name}' (read-only in every server and job).\n"
                )
                (folder / "labels.csv").write_text("image,label\n0001.png,cat\n0002.png,dog\n")

    def _start_microceph(self) -> None:
        script = find_microceph()
        assert script is not None
        mc_dir = self.state_dir / "microceph"
        ports = {
            "RGW_PORT": str(free_port()),
            "MON_V2_PORT": str(free_port()),
            "MON_V1_PORT": str(free_port()),
        }
        env = {**os.environ, "MC_DIR": str(mc_dir), **ports}
        result = subprocess.run(
            ["bash", str(script), "start"],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            umask=0o077,
        )
        if result.returncode != 0:
            raise PlatformError(f"microceph failed to start: {result.stderr[-2000:]}")
        self._microceph_dir = mc_dir
        self._guard_microceph(script, mc_dir)
        values = _read_env_file(mc_dir / "s3.env")
        self.s3 = S3Endpoint(
            endpoint=values.get("S3_ENDPOINT", f"http://127.0.0.1:{ports['RGW_PORT']}"),
            access_key=values["S3_ACCESS_KEY"],
            secret_key=values["S3_SECRET_KEY"],
            other_access_key=values.get("S3_ACCESS_KEY_2", ""),
            other_secret_key=values.get("S3_SECRET_KEY_2", ""),
        )

    def origin(self, name: str, kind: str = "user") -> str:
        """The origin a browser reaches user (or service) ``name`` at: its own subdomain with
        subdomains, else the hub's."""
        if not self.subdomain_host:
            return self.hub_url
        from jupyterhub.utils import subdomain_hook_idna  # the hub's default hook

        return f"http://{subdomain_hook_idna(name, self.config.domain, kind)}:{self.config.port}"

    def user_url(self, name: str) -> str:
        """The URL of ``name``'s default server, as a browser opens it."""
        return f"{self.origin(name)}/user/{name}/"

    def service_url(self, name: str) -> str:
        """The URL of service ``name``, as a browser opens it."""
        return f"{self.origin(name, 'service')}/services/{name}/"

    def _guard_microceph(self, script: Path, mc_dir: Path) -> None:
        """Ceph's daemons detach from us, so the kernel cannot end them with the launcher. A
        guard process that does die with it (like every part) stops them when it gets
        SIGTERM: a SIGKILLed `gpulab up` leaves no Ceph daemon behind either."""
        guard = (
            "trap 'kill $! 2>/dev/null; bash \"$MC_SCRIPT\" stop; exit 0' TERM; "
            "while :; do sleep 3600 & wait $!; done"
        )
        self._spawn(
            "microceph-guard",
            ["bash", "-c", guard],
            {**os.environ, "MC_DIR": str(mc_dir), "MC_SCRIPT": str(script)},
        )

    def _hub_config_text(self, hub_port: int, proxy_api_port: int) -> str:
        proxy = find_proxy()
        policy = str(self.config.policy_path)
        gateway_port = free_port()
        # Jobs reach the gateway directly with subdomains (the proxy routes by host name, and
        # a job's resolver may not know *.localhost).
        gateway_for_jobs = (
            f"http://127.0.0.1:{gateway_port}/services/jobs-gateway/"
            if self.subdomain_host
            else self.hub_url + "/services/jobs-gateway/"
        )
        gateway_kubeconfig = str(self.kubeconfig_of(GATEWAY))
        culler_kubeconfig = str(self.kubeconfig_of(CULLER))
        return f"""# Written by gpulab's local launcher; edit the policy, not this file.
from gpulab.hub.config import configure
from gpulab.hub.services import CULLER, GATEWAY, service_definition, service_roles

configure(
    c,
    policy_path={policy!r},
    local=True,
    subdomain_host={self.subdomain_host or None!r},
    services=[
        service_definition(
            GATEWAY,
            port={gateway_port},
            policy_path={policy!r},
            namespace="default",
            kubeconfig={gateway_kubeconfig!r},
            public_url={gateway_for_jobs!r},
        ),
        service_definition(
            CULLER,
            port={free_port()},
            policy_path={policy!r},
            namespace="default",
            kubeconfig={culler_kubeconfig!r},
            interval={self.config.cull_interval!r},
            db_url="sqlite:///{self.state_dir / "usage.sqlite"}",
        ),
    ],
)
# The services' own hub roles; the user-facing scopes are in the "user" role configure() sets.
c.JupyterHub.load_roles.extend(service_roles(GATEWAY, CULLER))
{self._jupyter_config_text()}
c.JupyterHub.bind_url = {self.bind_url + "/"!r}
c.JupyterHub.hub_bind_url = "http://127.0.0.1:{hub_port}"
c.JupyterHub.db_url = "sqlite:///{self.state_dir / "jupyterhub.sqlite"}"
c.JupyterHub.cookie_secret_file = {str(self.state_dir / "jupyterhub_cookie_secret")!r}
c.JupyterHub.pid_file = {str(self.state_dir / "jupyterhub.pid")!r}
# The proxy dies with the hub, even a SIGKILLed one: no orphan keeps the public port.
from gpulab.hub.die_with_parent import dying_with_this_process
c.ConfigurableHTTPProxy.command = dying_with_this_process([{proxy!r}])
c.ConfigurableHTTPProxy.pid_file = {str(self.state_dir / PROXY_PID_FILE)!r}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.should_start = True

import os as _os
# The launch id on every answer (see LAUNCH_HEADER), merged with any headers set above.
_settings = c.JupyterHub.tornado_settings
if not isinstance(_settings, dict):  # not assigned yet: a lazy value, maybe with updates
    _settings = c.JupyterHub.tornado_settings = _settings.get_value({{}})
_settings.setdefault("headers", {{}})[{LAUNCH_HEADER!r}] = _os.environ["GPULAB_LAUNCH_ID"]
c.JupyterHub.services.append(
    {{"name": {LAUNCHER_SERVICE!r}, "api_token": _os.environ["GPULAB_LAUNCHER_TOKEN"]}}
)
c.JupyterHub.load_roles.append(
    {{"name": "gpulab-launcher", "scopes": ["admin:users", "admin:servers", "tokens", "admin:groups",
      "list:users", "read:users", "access:servers"],
      "services": [{LAUNCHER_SERVICE!r}]}}
)
{self.config.extra_hub_config}
"""

    @staticmethod
    def _jupyter_config_text() -> str:
        """Servers run from this Python environment. An installed wheel put the file that
        enables gpulab's server extension in ``{sys.prefix}/etc/jupyter``, where Jupyter looks;
        an editable install has no data files, so point Jupyter at the checkout's copy."""
        checkout = REPO_ROOT / "jupyter-config"
        if not checkout.is_dir():
            return ""
        env = {"JUPYTER_CONFIG_PATH": str(checkout)}
        return f"c.KubeSpawner.environment.update({env!r})\n"

    def _stop_leftovers(self) -> None:
        """End a hub or proxy that an earlier run left (by their pid files in the state dir),
        so that this run never runs second copies; remove pid files that name no such
        process, so that JupyterHub never signals an unrelated process that reuses the pid."""
        for pid_file, program in (
            (self.state_dir / "jupyterhub.pid", "jupyterhub"),
            (self.state_dir / PROXY_PID_FILE, "configurable-http-proxy"),
        ):
            pid = _pid_running(pid_file, program)
            if pid is not None:
                _end_pid(pid)
            pid_file.unlink(missing_ok=True)

    def _start_hub(self) -> None:
        self._stop_leftovers()
        hub_port = free_port()
        proxy_api_port = free_port()
        config_path = self.state_dir / "jupyterhub_config.py"
        config_path.write_text(self._hub_config_text(hub_port, proxy_api_port))
        config_path.chmod(0o600)
        token_path = self.state_dir / "launcher-token"
        if token_path.exists():
            self.admin_token = token_path.read_text().strip()
        else:
            self.admin_token = secrets.token_hex(32)
            token_path.write_text(self.admin_token)
            token_path.chmod(0o600)
        launch_id = secrets.token_hex(16)
        env = {
            **os.environ,
            **self.config.hub_env,
            "KUBECONFIG": str(self.kubeconfig_of(HUB)),
            "GPULAB_LAUNCHER_TOKEN": self.admin_token,
            "GPULAB_LAUNCH_ID": launch_id,
            "GPULAB_STATE_DIR": str(self.state_dir),
            # The proxy's auth token is shared by the hub and the proxy it starts.
            "CONFIGPROXY_AUTH_TOKEN": secrets.token_hex(32),
        }
        if self.s3:
            env.update(
                GPULAB_S3_ENDPOINT=self.s3.endpoint,
                GPULAB_S3_ACCESS_KEY=self.s3.access_key,
                GPULAB_S3_SECRET_KEY=self.s3.secret_key,
            )
        # The hub inherits our interpreter's venv so that jupyterhub and gpulab are found.
        bin_dir = Path(sys.executable).parent
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        proc = self._spawn(
            "jupyterhub",
            [str(bin_dir / "jupyterhub"), "-f", str(config_path)],
            env,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                raise PlatformError(
                    f"JupyterHub exited with {proc.popen.returncode}; log: {proc.log_path}\n"
                    + _tail(proc)
                )
            if answers_as_launch(self.bind_url, launch_id):
                return
            time.sleep(0.3)
        raise PlatformError(
            f"the JupyterHub this launcher started did not answer on {self.hub_url} in 90 s "
            f"(is something else answering there?); log: {proc.log_path}"
        )

    def _create_demo_users(self) -> None:
        """The demo accounts (:func:`gpulab.hub.demo.users_file`) with their hub groups."""
        import yaml

        document = yaml.safe_load(demo.users_file().read_text()) or {}
        for user in document.get("users", []):
            name = user["name"]
            with contextlib.suppress(urllib.error.HTTPError):
                self.api("POST", f"/hub/api/users/{name}", {"admin": bool(user.get("admin"))})
            for group in user.get("groups", []):
                with contextlib.suppress(urllib.error.HTTPError):
                    self.api("POST", f"/hub/api/groups/{group}")
                self.api("POST", f"/hub/api/groups/{group}/users", {"users": [name]})

    # ----------------------------------------------------------------- hub API
    def api(self, method: str, path: str, body: dict | None = None, token: str | None = None):
        """Call the hub's REST API as the launcher service (or with `token`), at the proxy's
        own address: the proxy sends every host it has no route for to the hub, and the hub's
        public name (``*.localhost``) may not resolve outside a browser."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.bind_url + path, data=data, method=method)
        request.add_header("Authorization", f"token {token or self.admin_token}")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def user_token(self, name: str, note: str = "gpulab") -> str:
        """A fresh API token for `name`, as a researcher gets from the hub's token page."""
        reply = self.api("POST", f"/hub/api/users/{name}/tokens", {"note": note})
        return reply["token"]


def _owner_only(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)


def _die_with_parent() -> None:
    """Runs in the child: if the launcher dies without stopping us (a killed test run, a
    SIGKILLed `gpulab up`), the kernel sends SIGTERM, and the hub and kubesim clean up."""
    set_parent_death_signal(signal.SIGTERM)


def _terminate(popen: subprocess.Popen, grace: float = 15.0) -> None:
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGTERM)
    try:
        popen.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(popen.pid, signal.SIGKILL)
        popen.wait(5)


def _pid_running(pid_file: Path, program: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and runs ``program``, else None."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, ValueError):
        return None
    return pid if program in cmdline else None


def _end_pid(pid: int, grace: float = 15.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds for the process to go, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.1)
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has exited; only its parent's wait is missing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def answers_as_launch(hub_url: str, launch_id: str) -> bool:
    """Whether the hub at ``hub_url`` is the one started with ``launch_id`` (its answers carry
    :data:`LAUNCH_HEADER`). Asks without credentials: whatever answers learns nothing."""
    request = urllib.request.Request(hub_url + "/hub/api/", method="GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.headers.get(LAUNCH_HEADER) == launch_id
    except (OSError, urllib.error.URLError):  # not up yet (HTTPError is a URLError)
        return False


def _run_output(proc: _Proc) -> str:
    """What the process wrote to its log in this run."""
    try:
        with open(proc.log_path, "rb") as log:
            log.seek(proc.log_offset)
            return log.read().decode(errors="replace")
    except OSError:
        return ""


def _wait_for_line(proc: _Proc, marker: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in _run_output(proc).splitlines():
            if marker in line:
                return line
        if proc.popen.poll() is not None:
            raise PlatformError(
                f"{proc.name} exited with {proc.popen.returncode}; log: {proc.log_path}\n"
                + _tail(proc)
            )
        time.sleep(0.1)
    raise PlatformError(f"{proc.name} not ready after {timeout:.0f} s; log: {proc.log_path}")


def _tail(proc: _Proc, lines: int = 30) -> str:
    return "\n".join(_run_output(proc).splitlines()[-lines:])


def _read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :]
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'\"")
    return values
