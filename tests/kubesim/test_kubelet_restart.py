"""A kubesim killed with SIGKILL: its containers die with it (PR_SET_PDEATHSIG), and what
they left behind is reaped by the next kubesim started on the same data dir. As root, a pod's
PID namespace ends with its init, so nothing is left behind at all.

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
from gpulab.kubesim.launch import KubesimChild
from kubelet_testlib import processes_with, wait_for


def kubectl(kubeconfig: Path, *args: str, stdin: str | None = None) -> str:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    out = subprocess.run(
        ["kubectl", *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def _start_tree(tmp_path: Path, token: str) -> KubesimChild:
    """A kubesim running a pod whose main process has a background child."""
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)", token]
    script = f"{' '.join(repr(a) for a in sleeper)} & exec {' '.join(repr(a) for a in sleeper)}"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "tree"},
        "spec": {"containers": [{"name": "c", "image": "x", "command": ["sh", "-c", script]}]},
    }
    first = KubesimChild.start(tmp_path)
    kubectl(first.kubeconfig, "create", "-f", "-", stdin=json.dumps(pod))
    wait_for("both processes", lambda: len(processes_with(token)) == 2)
    return first


def _cleanup(token: str, *children: KubesimChild | None) -> None:
    for proc in children:
        if proc is not None:
            proc.stop()
    for pid in processes_with(token):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(os.geteuid() != 0, reason="PID namespaces need root")
def test_sigkilled_kubesim_takes_its_pods_processes_along(tmp_path: Path) -> None:
    token = f"kubesim-leftover-{uuid.uuid4().hex}"
    first = None
    try:
        first = _start_tree(tmp_path, token)
        first.process.kill()  # SIGKILL: no cleanup at all
        first.process.wait()
        # The pod's PID namespace ends with its init: the background child goes too.
        wait_for("the whole pod to die with kubesim", lambda: processes_with(token) == [])
    finally:
        _cleanup(token, first)


@pytest.mark.skipif(os.geteuid() == 0, reason="as root, no process outlives its pod's init")
def test_sigkilled_kubesim_leftovers_reaped_by_the_next_kubesim(tmp_path: Path) -> None:
    token = f"kubesim-leftover-{uuid.uuid4().hex}"
    log = tmp_path / "kubesim.log"
    first = second = None
    try:
        first = _start_tree(tmp_path, token)
        first.process.kill()  # SIGKILL: no cleanup at all
        first.process.wait()
        # The container's main process dies with kubesim; its background child is orphaned.
        wait_for("the main process to die with kubesim", lambda: len(processes_with(token)) == 1)
        second = KubesimChild.start(tmp_path)  # the same data folder
        assert processes_with(token) == []  # reaped before the new kubesim served
        assert "left by an earlier run" in log.read_text()
    finally:
        _cleanup(token, first, second)
