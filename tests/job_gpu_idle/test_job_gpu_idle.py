"""Jobs holding idle GPUs: the runner reports its GPUs (the fake probe) with the job's token;
the culler takes a report only from that job's running pod, reports the job to the jobs
gateway once per idle episode and stops it when the policy says so (``jobs.kill_gpu_idle``).

The hub and the gateway are one real HTTP server here, answering what the culler asks of them
(where the gateway is; the idle report; the cancel) and recording it."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from gpulab.extensions.gpu_probe import FakeProbe
from gpulab.extensions.runner.gpu_report import GpuReporter
from gpulab.hub.culler.job_reports import reporting_job
from gpulab.hub.culler.service.cycle import CULLER_ACTOR, Culler
from gpulab.hub.culler.service.job_cancel import JobCanceller
from gpulab.hub.policy.parse import parse_policy
from gpulab.hub.workload.labels import (
    GPUS_LABEL,
    JOB_ID_LABEL,
    OWNER_ANNOTATION,
    REPORT_TOKEN_HASH_ANNOTATION,
)

from gpulab.wire.activity import ActivityReport
from gpulab.wire.runner import ENV_CULLER_URL, REPORT_TOKEN_FILE, REPORT_TOKEN_HEADER

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
TOKEN = "a-job-report-token"


@dataclass
class HubAndGateway:
    server: ThreadingHTTPServer
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"


@pytest.fixture(scope="module")
def hub_gateway() -> Iterator[HubAndGateway]:
    holder: dict[str, HubAndGateway] = {}

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> dict[str, Any]:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.loads(raw) if raw else {}
            holder["s"].requests.append((self.command, self.path, body))
            return body

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            # the hub: where the gateway is
            self._answer(200, {"url": holder["s"].url, "prefix": "/services/jobs-gateway/"})

        def do_POST(self) -> None:  # noqa: N802
            self._answer(200, self._record())

        def do_DELETE(self) -> None:  # noqa: N802
            self._record()
            self._answer(202, {"state": "Cancelled"})

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder["s"] = HubAndGateway(server)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield holder["s"]
    server.shutdown()


def _policy(kill: bool) -> Any:
    doc = yaml.safe_load((ROOT / "hub" / "demo" / "policy.yaml").read_text())
    doc["groups"]["vision"]["jobs"].update(gpu_idle_report_after="30m", kill_gpu_idle=kill)
    return parse_policy(doc)


def _pod(job_id: str, token: str = TOKEN, phase: str = "Running") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"{job_id}-abcde",
            "labels": {JOB_ID_LABEL: job_id, GPUS_LABEL: "2"},
            "annotations": {
                OWNER_ANNOTATION: "alice",
                REPORT_TOKEN_HASH_ANNOTATION: hashlib.sha256(token.encode()).hexdigest(),
            },
        },
        "status": {"phase": phase, "startTime": T0.isoformat()},
    }


def _report(at: datetime, pct: float) -> ActivityReport:
    gpu = {"index": 0, "uuid": "GPU-0", "utilization_pct": pct, "memory_used_bytes": 0,
           "memory_total_bytes": 1}  # fmt: skip
    return ActivityReport.from_json({"sampled_at": at.isoformat(), "gpus": [gpu]})


class _Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _culler(hub_gateway: HubAndGateway, kill: bool, clock: _Clock) -> Culler:
    policy = _policy(kill)
    culler = Culler(None, lambda: policy, now=clock)  # type: ignore[arg-type]
    culler.job_actions = JobCanceller(hub_gateway.url + "/hub/api", "service-token")
    return culler


def _idle_for_an_hour(culler: Culler, clock: _Clock, job_id: str) -> None:
    for minute in range(0, 61, 10):
        clock.now = T0 + timedelta(minutes=minute)
        culler.record_job_report(
            job_id, owner="alice", groups=["vision"], gpus=2, started=T0,
            report=_report(clock.now, 1.0),
        )  # fmt: skip


def test_the_runner_reports_its_fake_gpus_with_the_job_token(tmp_path: Path) -> None:
    FakeProbe.write(tmp_path / "gpus.json", FakeProbe.gpus(2, utilization_pct=3))
    (tmp_path / REPORT_TOKEN_FILE).write_text(TOKEN)
    env = {
        ENV_CULLER_URL: "http://culler.example/",
        "GPULAB_GPU_PROBE": f"fake:{tmp_path / 'gpus.json'}",
    }
    reporter = GpuReporter.from_env(env, "train-abcdef", tmp_path, gpus=2)
    assert reporter is not None
    sent: list[tuple[str, bytes, dict[str, str]]] = []
    reporter.post = lambda url, body, headers: sent.append((url, body, headers)) or 200
    reporter.report_once()
    ((url, body, headers),) = sent
    report = ActivityReport.from_json(json.loads(body))
    assert url == "http://culler.example/api/v1/jobs/train-abcdef/activity"
    assert headers[REPORT_TOKEN_HEADER] == TOKEN
    assert [g.utilization_pct for g in report.gpus] == [3.0, 3.0]


def test_a_cpu_job_does_not_report(tmp_path: Path) -> None:
    (tmp_path / REPORT_TOKEN_FILE).write_text(TOKEN)
    env = {ENV_CULLER_URL: "http://culler.example/"}
    assert GpuReporter.from_env(env, "prep-abcdef", tmp_path, gpus=0) is None


@pytest.mark.parametrize(
    ("pod", "token"),
    [(_pod("job-a", token="other"), TOKEN), (_pod("job-a", phase="Succeeded"), TOKEN),
     (_pod("job-b"), TOKEN), (_pod("job-a"), "")],
)  # fmt: skip
def test_only_the_jobs_running_pod_token_is_taken(pod: dict[str, Any], token: str) -> None:
    assert reporting_job([pod], "job-a", token) is None


def test_the_jobs_own_token_is_taken() -> None:
    job = reporting_job([_pod("job-a")], "job-a", TOKEN)
    assert job is not None and (job.owner, job.gpus, job.started) == ("alice", 2, T0)


async def test_an_idle_job_is_reported_once(hub_gateway: HubAndGateway) -> None:
    hub_gateway.requests.clear()
    clock = _Clock()
    culler = _culler(hub_gateway, kill=False, clock=clock)
    _idle_for_an_hour(culler, clock, "idle-report")
    assert await culler.act_on_idle_jobs() == [("idle-report", "report")]
    assert await culler.act_on_idle_jobs() == []  # the same idle episode
    ((method, path, body),) = hub_gateway.requests
    assert (method, path) == ("POST", "/services/jobs-gateway/api/v1/jobs/idle-report/gpu-idle")
    assert body["action"] == "report" and body["since"] == T0.isoformat()


async def test_an_idle_job_is_stopped_when_the_policy_says_so(hub_gateway: HubAndGateway) -> None:
    hub_gateway.requests.clear()
    clock = _Clock()
    culler = _culler(hub_gateway, kill=True, clock=clock)
    _idle_for_an_hour(culler, clock, "idle-kill")
    assert await culler.act_on_idle_jobs() == [("idle-kill", "kill")]
    (report, cancel) = hub_gateway.requests
    assert report[2]["action"] == "kill"
    assert cancel[0] == "DELETE" and cancel[1].startswith(
        "/services/jobs-gateway/api/v1/jobs/idle-kill?"
    )
    assert f"on_behalf_of={CULLER_ACTOR}" in cancel[1]


async def test_a_busy_job_is_left_alone(hub_gateway: HubAndGateway) -> None:
    hub_gateway.requests.clear()
    clock = _Clock()
    culler = _culler(hub_gateway, kill=True, clock=clock)
    clock.now = T0 + timedelta(hours=2)
    culler.record_job_report(
        "busy", owner="alice", groups=["vision"], gpus=2, started=T0, report=_report(clock.now, 90)
    )
    assert await culler.act_on_idle_jobs() == []
    assert hub_gateway.requests == []
