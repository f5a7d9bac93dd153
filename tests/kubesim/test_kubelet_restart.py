"""A kubesim killed with SIGKILL: its containers die with it (PR_SET_PDEATHSIG), and what
they left behind is reaped by the next kubesim started on the same data dir.

This test needs to kill kubesim itself, so it runs its own ``gpulab kubesim serve`` processes
(not the shared session one) and talks to them with kubectl.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from kubelet_testlib import processes_with, wait_for

READY = "kubesim ready at "


def serve(data_dir: Path, log: Path) -> tuple[subprocess.Popen[str], Path]:
    kubeconfig = data_dir.parent / "kubeconfig"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gpulab.cli",
            "kubesim",
            "serve",
            "--data-dir",
            str(data_dir),
            "--kubeconfig",
            str(kubeconfig),
        ],  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=log.open("a"),
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # the child prints READY once it serves, or exits
        if line.startswith(READY):
            return proc, kubeconfig
    raise AssertionError(f"kubesim did not start; see {log}")


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    out = subprocess.run(
        ["kubectl", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigkilled_kubesim_leaves_nothing_running(tmp_path: Path) -> None:
    token = f"kubesim-leftover-{uuid.uuid4().hex}"
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)", token]
    script = f"{' '.join(repr(a) for a in sleeper)} & exec {' '.join(repr(a) for a in sleeper)}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "tree"},
        "spec": {"containers": [{"name": "c", "image": "x", "command": ["sh", "-c", script]}]},
    }
    data_dir, log = tmp_path / "data", tmp_path / "kubesim.log"
    first, kubeconfig = serve(data_dir, log)
    second = None
    try:
        kubectl(kubeconfig, "create", "-f", "-", stdin=json.dumps(pod))
        wait_for("both processes", lambda: len(processes_with(token)) == 2)
        first.kill()  # SIGKILL: no cleanup at all
        first.wait()
        # The container's main process dies with kubesim; its background child is orphaned.
        wait_for("the main process to die with kubesim", lambda: len(processes_with(token)) == 1)
        second, kubeconfig = serve(data_dir, log)
        assert processes_with(token) == []  # reaped before the new kubesim served
        assert "left by an earlier run" in log.read_text()
    finally:
        for proc in (first, second):
            if proc is not None:
                stop(proc)
        for pid in processes_with(token):
            os.kill(pid, signal.SIGKILL)
