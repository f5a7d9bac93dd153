"""Reliability: a gateway restart (killed, restarted by the hub) while a job runs loses
nothing; the watch cache survives cut watches and 410 Gone; Kubernetes API errors map to 503
with Retry-After, and a quota refusal to 403 with the quota's message; list and get cost no
Kubernetes API call."""

from __future__ import annotations

import time

import pytest
from gateway_testlib import NAMESPACE, command_job, restart_gateway
from gpulab.hub.jobs.gateway.kube import USER_AGENT as GATEWAY_AGENT

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]

SLOW_JOB = (
    "import os, pathlib, time\n"
    "print('phase 1', flush=True)\n"
    "time.sleep(6)\n"
    "out = pathlib.Path(os.environ['GPULAB_OUTPUT_DIR']); out.mkdir(parents=True, exist_ok=True)\n"
    "(out / 'result.txt').write_text('survived')\n"
    "print('phase 2', flush=True)\n"
)


def test_gateway_restart_while_job_runs_loses_nothing(gw):
    with gw.client("alice") as c:
        r = c.post("/jobs", json=command_job("survivor", SLOW_JOB))
        assert r.status_code == 201, r.text
        job_id = r.json()["id"]
        gw.wait_state("alice", job_id, ("Running",))
        before = c.get("/jobs").json()["items"]

    restart_gateway(gw)  # killed; the hub notices and starts it again

    with gw.client("alice") as c:
        after = {j["id"]: j for j in c.get("/jobs").json()["items"]}
        assert {j["id"] for j in before} <= set(after), "a job was lost in the restart"
        done = gw.wait_state("alice", job_id, ("Succeeded", "Failed"))
        assert done["state"] == "Succeeded", done
        assert done["spec"]["name"] == "survivor" and done["owner"] == "alice"
        log = c.get(f"/jobs/{job_id}/logs").text
        assert "phase 1" in log and "phase 2" in log
        for _ in range(100):
            outputs = c.get(f"/jobs/{job_id}/outputs").json()
            if outputs["upload"] != "pending":
                break
            time.sleep(0.2)
        assert "outputs/result.txt" in {i["path"] for i in outputs["items"]}


def _gateway_jobs_calls(gw, verb: str) -> int:
    """How many ``verb`` calls on Jobs the gateway made since the request log was reset."""
    return sum(
        1
        for r in gw.kubesim.requests()["recent"]
        if r["verb"] == verb and r["resource"] == "jobs" and r["userAgent"] == GATEWAY_AGENT
    )


def _wait_for_gateway_jobs_calls(gw, verb: str, at_least: int, timeout: float = 30) -> int:
    """Wait (bounded) until the gateway made ``at_least`` ``verb`` calls on Jobs."""
    deadline = time.monotonic() + timeout
    while (seen := _gateway_jobs_calls(gw, verb)) < at_least and time.monotonic() < deadline:
        time.sleep(0.2)
    return seen


def _run_to_success(gw, name: str) -> None:
    """Submit a job after the faults acted; the cache must see it through to the end."""
    with gw.client("alice") as c:
        r = c.post("/jobs", json=command_job(name, "print('ok')"))
        assert r.status_code == 201, r.text
        done = gw.wait_state("alice", r.json()["id"], ("Succeeded", "Failed"))
        assert done["state"] == "Succeeded", done


def test_cache_survives_cut_watches_and_410(gw):
    # Only the gateway watches Jobs over HTTP; the fault matches the collection path (kubesim
    # matches the path without its query string) and reaches the watch already open.
    jobs_watch = rf"^/apis/batch/v1/namespaces/{NAMESPACE}/jobs$"
    gw.kubesim.http.delete("/kubesim/requests").raise_for_status()
    gw.kubesim.faults(cut_watches_after_s=0.5, match=jobs_watch)
    try:
        watches = _wait_for_gateway_jobs_calls(gw, "watch", 3)
        assert watches >= 3, f"the gateway's Jobs watch was not cut ({watches} watches)"
        _run_to_success(gw, "cutwatch")
        lists = _gateway_jobs_calls(gw, "list")
    finally:
        gw.kubesim.faults()
    assert lists == 0, "a cut watch resumes from its last version; it does not list again"

    gw.kubesim.http.delete("/kubesim/requests").raise_for_status()
    try:
        # The 410 goes to the next watch of Jobs, whoever's: the hub's cluster view watches
        # Jobs too, so it is armed again until the gateway's watch is the one that gets it.
        relists = 0
        for _ in range(5):
            gw.kubesim.faults(cut_watches_after_s=0.5, gone_next_watch=True, match=jobs_watch)
            if relists := _wait_for_gateway_jobs_calls(gw, "list", 1, timeout=10):
                break
        assert relists >= 1, "the 410 on the gateway's Jobs watch did not make it list again"
        _run_to_success(gw, "gone")
    finally:
        gw.kubesim.faults()


def test_list_and_get_cost_no_api_call(gw):
    with gw.client("alice") as c:
        job_id = c.post("/jobs", json=command_job("counted", "print(1)")).json()["id"]
        gw.wait_state("alice", job_id, ("Succeeded",))
        gw.kubesim.http.delete("/kubesim/requests").raise_for_status()
        for _ in range(20):
            assert c.get("/jobs").status_code == 200
            assert c.get(f"/jobs/{job_id}").status_code == 200
            assert c.get("/me").status_code == 200
    # Only the gateway's own calls: the hub's KubeSpawner reflectors relist pods and events
    # on their own schedule, whatever the gateway does.
    gateway_calls = [
        f"{r['verb']} {r['resource']}"
        for r in gw.kubesim.requests()["recent"]
        if r["userAgent"] == GATEWAY_AGENT and r["verb"] != "watch"
    ]
    assert gateway_calls == [], gateway_calls


def test_api_errors_map_to_503_and_quota_to_403(gw):
    before = len(gw.kubesim.jobs())
    gw.kubesim.faults(error_rate=1.0, error_codes=[503], match=r"/jobs$")
    try:
        with gw.client("alice") as c:
            r = c.post("/jobs", json=command_job("unavailable", "print(1)"))
            assert r.status_code == 503, r.text
            assert int(r.headers["Retry-After"]) >= 1
            assert "error" in r.json()
    finally:
        gw.kubesim.faults()
    assert len(gw.kubesim.jobs()) == before

    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-more-jobs", "namespace": NAMESPACE},
        "spec": {"hard": {"count/jobs.batch": "0"}},
    }
    gw.kubesim.create(f"/api/v1/namespaces/{NAMESPACE}/resourcequotas", quota)
    try:
        with gw.client("alice") as c:
            r = c.post("/jobs", json=command_job("overquota", "print(1)"))
            assert r.status_code == 403, r.text
            assert "quota" in r.json()["error"].lower()
    finally:
        gw.kubesim.http.delete(
            f"/api/v1/namespaces/{NAMESPACE}/resourcequotas/no-more-jobs"
        ).raise_for_status()
