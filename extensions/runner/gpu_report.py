"""A GPU job's utilisation reports to the culler (docs/culling.md, "Jobs holding idle GPUs").

While the job's program runs, the runner samples the pod's GPUs every interval with the same
probe servers use (:mod:`gpulab.extensions.gpu_probe`: NVML, or the fake probe in tests and
kubesim) and posts an :class:`~gpulab.wire.activity.ActivityReport` to the culler's
``api/v1/jobs/<id>/activity``, with the job's report token (from its upload Secret) in
``X-Gpulab-Job-Token``: the culler checks it against the hash on the job's pod. A report the
culler does not take is dropped: reporting never fails or slows the job.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from gpulab.wire.activity import ActivityReport
from gpulab.wire.runner import (
    ENV_CULLER_URL,
    ENV_REPORT_INTERVAL,
    REPORT_TOKEN_FILE,
    REPORT_TOKEN_HEADER,
)

from ..gpu_probe import GpuProbe, probe_from_env

__all__ = ["GpuReporter", "job_report"]

DEFAULT_INTERVAL = 60.0
Post = Callable[[str, bytes, dict[str, str]], int]


def job_report(probe: GpuProbe, now: dt.datetime) -> ActivityReport:
    """One report: the GPUs as sampled now (a job has no kernels or terminals)."""
    return ActivityReport(
        sampled_at=now,
        last_kernel_activity=None,
        kernels_busy=False,
        last_terminal_activity=None,
        gpus=probe.sample(),
        probe=getattr(probe, "name", "none"),
    )


def _post(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - our culler
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return 0


@dataclass
class GpuReporter:
    url: str
    token: str = field(repr=False)
    probe: GpuProbe
    interval: float = DEFAULT_INTERVAL
    post: Post = _post
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], job_id: str, upload_dir: Path, gpus: int
    ) -> GpuReporter | None:
        """The reporter the pod's environment asks for, or None (a CPU job, no culler URL,
        or no token: then nothing is reported)."""
        culler = env.get(ENV_CULLER_URL, "")
        token_file = upload_dir / REPORT_TOKEN_FILE
        if gpus <= 0 or not culler.startswith(("http://", "https://")):
            return None
        try:
            token = token_file.read_text().strip()
        except OSError:
            return None
        try:
            interval = max(1.0, float(env.get(ENV_REPORT_INTERVAL, DEFAULT_INTERVAL)))
        except ValueError:
            interval = DEFAULT_INTERVAL
        base = culler if culler.endswith("/") else culler + "/"
        url = f"{base}api/v1/jobs/{quote(job_id, safe='')}/activity"
        return cls(url, token, probe_from_env(env), interval)

    def report_once(self) -> int:
        """Sample and post once; the culler's status (0: not reached)."""
        report = job_report(self.probe, dt.datetime.now(dt.UTC))
        body = json.dumps(report.to_json()).encode()
        headers = {"Content-Type": "application/json", REPORT_TOKEN_HEADER: self.token}
        return self.post(self.url, body, headers)

    def _loop(self) -> None:
        while True:
            self.report_once()
            if self._stop.wait(self.interval):  # the pace of reports, not a synchronisation
                return

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="gpu-report", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
