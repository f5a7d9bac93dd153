"""A real ``jupyter server`` subprocess with gpulab's extension, for the extension tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from gpulab.platform import free_port


class JupyterServer:
    def __init__(self, root: Path, env: dict[str, str] | None = None, args: list[str] = ()):
        self.root = root
        self.port = free_port()
        self.token = "gpulab-test-token"
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root.parent / f"jupyter-{self.port}.log"
        self.env = env or {}
        self.args = list(args)
        self.proc: subprocess.Popen | None = None

    def start(self) -> JupyterServer:
        bin_dir = Path(sys.executable).parent
        argv = [
            str(bin_dir / "jupyter"), "server", "--no-browser", f"--port={self.port}",
            "--ip=127.0.0.1", f"--ServerApp.root_dir={self.root}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.jpserver_extensions=gpulab.extensions.server=True",
            *self.args,
        ]  # fmt: skip
        if os.geteuid() == 0:
            argv.append("--allow-root")
        env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "JUPYTER_RUNTIME_DIR": str(self.root.parent / "runtime"),
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                cwd=self.root,
            )  # fmt: skip
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited; log {self.log_path}")
            try:
                if httpx.get(self.url + "/api/status", headers=self.auth, timeout=5).is_success:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"jupyter server not up in 90 s; log {self.log_path}")

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def client(self, token: bool = True) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.auth if token else {}, timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None


@contextlib.contextmanager
def bare_server(root: Path):
    """A server with gpulab's extension in ``root`` (its HOME too) and no jobs gateway or
    culler configured: a refusal seen through it came from the extension itself."""
    env = {"HOME": str(root), "GPULAB_GATEWAY_URL": "", "GPULAB_CULLER_URL": ""}
    env["JUPYTERHUB_API_TOKEN"] = ""
    server = JupyterServer(root, env).start()
    try:
        yield server
    finally:
        server.stop()


def until(predicate, what: str, limit: float = 60.0, every: float = 0.3):
    """Poll ``predicate`` until it returns something truthy (a bound on waiting, not a timed
    assertion); the failure names what never happened."""
    deadline = time.monotonic() + limit
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"{what}: not seen within {limit:.0f} s (last: {last!r})")


def kernel_pid(kernel_id: str) -> int | None:
    """The pid of the local kernel process whose command line names ``kernel_id``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if f"kernel-{kernel_id}.json" in cmdline:
            return int(entry.name)
    return None


def idle_kernel_holding_gpu(server: JupyterServer, client: httpx.Client, gib: int = 2) -> str:
    """Start a kernel, talk to it once (as a notebook's websocket would: it goes idle), and
    make the server's fake GPU probe (``server.gpus_file``) say it holds ``gib`` GiB; its id."""
    import json

    from jupyter_client import BlockingKernelClient

    kid = client.post("/api/kernels", json={"name": "python3"}).json()["id"]
    pid = until(lambda: kernel_pid(kid), "the kernel's process")
    kc = BlockingKernelClient()
    kc.load_connection_file(str(server.root.parent / "runtime" / f"kernel-{kid}.json"))
    kc.start_channels(hb=False)
    msg_id = kc.kernel_info()
    until(lambda: kc.get_shell_msg(timeout=30)["parent_header"].get("msg_id") == msg_id,
          "the kernel's kernel_info reply")  # fmt: skip
    kc.stop_channels()
    used = gib * 1024**3
    server.gpus_file.write_text(json.dumps({"gpus": [{  # type: ignore[attr-defined]
        "index": 0, "utilization_pct": 0, "memory_used_bytes": used,
        "processes": [{"pid": pid, "used_memory_bytes": used}],
    }]}))  # fmt: skip
    return kid
