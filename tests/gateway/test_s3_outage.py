"""S3 outages lose nothing: with the Ceph S3 gateway (radosgw) stopped while a job finishes,
its outputs and log wait on the home, the API says so truthfully (upload pending, the log
served from the pod, then a 503 naming where it is kept), and once radosgw is back the
gateway's upload Job uploads them; a job cancelled while S3 is down stays in its owner's
history across a gateway restart (the record lives in the cluster, not in S3)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from gateway_testlib import NAMESPACE, GatewayEnv, command_job, restart_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

RGW = "client.rgw.a"
# Writes an output and a log line, then lives long enough for the test to stop radosgw.
OUTAGE_JOB = (
    "import os, pathlib, time\n"
    "print('hello during the outage', flush=True)\n"
    "time.sleep(8)\n"
    "out = pathlib.Path(os.environ['GPULAB_OUTPUT_DIR']); out.mkdir(parents=True, exist_ok=True)\n"
    "(out / 'weights.txt').write_text('kept on the home')\n"
    "print('done', flush=True)\n"
)


def _mc_dir(gw: GatewayEnv) -> Path:
    return gw.platform.state_dir / "microceph"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _answers(endpoint: str) -> bool:
    try:
        httpx.get(endpoint, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def stop_rgw(gw: GatewayEnv) -> None:
    """Stop radosgw only (the monitor and OSD keep running), as an S3 outage."""
    pid_file = _mc_dir(gw) / "run" / f"{RGW}.pid"
    pid = int(pid_file.read_text().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    assert not _answers(gw.platform.s3.endpoint), "radosgw still answers"


def start_rgw(gw: GatewayEnv) -> None:
    if _answers(gw.platform.s3.endpoint):
        return
    conf = _mc_dir(gw) / "ceph.conf"
    subprocess.run(["radosgw", "-c", str(conf), "-n", RGW], check=True, timeout=60)
    deadline = time.monotonic() + 60
    while not _answers(gw.platform.s3.endpoint):
        assert time.monotonic() < deadline, "radosgw did not come back"
        time.sleep(0.3)


@pytest.fixture
def outage(gw: GatewayEnv) -> Iterator[GatewayEnv]:
    """radosgw is restarted at the end whatever happens (the platform is shared)."""
    try:
        yield gw
    finally:
        start_rgw(gw)


def _wait(predicate, what: str, timeout: float = 300):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"{what}: never happened (last: {last!r})")


def _delete_pods(gw: GatewayEnv, job_id: str) -> None:
    for pod in gw.kubesim.pods(f"gpulab.io/job-id={job_id}"):
        gw.kubesim.http.delete(
            f"/api/v1/namespaces/{NAMESPACE}/pods/{pod['metadata']['name']}",
            params={"gracePeriodSeconds": "0"},
        ).raise_for_status()
    _wait(lambda: not gw.kubesim.pods(f"gpulab.io/job-id={job_id}"), "pods deleted", 30)


def test_outputs_of_a_job_finished_during_an_s3_outage_are_uploaded_when_s3_returns(outage):
    gw = outage
    with gw.client("alice") as c:
        r = c.post("/jobs", json=command_job("outage", OUTAGE_JOB))
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        gw.wait_state("alice", job_id, ("Running",))
        stop_rgw(gw)

        done = gw.wait_state("alice", job_id, ("Succeeded", "Failed"), timeout=300)
        assert done["state"] == "Succeeded", done
        assert c.get(f"/jobs/{job_id}").json()["upload"] == "pending"
        # the pod still exists: its log is served from it
        r = c.get(f"/jobs/{job_id}/logs")
        assert r.status_code == 200 and "hello during the outage" in r.text

        # the pod gone and nothing archived: a 503 that says where the log is kept
        _delete_pods(gw, job_id)
        r = c.get(f"/jobs/{job_id}/logs")
        assert r.status_code == 503, r.text
        assert f".gpulab/jobs/{job_id}/log.txt" in r.json()["error"]
        assert r.headers.get("Retry-After")

        start_rgw(gw)
        uploaded = _wait(
            lambda: (j := c.get(f"/jobs/{job_id}").json())["upload"] != "pending" and j,
            "the upload after S3 returned",
        )
        assert uploaded["upload"] == "ok", uploaded
        # through the job's upload Job (the bytes never pass through the gateway)
        [up] = gw.kubesim.jobs(f"gpulab.io/upload-for={job_id}")
        assert up["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "--upload-only"
        outputs = c.get(f"/jobs/{job_id}/outputs").json()
        paths = {item["path"] for item in outputs["items"]}
        assert {"outputs/weights.txt", "log.txt", "result.json"} <= paths, outputs
        assert outputs["upload"] == "ok"
        r = c.get(f"/jobs/{job_id}/outputs/outputs/weights.txt", params={"redirect": "0"})
        assert httpx.get(r.json()["url"]).content == b"kept on the home"
        r = c.get(f"/jobs/{job_id}/logs")
        assert r.status_code == 200
        assert "hello during the outage" in r.text and "done" in r.text


def test_a_job_cancelled_during_an_s3_outage_stays_in_its_owners_history(outage):
    gw = outage
    with gw.client("alice") as c:
        r = c.post(
            "/jobs",
            json=command_job("cancelme", "import time; print('up', flush=True); time.sleep(600)"),
        )
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        gw.wait_state("alice", job_id, ("Running",))
        stop_rgw(gw)
        r = c.delete(f"/jobs/{job_id}")
        assert r.status_code == 202, r.text
        assert r.json()["state"] == "Cancelled"

    restart_gateway(gw)
    with gw.client("alice") as c:
        after = c.get(f"/jobs/{job_id}")
        assert after.status_code == 200 and after.json()["state"] == "Cancelled"
        listed = {j["id"]: j["state"] for j in c.get("/jobs").json()["items"]}
        assert listed.get(job_id) == "Cancelled"
    with gw.client("bob") as c:
        assert c.get(f"/jobs/{job_id}").status_code == 404
