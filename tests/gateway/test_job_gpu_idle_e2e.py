"""A GPU job holding idle GPUs on the real platform is stopped when the policy says so.

bob's group (nlp in tests/e2e/policy.yaml) stops jobs whose GPUs stay idle for a minute. His
GPU job's pod carries its report token's hash; the test speaks as the job's runner would with
an idle GPU (the token read from the job's upload Secret, as the runner reads it from its
mount), and the culler, judging every 2 s, reports the job to the gateway and cancels it."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from datetime import UTC, datetime

import httpx
import pytest
from gateway_testlib import NAMESPACE, GatewayEnv, command_job
from gpulab.hub.workload.labels import GPU_IDLE_ANNOTATION, REPORT_TOKEN_HASH_ANNOTATION

from gpulab.wire.runner import REPORT_TOKEN_FILE, REPORT_TOKEN_HEADER

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

DEADLINE = 180.0  # a bound on waiting (the policy's minute, the cycle), not a timing claim


def _token(gw: GatewayEnv, job_id: str) -> str:
    secret = gw.kubesim.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/{job_id}-upload")
    return base64.b64decode(secret["data"][REPORT_TOKEN_FILE]).decode()


def _idle_report() -> dict:
    gpu = {"index": 0, "uuid": "GPU-0", "utilization_pct": 0.0, "memory_used_bytes": 0,
           "memory_total_bytes": 80 * 2**30}  # fmt: skip
    return {"sampled_at": datetime.now(UTC).isoformat(), "gpus": [gpu]}


def test_an_idle_gpu_job_is_stopped_with_the_reason(gw: GatewayEnv) -> None:
    with gw.client("bob") as c:
        r = c.post("/jobs", json=command_job("idle-gpus", "import time; time.sleep(600)", gpus=1))
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
    gw.wait_state("bob", job_id, ("Running",))
    token = _token(gw, job_id)
    (pod,) = gw.kubesim.pods(f"gpulab.io/job-id={job_id}")
    annotations = pod["metadata"]["annotations"]
    assert annotations[REPORT_TOKEN_HASH_ANNOTATION] == hashlib.sha256(token.encode()).hexdigest()
    culler = gw.platform.hub_url + f"/services/culler/api/v1/jobs/{job_id}/activity"
    with httpx.Client(timeout=30) as http:
        refused = http.post(culler, json=_idle_report(), headers={REPORT_TOKEN_HEADER: "guess"})
        assert refused.status_code == 403
        deadline = time.monotonic() + DEADLINE
        job: dict = {}
        while time.monotonic() < deadline:  # report as the runner would, until it is stopped
            taken = http.post(culler, json=_idle_report(), headers={REPORT_TOKEN_HEADER: token})
            with gw.client("bob") as c:
                job = c.get(f"/jobs/{job_id}").json()
            if job["state"] == "Cancelled":
                break
            assert taken.status_code in (200, 403), taken.text  # 403 once the pod is gone
            time.sleep(2)  # the runner's pace of reports, faster here
    assert job["state"] == "Cancelled", job
    assert job["cancelled_by"] == "gpulab-culler"
    assert "GPUs were idle" in (job["cancel_reason"] or "")
    record = gw.kubesim.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{job_id}")
    idle = json.loads(record["metadata"]["annotations"][GPU_IDLE_ANNOTATION])
    assert idle["action"] == "kill"
