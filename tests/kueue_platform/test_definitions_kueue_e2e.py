"""A saved definition's scheduled run with Kueue on: the CronJob's Job joins the owner's queue
suspended, Kueue admits it, the gateway gives its pod the run's credential, and it succeeds."""

from __future__ import annotations

import time
import uuid

from tests.gateway.gateway_testlib import NAMESPACE, command_job


def test_a_scheduled_run_is_queued_admitted_and_succeeds(kgw):
    name = f"kq-{uuid.uuid4().hex[:6]}"
    # A GPU job: this folder's policy gives vision GPU quota in Kueue, no CPU-only quota.
    spec = command_job(name, "import os; print('run', os.environ['GPULAB_JOB_ID'])", gpus=1)
    with kgw.client("alice") as c:
        r = c.post("/definitions", json={"name": name, "spec": spec, "schedule": "* * * * *"})
        assert r.status_code == 201, r.text
        try:
            deadline = time.monotonic() + 150  # the next minute, then the run's start
            runs: list[str] = []
            while time.monotonic() < deadline and not runs:
                runs = c.get(f"/definitions/{name}").json()["runs"]
                time.sleep(0.5)
            assert runs, "the schedule did not fire"
            c.post(f"/definitions/{name}/pause")
            run = runs[0]
            job = kgw.kubesim.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{run}")
            assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
            try:
                done = kgw.wait_state("alice", run, ("Succeeded", "Failed"), timeout=100)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{_diagnosis(kgw, run)}") from None
            assert done["state"] == "Succeeded", done
            assert f"run {run}" in c.get(f"/jobs/{run}/logs").text
        finally:
            c.delete(f"/definitions/{name}")


def _diagnosis(kgw, run: str) -> str:
    """The run's Job, pods and Workload as kubesim holds them (why it did not finish)."""
    job = kgw.kubesim.get(f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{run}")
    pods = kgw.kubesim.pods(f"batch.kubernetes.io/job-name={run}")
    wls = kgw.kubesim.get(f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{NAMESPACE}/workloads")
    mine = [w for w in wls["items"] if run in w["metadata"]["name"]]
    return repr(
        {
            "job": {"suspend": job["spec"].get("suspend"), "status": job.get("status")},
            "pods": [
                (p["metadata"]["labels"], p["spec"].get("schedulingGates"), p.get("status"))
                for p in pods
            ],
            "workloads": [w.get("status") for w in mine],
        }
    )[:3000]
