"""Starting the local platform again, and next to something else: a second start on the same
state dir reads its own kubesim port (the log is appended across runs), and a public port
already in use is refused before anything starts, without a byte sent to whatever listens
there (least of all the launcher's admin token)."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpulab.kubesim.launch import READY_PREFIX

from gpulab.platform import (
    LAUNCH_HEADER,
    LocalPlatform,
    PlatformConfig,
    PlatformError,
    answers_as_launch,
    free_port,
)

STALE_URL = f"http://127.0.0.1:{free_port()}"  # closed: nothing answers there


def kubesim_answers(platform: LocalPlatform) -> bool:
    with platform.kube_client() as kube:
        return kube.get("/version").status_code == 200


def test_a_second_start_on_the_same_state_dir_reads_its_own_kubesim_port(tmp_path: Path):
    config = PlatformConfig(state_dir=tmp_path, port=free_port(), s3=False, demo_users=False)
    first = LocalPlatform(config)
    try:
        first._start_kubesim()
        assert kubesim_answers(first)
    finally:
        first.stop()  # as Ctrl-C does: kubesim.log keeps the first run's ready line
    log = tmp_path / "kubesim.log"
    with log.open("a") as f:  # and a run before it, whose port is closed now
        f.write(f"{READY_PREFIX}{STALE_URL} kubeconfig={tmp_path / 'kubeconfig'}\n")
    second = LocalPlatform(config)
    try:
        second._start_kubesim()
        ready = [line for line in log.read_text().splitlines() if line.startswith(READY_PREFIX)]
        assert len(ready) == 3
        assert second.kubesim_url == ready[-1][len(READY_PREFIX) :].split()[0]
        assert second.kubesim_url != STALE_URL and kubesim_answers(second)
    finally:
        second.stop()


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """Another program on the port: a listening socket that records whether anyone came."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        s.setblocking(False)
        yield s


def nobody_connected(s: socket.socket) -> bool:
    try:
        conn, _ = s.accept()
    except BlockingIOError:
        return True
    conn.close()
    return False


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path, listener):
    port = listener.getsockname()[1]
    platform = LocalPlatform(PlatformConfig(state_dir=tmp_path / "state", port=port, s3=False))
    with pytest.raises(PlatformError) as info:
        platform.start()
    assert f"port {port} on 127.0.0.1 is already in use" in str(info.value)
    assert "--port" in str(info.value)
    assert not (tmp_path / "state").exists()  # nothing started, nothing written
    assert nobody_connected(listener)


def test_gpulab_up_on_a_port_in_use_says_so_and_sends_nothing(tmp_path: Path, listener):
    port = listener.getsockname()[1]
    done = subprocess.run(
        [sys.executable, "-m", "gpulab.cli", "up", "--port", str(port), "--no-s3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert nobody_connected(listener)


class _Impostor(http.server.BaseHTTPRequestHandler):
    """Answers everything with 200, like a hub would, and remembers the credentials it got."""

    seen: list[str | None] = []
    launch_id: str | None = None

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).seen.append(self.headers.get("Authorization"))
        self.send_response(200)
        if self.launch_id is not None:
            self.send_header(LAUNCH_HEADER, self.launch_id)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"version": "5.0.0"}')

    def log_message(self, *args: object) -> None:
        pass


def test_the_readiness_probe_accepts_only_this_launch_and_sends_no_credentials():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Impostor)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert not answers_as_launch(url, "this-launch")  # a hub, but not the one we started
        _Impostor.launch_id = "another-launch"
        assert not answers_as_launch(url, "this-launch")
        _Impostor.launch_id = "this-launch"
        assert answers_as_launch(url, "this-launch")
        assert _Impostor.seen == [None, None, None]
        assert not answers_as_launch(STALE_URL, "this-launch")  # nothing there yet
    finally:
        server.shutdown()
        server.server_close()
