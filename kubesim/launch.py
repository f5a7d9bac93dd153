"""Run ``gpulab kubesim serve`` as a child process: the one way the local platform, the test
fixtures and the benchmarks start kubesim.

The child runs in its own session (process group), so :meth:`KubesimChild.stop` ends it and
every pod process it started, even those a crashed kubelet left behind. It announces itself
on stdout with one line, ``kubesim ready at <url> kubeconfig=<path>``
(:data:`READY_PREFIX`, printed by :mod:`gpulab.kubesim.main`).
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

__all__ = ["READY_PREFIX", "KubesimChild", "ready_url", "serve_command"]

READY_PREFIX = "kubesim ready at "


def serve_command(
    data_dir: Path,
    kubeconfig: Path,
    *,
    nodes: str | None = None,
    audit_log: Path | None = None,
    port: int = 0,
    token_auth_file: Path | None = None,
    store_dir: Path | None = None,
    kueue: bool = False,
) -> list[str]:
    """The command line of a kubesim server (port 0: a free port, read from the ready line)."""
    cmd = [sys.executable, "-m", "gpulab.cli", "kubesim", "serve", "--port", str(port)]
    cmd += ["--data-dir", str(data_dir), "--kubeconfig", str(kubeconfig)]
    if nodes is not None:
        cmd += ["--nodes", nodes]
    if audit_log is not None:
        cmd += ["--audit-log", str(audit_log)]
    if token_auth_file is not None:
        cmd += ["--token-auth-file", str(token_auth_file)]
    if store_dir is not None:
        cmd += ["--store-dir", str(store_dir)]
    if kueue:
        cmd.append("--kueue")
    return cmd


def ready_url(line: str) -> str | None:
    """The API URL from kubesim's ready line, ``None`` for any other line."""
    if not line.startswith(READY_PREFIX):
        return None
    return line[len(READY_PREFIX) :].split()[0]


@dataclass
class KubesimChild:
    """A running ``kubesim serve`` child: ``url``, ``kubeconfig``, ``data_dir``, ``process``."""

    url: str
    kubeconfig: Path
    data_dir: Path
    audit_log: Path | None
    process: subprocess.Popen[str]

    @classmethod
    def start(
        cls,
        folder: Path,
        *,
        nodes: str | None = None,
        audit_log: Path | None = None,
        timeout: float = 60,
        token_auth_file: Path | None = None,
        keep_store: bool = False,
        kueue: bool = False,
    ) -> KubesimChild:
        """Start kubesim with its state under ``folder`` (data in ``folder/data``,
        appending to the log ``folder/kubesim.log``: a restart in the same folder keeps both) and
        wait for its ready line; ``timeout`` is a deadline for a slow machine, not a target.
        ``token_auth_file``: serve with ``--token-auth-file`` (authentication and RBAC on).
        ``keep_store``: keep the API objects in ``folder/store`` (a restart resumes them).
        ``kueue``: serve with ``--kueue`` (Kueue's API and kubesim's Kueue)."""
        data_dir, kubeconfig = folder / "data", folder / "kubeconfig"
        log_path = folder / "kubesim.log"
        cmd = serve_command(
            data_dir,
            kubeconfig,
            nodes=nodes,
            audit_log=audit_log,
            token_auth_file=token_auth_file,
            store_dir=folder / "store" if keep_store else None,
            kueue=kueue,
        )
        with log_path.open("a") as log:
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True
            )
        assert proc.stdout is not None
        try:
            url = _wait_ready(proc, proc.stdout, timeout)
        except BaseException:  # interrupted while waiting (Ctrl-C, a time limit): leave no orphan
            _stop(proc)
            raise
        if url is None:
            _stop(proc)
            raise RuntimeError(f"kubesim did not start; see {log_path}")
        # Keep reading stdout into the log: a full pipe would block kubesim's next print.
        threading.Thread(target=_drain, args=(proc.stdout, log_path), daemon=True).start()
        return cls(url, kubeconfig, data_dir, audit_log, proc)

    def stop(self) -> None:
        _stop(self.process)


def _wait_ready(proc: subprocess.Popen[str], out: IO[str], timeout: float) -> str | None:
    sel = selectors.DefaultSelector()
    sel.register(out, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sel.select(timeout=1):
                if proc.poll() is not None:
                    return None
                continue
            line = out.readline()
            if not line and proc.poll() is not None:
                return None
            url = ready_url(line)
            if url is not None:
                return url
        return None
    finally:
        sel.close()


def _drain(out: IO[str], log_path: Path) -> None:
    with log_path.open("a") as log:
        for line in out:
            log.write(line)
            log.flush()


def _stop(proc: subprocess.Popen[str]) -> None:
    """SIGTERM, then SIGKILL to the whole group (pods included) once it has had its chance."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
